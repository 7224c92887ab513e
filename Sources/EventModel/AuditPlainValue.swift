/// Where an audit field's value lies in the document's bytes, for readers that compare it without making a `String`.
///
/// Why: the audit rules compare the same dozen `ka.*` fields against literals, lists and prefixes on every event.
/// Holding each value as a `String` meant a retain and a release per comparison (a fifth of the audit path's
/// profile); most values are plain ASCII strings that already sit in the document, so the comparison can read them
/// there. Only values whose bytes are exactly their text qualify, so a byte comparison gives the answer the
/// decoded `String` would.
public enum AuditPlainValue: Sendable, Equatable {
    /// `scalarText(at:)` and `string(at:)` are nil: no such member, or null, an array or an object.
    case absent
    /// A string with no escapes whose bytes are all ASCII: its text is exactly the document's `start ..< end`.
    /// (ASCII matters: beyond it, `String` equality follows Unicode canonical equivalence, and bytes of an indexed
    /// byte array may be invalid UTF-8 that decoding repairs.)
    case plain(start: Int, end: Int)
    /// Anything else (escapes, non-ASCII text, numbers, booleans, a value the mapping parsed from a stringified
    /// object): read it as a `String`.
    case other
}

/// Reads the values of one indexed audit document in place. Only valid inside `Event.withAuditPlainReader`, which
/// keeps the document and its bytes alive; it holds no reference of its own (so passing it around retains nothing).
public struct AuditPlainReader {
    let document: Unmanaged<IndexedAuditDocument>
    /// The document's UTF-8 bytes; `AuditPlainValue.plain` ranges index into them.
    public let bytes: UnsafeBufferPointer<UInt8>

    /// Where the value at `path` is: the same path `AuditRecord.scalarText(at:)` reads.
    public func value(at path: AuditFieldPath) -> AuditPlainValue {
        document._withUnsafeGuaranteedRef { $0.plainValue(at: path, bytes) }
    }

    /// `AuditRecord.scalarText(at:)` of the record being read.
    public func scalarText(at path: AuditFieldPath) -> String? {
        document._withUnsafeGuaranteedRef { $0.scalarText(at: path) }
    }

    /// `AuditRecord.integer(at:)` of the record being read.
    public func integer(at path: AuditFieldPath) -> Int64? {
        document._withUnsafeGuaranteedRef { $0.integer(at: path) }
    }
}

extension Event {
    /// Calls `body` with a reader of the audit document of the event at `event` in place, or nil when the event is
    /// not audit or its record is a tree (`AuditRecord(document:)`, Elasticsearch hits): those are read as Strings.
    /// (Through a pointer: a method called on `pointer.pointee` copied the whole event first.)
    public static func withAuditPlainReader<R>(_ event: UnsafePointer<Event>, _ body: (AuditPlainReader?) -> R) -> R {
        guard case .audit(let record) = event.pointee.payload, case .indexed(let document) = record.storage else {
            return body(nil)
        }
        return document.index.withBytes { bytes in
            body(AuditPlainReader(document: .passUnretained(document), bytes: bytes))
        }
    }
}

extension IndexedAuditDocument {
    func plainValue(at path: AuditFieldPath, _ bytes: UnsafeBufferPointer<UInt8>) -> AuditPlainValue {
        let (token, tree) = locate(path)
        guard let token else { return tree == nil ? .absent : .other }
        let item = index.tokens[token]
        switch item.kind {
        case .null, .array, .object: return .absent
        case .number, .true, .false: return .other
        case .string:
            let start = Int(item.start)
            let end = Int(item.end)
            guard !item.escaped, Self.isASCII(UnsafeBufferPointer(rebasing: bytes[start..<end])) else { return .other }
            return .plain(start: start, end: end)
        }
    }

    /// True when no byte has its high bit set; eight bytes at a time (values are short, but this runs once per field
    /// per event).
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        var high: UInt64 = 0
        var offset = 0
        while offset + 8 <= bytes.count {
            high |= raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < bytes.count {
            high |= UInt64(bytes[offset])
            offset += 1
        }
        return high & 0x8080_8080_8080_8080 == 0
    }
}
