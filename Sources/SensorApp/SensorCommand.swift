import ArgumentParser

/// The `patrol-sensor` command line.
public struct SensorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "patrol-sensor", abstract: "Patrol")
    public init() {}
    public func run() async throws {}
}
