import SensorApp

await SensorCommand.main()
