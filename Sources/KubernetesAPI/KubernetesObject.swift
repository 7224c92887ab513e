import Foundation

/// Any JSON value, for objects whose shape another module checks (a custom resource handed on as text).
public enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            // Whole numbers stay integers in the text (`generation: 3`, not `3.0`).
            if value.rounded() == value, abs(value) < 1e15 { try container.encode(Int64(value)) } else {
                try container.encode(value)
            }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    public subscript(key: String) -> JSONValue? {
        get {
            guard case .object(let fields) = self else { return nil }
            return fields[key]
        }
        set {
            guard case .object(var fields) = self else { return }
            fields[key] = newValue
            self = .object(fields)
        }
    }

    public var string: String? {
        guard case .string(let value) = self else { return nil }
        return value
    }

    /// Compact JSON text, keys sorted.
    public var text: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}

/// An API object kept whole, with the metadata every object has: for custom resources whose content another module
/// validates.
public struct KubernetesObject: Decodable, Sendable, Hashable {
    public var json: JSONValue

    public init(from decoder: any Decoder) throws { json = try JSONValue(from: decoder) }
    public init(json: JSONValue) { self.json = json }

    public var kind: String { json["kind"]?.string ?? "" }
    public var name: String { json["metadata"]?["name"]?.string ?? "" }
    /// Empty for cluster-scoped objects.
    public var namespace: String { json["metadata"]?["namespace"]?.string ?? "" }
    /// `namespace/name`, or `name` when cluster-scoped.
    public var key: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }
}
