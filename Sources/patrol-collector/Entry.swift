import CollectorApp

@main
enum Entry {
    static func main() async { await CollectorCommand.main() }
}
