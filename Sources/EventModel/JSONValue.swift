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
public struct AuditRecord: Sendable, Hashable, Codable {
    /// The audit event in raw-audit layout (top-level `verb`, `requestURI`, `user`, `objectRef`, ...).
    public var document: JSONValue
    /// Where it came from, e.g. the Elasticsearch `_index/_id` or `file:line`, for logs and alerts.
    public var sourceID: String

    public init(document: JSONValue, sourceID: String = "") {
        self.document = document
        self.sourceID = sourceID
    }
}
