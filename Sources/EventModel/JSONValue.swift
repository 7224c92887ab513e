/// A parsed JSON document, for data whose shape varies (Kubernetes audit events, request objects).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The member `key` of an object, or nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// Follows a dotted path of object members, e.g. `user.username`.
    public func value(at path: some Sequence<Substring>) -> JSONValue? {
        var current: JSONValue? = self
        for key in path { current = current?[String(key)] }
        return current
    }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var numberValue: Double? {
        if case .number(let number) = self { return number }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    /// The value as a scalar string, as rules compare it: strings as they are, integral numbers without a
    /// fraction, other numbers as Swift prints them, bools as `true`/`false`; nil for null, arrays and objects.
    public var scalarText: String? {
        switch self {
        case .string(let text): return text
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number): return Self.text(number: number)
        default: return nil
        }
    }

    /// An integral number (below 9e15 in magnitude, so exact), or a string holding a decimal integer.
    public var integerValue: Int64? {
        switch self {
        case .number(let number): return Self.integer(number: number)
        case .string(let text): return Int64(text)
        default: return nil
        }
    }

    static func text(number: Double) -> String {
        if number.rounded() == number, abs(number) < 9.0e15 { return String(Int64(number)) }
        return String(number)
    }

    static func integer(number: Double) -> Int64? {
        guard number.rounded() == number, abs(number) < 9.0e15 else { return nil }
        return Int64(number)
    }
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let items = try? container.decode([JSONValue].self) {
            self = .array(items)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .number(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        case .array(let items): try container.encode(items)
        case .object(let members): try container.encode(members)
        }
    }
}

/// A Kubernetes audit event (`audit.k8s.io/v1` Event), normalised by the audit pipeline's field mapping.
///
/// Events read from text (files, webhooks) keep the document as its bytes and a token index
/// (`JSONIndex`): rules resolve the few paths they read with `value(at:)`, and the whole tree is built only
/// when something asks for `document` (the wire encoder, a sink). Equality, hashing and coding are those of
/// `document`, whichever way it is held.
public struct AuditRecord: Sendable, Hashable, Codable {
    enum Storage: Sendable {
        case tree(JSONValue)
        case indexed(IndexedAuditDocument)
    }

    var storage: Storage
    /// Where it came from, e.g. the Elasticsearch `_index/_id` or `file:line`, for logs and alerts.
    public var sourceID: String

    /// The audit event in raw-audit layout (top-level `verb`, `requestURI`, `user`, `objectRef`, ...).
    /// For an indexed record, reading it builds the tree each time: read it once per event, or use `value(at:)`.
    public var document: JSONValue {
        get {
            switch storage {
            case .tree(let value): return value
            case .indexed(let indexed): return indexed.materialize()
            }
        }
        set { storage = .tree(newValue) }
    }

    public init(document: JSONValue, sourceID: String = "") {
        self.storage = .tree(document)
        self.sourceID = sourceID
    }

    init(indexed: IndexedAuditDocument, sourceID: String) {
        self.storage = .indexed(indexed)
        self.sourceID = sourceID
    }

    /// True when the document is held as bytes plus an index (no tree built yet).
    public var isIndexed: Bool {
        if case .indexed = storage { return true }
        return false
    }

    /// The value at a path of object member names and array positions (`["objectRef", "resource"]`,
    /// `["requestObject", "subjects", "0"]`), or nil when the path leads nowhere. Builds only that value.
    public func value(at path: [String]) -> JSONValue? {
        switch storage {
        case .tree(let root): return Self.walk(root, path[...])
        case .indexed(let indexed): return indexed.value(at: path)
        }
    }

    /// `value(at:)` when it is a string; cheaper for indexed records (no enum wrapping of the result).
    public func string(at path: [String]) -> String? {
        switch storage {
        case .tree(let root): return Self.walk(root, path[...])?.stringValue
        case .indexed(let indexed): return indexed.string(at: path)
        }
    }

    /// `value(at:)?.scalarText`, without building the value for indexed records.
    public func scalarText(at path: [String]) -> String? {
        switch storage {
        case .tree(let root): return Self.walk(root, path[...])?.scalarText
        case .indexed(let indexed): return indexed.scalarText(at: path)
        }
    }

    /// `value(at:)?.integerValue`, without building the value for indexed records.
    public func integer(at path: [String]) -> Int64? {
        switch storage {
        case .tree(let root): return Self.walk(root, path[...])?.integerValue
        case .indexed(let indexed): return indexed.integer(at: path)
        }
    }

    static func walk(_ root: JSONValue, _ path: ArraySlice<String>) -> JSONValue? {
        var current = root
        for key in path {
            switch current {
            case .object(let members):
                guard let next = members[key] else { return nil }
                current = next
            case .array(let items):
                guard let index = Int(key), items.indices.contains(index) else { return nil }
                current = items[index]
            default: return nil
            }
        }
        return current
    }

    public static func == (lhs: AuditRecord, rhs: AuditRecord) -> Bool {
        lhs.sourceID == rhs.sourceID && lhs.document == rhs.document
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(document)
        hasher.combine(sourceID)
    }

