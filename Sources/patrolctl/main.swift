import AdminApp

await AdminCommand.main()
