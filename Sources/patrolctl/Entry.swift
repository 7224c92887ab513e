import AdminApp

@main
enum Entry {
    static func main() async { await AdminCommand.main() }
}
