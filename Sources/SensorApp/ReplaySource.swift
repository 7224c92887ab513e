import Basics
import EventModel
import Foundation

/// Reads recorded events from a JSON-lines file (docs/replay.md): one `Event` object per line, blank lines
/// and lines starting with `#` skipped. A bad line stops the replay with an error naming the file and line,
/// so a capture is never half sent without the user knowing.
public struct ReplaySource: Sendable {
    public let path: String
    /// Send the file this many times (useful for load tests from a small capture).
    public let repeatCount: Int

    public init(path: String, repeatCount: Int = 1) {
        self.path = path
        self.repeatCount = max(1, repeatCount)
    }

    /// Parses the whole file, then calls `body` with events in chunks of `chunkSize`, `repeatCount` times.
    public func forEachChunk(
        chunkSize: Int, _ body: ([Event]) async throws -> Void
    ) async throws {
        let events = try Self.parse(path: path)
        for _ in 0..<repeatCount {
            var start = 0
            while start < events.count {
                let end = min(start + chunkSize, events.count)
                try await body(Array(events[start..<end]))
                start = end
            }
        }
    }

    public static func parse(path: String) throws(BasicsError) -> [Event] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BasicsError(.io, "cannot read replay file \(path)", cause: .error(error))
        }
        return try parse(data, source: path)
    }

    public static func parse(_ data: Data, source: String) throws(BasicsError) -> [Event] {
        let decoder = JSONDecoder()
        var events: [Event] = []
        var lineNumber = 0
        var lineStart = data.startIndex
        while lineStart < data.endIndex {
            lineNumber += 1
            let lineEnd = data[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? data.endIndex
            let line = data[lineStart..<lineEnd]
            lineStart = lineEnd < data.endIndex ? data.index(after: lineEnd) : lineEnd
            guard let first = line.first(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") && $0 != UInt8(ascii: "\r") }),
                first != UInt8(ascii: "#")
            else { continue }
            do {
                events.append(try decoder.decode(Event.self, from: line))
            } catch {
                throw BasicsError(.invalidConfiguration, "\(source):\(lineNumber): not a valid event: \(Self.describe(error))")
            }
        }
        return events
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type at '\(context.codingPath.map(\.stringValue).joined(separator: "."))': \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "'\(path)': \(context.debugDescription)"
        default:
            return String(describing: error)
        }
    }
}
