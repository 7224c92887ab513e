import SensorApp

@main
enum Entry {
    static func main() async { await SensorCommand.main() }
}
