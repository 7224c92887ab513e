import EventModel
import Foundation
import Synchronization

/// JSON helpers for the Elasticsearch test server (rendering lives in `EventModel`, beside `JSONValue`).
enum TestJSON {
    static func parse(_ bytes: some Collection<UInt8>) -> JSONValue? { JSONValue.parse(bytes) }
    static func render(_ value: JSONValue) -> String { value.jsonText }
}

extension JSONValue {
    /// Literal sugar for building replies in the test server.
    static func obj(_ pairs: (String, JSONValue)...) -> JSONValue {
        .object(Dictionary(pairs, uniquingKeysWith: { _, last in last }))
    }

    static func int(_ value: Int) -> JSONValue { .number(Double(value)) }

    /// A field of a `_source` by dotted path: nested objects first, then a literal dotted key (ES accepts both).
    func field(_ path: String) -> JSONValue? {
        if let nested = value(at: path.split(separator: ".")) { return nested }
        return self[path]
    }
}

/// Date handling as Elasticsearch's `date` type does it: ISO 8601 strings or epoch milliseconds.
enum TestDates {
    /// Epoch milliseconds of an ISO 8601 date-time (fraction and zone optional) or a bare `yyyy-MM-dd`.
    static func millis(_ text: String) -> Double? {
        // Every search re-reads the dates of every candidate document; Foundation's formatter costs tens of
        // microseconds a call, which made a search over 16k documents take seconds. Remember each text's answer
        // (NaN for "not a date"); a test server sees few distinct texts, and the table is dropped if it grows.
        if let known = knownDates.withLock({ $0[text] }) { return known.isNaN ? nil : known }
        let value = parseMillis(text)
        knownDates.withLock { table in
            if table.count >= 200_000 { table.removeAll() }
            table[text] = value ?? .nan
        }
        return value
    }

    private static let knownDates = Mutex<[String: Double]>([:])

    private static func parseMillis(_ text: String) -> Double? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return (date.timeIntervalSince1970 * 1000).rounded() }
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date.timeIntervalSince1970 * 1000 }
        formatter.formatOptions = [.withFullDate]
        if let date = formatter.date(from: text) { return date.timeIntervalSince1970 * 1000 }
        return nil
    }

    /// A comparable key for a field value: dates and numbers as epoch milliseconds, other strings as is.
    static func key(_ value: JSONValue) -> SortKey? {
        switch value {
        case .number(let number): return .number(number)
        case .string(let text):
            if let millis = millis(text) { return .number(millis) }
            return .text(text)
        case .bool(let flag): return .number(flag ? 1 : 0)
        default: return nil
        }
    }
}

/// One sort value: numbers (and dates) order before strings; missing values sort last, as ES does by default.
enum SortKey: Comparable, Sendable {
    case number(Double)
    case text(String)
    case missing

    var json: JSONValue {
        switch self {
        case .number(let number): .number(number)
        case .text(let text): .string(text)
        // ES reports a missing long/date as Long.MAX_VALUE in `sort`; a large sentinel keeps the order.
        case .missing: .number(Double(Int64.max))
        }
    }

    init?(json: JSONValue) {
        switch json {
        case .number(let number): self = .number(number)
        case .string(let text): self = TestDates.millis(text).map { .number($0) } ?? .text(text)
        default: return nil
        }
    }
}
