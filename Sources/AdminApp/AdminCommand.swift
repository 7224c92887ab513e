import ArgumentParser

/// The `patrolctl` command line.
public struct AdminCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "patrolctl", abstract: "Patrol")
    public init() {}
    public func run() async throws {}
}
