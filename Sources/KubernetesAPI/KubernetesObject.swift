public import EventModel
import Foundation

/// An API object kept whole, with the metadata every object has: for custom resources whose content another module
/// validates.
public struct KubernetesObject: Decodable, Sendable, Hashable {
    public var json: JSONValue

    public init(from decoder: any Decoder) throws { json = try JSONValue(from: decoder) }
    public init(json: JSONValue) { self.json = json }

    public var kind: String { json["kind"]?.stringValue ?? "" }
    public var name: String { json["metadata"]?["name"]?.stringValue ?? "" }
    /// Empty for cluster-scoped objects.
    public var namespace: String { json["metadata"]?["namespace"]?.stringValue ?? "" }
    /// `namespace/name`, or `name` when cluster-scoped.
    public var key: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }
}
