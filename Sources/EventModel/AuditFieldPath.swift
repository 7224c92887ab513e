/// A path into an audit document (`["objectRef", "resource"]`), prepared once when a rule is loaded rather than on
/// every read.
///
/// Why: the rule fields read the same fixed paths of every event. Reading with a `[String]` path matched the first
/// component against the audit object's common members (`AuditTopLevel`) and turned every later component into
/// bytes on each call; this keeps the top-level member's key and the inner names' bytes, so a read is a table
/// lookup plus byte comparisons. The result is the same as `AuditRecord`'s `[String]` reads give.
public struct AuditFieldPath: Sendable {
    /// The member names and array positions, as given.
    public let components: [String]
    /// The first component's key among the audit object's common members, when it is one.
    let topKey: AuditTopLevel.Key?
    /// Every component after the first, as UTF-8 bytes (member names) and as an array position when it is one.
    let rest: [(bytes: [UInt8], position: Int?)]

    public init(_ components: [String]) {
        self.components = components
        var first = components.first ?? ""
        topKey = first.withUTF8 { AuditTopLevel.key($0) }
        rest = components.dropFirst().map { (Array($0.utf8), Int($0)) }
    }
}

extension AuditRecord {
    /// `string(at: path.components)`.
    public func string(at path: AuditFieldPath) -> String? {
        switch storage {
        case .tree(let root): return Self.walk(root, path.components[...])?.stringValue
        case .indexed(let indexed): return indexed.string(at: path)
        }
    }

    /// `scalarText(at: path.components)`.
    public func scalarText(at path: AuditFieldPath) -> String? {
        switch storage {
        case .tree(let root): return Self.walk(root, path.components[...])?.scalarText
        case .indexed(let indexed): return indexed.scalarText(at: path)
        }
    }

    /// `integer(at: path.components)`.
    public func integer(at path: AuditFieldPath) -> Int64? {
        switch storage {
        case .tree(let root): return Self.walk(root, path.components[...])?.integerValue
        case .indexed(let indexed): return indexed.integer(at: path)
        }
    }
}

extension IndexedAuditDocument {
    /// `locate(path.components)`, starting from the top-level key and comparing inner names as bytes.
    private func locate(_ path: AuditFieldPath) -> (token: Int?, tree: JSONValue?) {
        guard let first = path.components.first else { return (root, nil) }
        if !replaced.isEmpty, let value = replaced[first] {
            return (nil, AuditRecord.walk(value, path.components.dropFirst()))
        }
        let start = path.topKey.map { top[$0] } ?? index.member(root, first)
        guard var token = start else { return (nil, nil) }
        var rest = path.rest[...]
        if dedottedAnnotations, first == "annotations", index.kind(token) == .object, path.components.count > 1 {
            // Rare (Elastic Agent layout): the general reader restores the dots.
            return locateSlow(path.components)
        }
        while let (bytes, position) = rest.popFirst() {
            switch index.kind(token) {
            case .object:
                let next = bytes.withUnsafeBufferPointer { index.member(token, key: $0) }
                guard let next else { return (nil, nil) }
                token = next
            case .array:
                guard let position, let next = index.element(token, position) else { return (nil, nil) }
                token = next
            default:
                return (nil, nil)
            }
        }
        return (token, nil)
    }

    func string(at path: AuditFieldPath) -> String? {
        let (token, tree) = locate(path)
        if let token { return index.string(token) }
        return tree?.stringValue
    }

    func scalarText(at path: AuditFieldPath) -> String? {
        let (token, tree) = locate(path)
        guard let token else { return tree?.scalarText }
        return scalarText(token: token)
    }

    func integer(at path: AuditFieldPath) -> Int64? {
        let (token, tree) = locate(path)
        guard let token else { return tree?.integerValue }
        return integer(token: token)
    }
}
