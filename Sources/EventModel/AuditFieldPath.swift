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
    /// The components after the first, as UTF-8 bytes back to back (one array, not one per component, so a read
    /// retains nothing per step): component `i + 1` is `restBytes[restStarts[i] ..< restStarts[i + 1]]`.
    let restBytes: [UInt8]
    let restStarts: [Int]
    /// Component `i + 1` as an array position, -1 when it is not one.
    let restPositions: [Int]

    public init(_ components: [String]) {
        self.components = components
        var first = components.first ?? ""
        topKey = first.withUTF8 { AuditTopLevel.key($0) }
        var bytes: [UInt8] = []
        var starts = [0]
        var positions: [Int] = []
        for component in components.dropFirst() {
            bytes.append(contentsOf: component.utf8)
            starts.append(bytes.count)
            positions.append(Int(component).map { $0 >= 0 ? $0 : -1 } ?? -1)
        }
        restBytes = bytes
        restStarts = starts
        restPositions = positions
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
    func locate(_ path: AuditFieldPath) -> (token: Int?, tree: JSONValue?) {
        if path.components.isEmpty { return (root, nil) }
        if !replaced.isEmpty, let value = replaced[path.components[0]] {
            return (nil, AuditRecord.walk(value, path.components.dropFirst()))
        }
        let start: Int?
        if let key = path.topKey {
            start = top[key]
            if dedottedAnnotations, key == .annotations, path.components.count > 1 {
                // Rare (Elastic Agent layout): the general reader restores the dots.
                return locateSlow(path.components)
            }
        } else {
            start = index.member(root, path.components[0])
        }
        guard var token = start else { return (nil, nil) }
        let found: Int? = path.restBytes.withUnsafeBufferPointer { bytes in
            for step in path.restPositions.indices {
                switch index.kind(token) {
                case .object:
                    let name = UnsafeBufferPointer(
                        rebasing: bytes[path.restStarts[step]..<path.restStarts[step + 1]])
                    guard let next = index.member(token, key: name) else { return nil }
                    token = next
                case .array:
                    let position = path.restPositions[step]
                    guard position >= 0, let next = index.element(token, position) else { return nil }
                    token = next
                default:
                    return nil
                }
            }
            return token
        }
        return (found, nil)
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
