import ArgumentParser

/// The `patrol-collector` command line.
public struct CollectorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "patrol-collector", abstract: "Patrol")
    public init() {}
    public func run() async throws {}
}
