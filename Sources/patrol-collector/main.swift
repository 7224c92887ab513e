import CollectorApp

await CollectorCommand.main()