    private enum CodingKeys: String, CodingKey { case document, sourceID }

    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            document: try values.decode(JSONValue.self, forKey: .document),
            sourceID: try values.decode(String.self, forKey: .sourceID))
    }

    public func encode(to encoder: any Encoder) throws {
        var values = encoder.container(keyedBy: CodingKeys.self)
        try values.encode(document, forKey: .document)
        try values.encode(sourceID, forKey: .sourceID)
    }
}

/// An audit document held as an index of the text it was read from, plus what the field mapping changed:
/// the audit object may sit under a prefix (`kubernetes.audit`), stringified request/response objects were
/// parsed, and dedotted annotation names are compared with their dots restored.
///
/// A class, so that copying a record (every time a rule reads a field, through the event's payload enum) retains
/// one object rather than each array inside.
final class IndexedAuditDocument: Sendable {
    let index: JSONIndex
    /// The token of the audit object (the root for raw and Fluentd layouts).
    let root: Int
    /// The audit object's common members, found once by the mapping, so paths start without a scan.
    let top: AuditTopLevel
    /// Members whose value the mapping replaced (a stringified `requestObject` parsed into an object).
    let replaced: [String: JSONValue]
    /// Annotation names had their dots replaced by `_` before the `/`; rules see them restored.
    let dedottedAnnotations: Bool

    init(index: JSONIndex, root: Int, top: AuditTopLevel, replaced: [String: JSONValue], dedottedAnnotations: Bool) {
        self.index = index
        self.root = root
        self.top = top
        self.replaced = replaced
        self.dedottedAnnotations = dedottedAnnotations
    }

    func materialize() -> JSONValue {
        var members: [String: JSONValue] = [:]
        for (name, value) in index.members(root) {
            let key = index.string(name) ?? ""
            if dedottedAnnotations, key == "annotations", index.kind(value) == .object {
                var restored: [String: JSONValue] = [:]
                for (inner, innerValue) in index.members(value) {
                    restored[AuditMapping.redot(index.string(inner) ?? "")] = index.materialize(innerValue)
                }
                members[key] = .object(restored)
            } else {
                members[key] = index.materialize(value)
            }
        }
        for (key, value) in replaced { members[key] = value }
        return .object(members)
    }

    /// The token at `path`, or, when the path enters a replaced member, the tree value there.
    func locateSlow(_ path: [String]) -> (token: Int?, tree: JSONValue?) {
        guard let first = path.first else { return (root, nil) }
        if !replaced.isEmpty, let value = replaced[first] {
            return (nil, AuditRecord.walk(value, path.dropFirst()))
        }
        guard var token = top.token(named: first, index, root: root) else { return (nil, nil) }
        var rest = path.dropFirst()
        if dedottedAnnotations, first == "annotations", let key = rest.first, index.kind(token) == .object {
            var found: Int?
            for (name, value) in index.members(token) where AuditMapping.redot(index.string(name) ?? "") == key {
                found = value
            }
            guard let found else { return (nil, nil) }
            token = found
            rest = rest.dropFirst()
        }
        for key in rest {
            switch index.kind(token) {
            case .object:
                guard let next = index.member(token, key) else { return (nil, nil) }
                token = next
            case .array:
                guard let position = Int(key), let next = index.element(token, position) else { return (nil, nil) }
                token = next
            default:
                return (nil, nil)
            }
        }
        return (token, nil)
    }

    func value(at path: [String]) -> JSONValue? {
        let (token, tree) = locateSlow(path)
        if let token { return index.materialize(token) }
        return tree
    }

    func string(at path: [String]) -> String? {
        let (token, tree) = locateSlow(path)
        if let token { return index.string(token) }
        return tree?.stringValue
    }

    func scalarText(at path: [String]) -> String? {
        let (token, tree) = locateSlow(path)
        guard let token else { return tree?.scalarText }
        return scalarText(token: token)
    }

    func integer(at path: [String]) -> Int64? {
        let (token, tree) = locateSlow(path)
        guard let token else { return tree?.integerValue }
        return integer(token: token)
    }

    /// `JSONValue.scalarText` of the value at `token`, without building the value.
    func scalarText(token: Int) -> String? {
        switch index.kind(token) {
        case .string: return index.string(token)
        case .true: return "true"
        case .false: return "false"
        case .number:
            if let small = index.smallInteger(token) { return String(small) }
            return index.number(token).map(JSONValue.text(number:))
        case .null, .array, .object: return nil
        }
    }

    /// `JSONValue.integerValue` of the value at `token`, without building the value.
    func integer(token: Int) -> Int64? {
        switch index.kind(token) {
        case .number:
            // Response codes and the like: digits read directly, no String and no strtod in between.
            if let small = index.smallInteger(token) { return small }
            return index.number(token).flatMap(JSONValue.integer(number:))
        case .string: return index.string(token).flatMap { Int64($0) }
        default: return nil
        }
    }
}
