import ArgumentParser
import EventModel
import Foundation
import TestSupport

/// Writes a replay file (docs/replay.md: JSON lines, one `Event` each) of realistic events for load tests:
/// `patrol-sensor --replay FILE --repeat N` then sends it through the real transport.
struct ReplayFileBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay-file",
        abstract: "Write a JSON-lines replay file of realistic events (exec/open/open/open/connect mix by default).")

    @Option(help: "Where to write the file.")
    var output: String

    @Option(help: "Events in the file.")
    var events = 100_000

    @Flag(help: "Every sensor event kind instead of the exec/open/connect mix.")
    var allKinds = false

    @Option(help: "Fixture seed.")
    var seed: UInt64 = 42

    mutating func run() throws {
        var fixtures = EventFixtures(seed: seed)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data("# patrol-bench replay-file: \(events) events, seed \(seed)\n".utf8)
        let kinds = allKinds ? EventFixtures.sensorKinds : EventFixtures.execOpenConnect
        for _ in 0..<events {
            data.append(try encoder.encode(fixtures.event(kinds: kinds)))
            data.append(UInt8(ascii: "\n"))
        }
        try data.write(to: URL(fileURLWithPath: output))
        print("replay-file: wrote \(events) events (\(data.count) bytes) to \(output)")
    }
}
