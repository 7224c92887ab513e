import AuditPipeline
import Basics
import EventModel
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Hands audit records to the ingest loop as batches of a pseudo-sensor, so they take exactly the path
/// sensor events take: the batch ledger, rule evaluation, one store commit with the alerts, then the
/// outbox and every sink.
///
/// Each run is its own stream (`sensorID` names the source, `bootID` is fresh per run): a re-run over the
/// same range is evaluated again rather than dropped as a duplicate, and the alerts it raises carry the
/// same deterministic ids, so sinks that key on them (Elasticsearch `create`) write nothing twice.
public final class AuditFeed: Sendable {
    public struct Rejected: Error, CustomStringConvertible {
        public let description: String
    }

    private let ingest: IngestService
    public let sensorID: String
    public let bootID: String
    private let timestampField: String
    private let sequence = Atomic<UInt64>(0)

    public init(ingest: IngestService, sourceName: String, timestampField: String = "@timestamp") {
        self.ingest = ingest
        self.sensorID = "audit:\(sourceName)"
        self.bootID = UUID().uuidString.lowercased()
        self.timestampField = timestampField
    }

    /// Submits one page of records and waits until it is committed. An overloaded ingest loop is waited
    /// out (the reader simply slows down); a store failure is thrown so the run stops rather than skips.
    public func submit(_ records: [AuditRecord]) async throws {
        guard !records.isEmpty else { return }
        let events = records.map { record in
            Event(
                time: Self.nanoseconds(record.document[timestampField] ?? record.document["requestReceivedTimestamp"]),
                node: "", process: ProcessInfo(), payload: .audit(record))
        }
        let number = sequence.add(1, ordering: .relaxed).newValue
        let batch = EventBatch(sensorID: sensorID, bootID: bootID, sequence: number, events: events)
        var pause = Duration.milliseconds(10)
        while true {
            switch await ingest.submit(batch) {
            case .success: return
            case .failure(.overloaded):
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(1))
            case .failure(.shuttingDown):
                throw Rejected(description: "the collector is shutting down")
            case .failure(.storeFailed(let reason)):
                throw Rejected(description: "the store refused audit events: \(reason)")
            }
        }
    }

    /// Epoch nanoseconds of an ISO 8601 / RFC 3339 time (`Z` or `±hh:mm`, any fraction) or epoch
    /// milliseconds; 0 when absent or unreadable.
    static func nanoseconds(_ value: JSONValue?) -> EpochNanoseconds {
        if let millis = value?.numberValue, millis >= 0 { return UInt64(millis * 1_000_000) }
        guard let text = value?.stringValue else { return 0 }
        let bytes = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= bytes.count else { return nil }
            var result = 0
            for byte in bytes[from..<from + count] {
                guard byte >= 48, byte <= 57 else { return nil }
                result = result * 10 + Int(byte - 48)
            }
            return result
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2)
        else { return 0 }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        var seconds = Int64(timegm(&parts))
        var index = 19
        var nanos: UInt64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale: UInt64 = 100_000_000
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                nanos += UInt64(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-"),
            let offsetHours = number(index + 1, 2), let offsetMinutes = number(index + 4, 2)
        {
            let offset = Int64(offsetHours * 3600 + offsetMinutes * 60)
            seconds += bytes[index] == UInt8(ascii: "+") ? -offset : offset
        }
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + nanos
    }
}
