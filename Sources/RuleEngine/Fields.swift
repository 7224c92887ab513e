#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EventModel

/// The type of a condition field. Comparisons are checked against it when rules load.
public enum FieldType: String, Sendable, Hashable {
    case string
    case int
    case bool
    /// Multi-valued: comparisons hold when any element satisfies them.
    case strings = "list<string>"
    /// Multi-valued: comparisons hold when any element satisfies them.
    case ints = "list<int>"

    var isList: Bool { self == .strings || self == .ints }
}

/// Values derived from one event the first time a rule asks for them, then reused by later rules.
/// Lives on the evaluator's stack for the duration of one `evaluate` call.
struct Scratch {
    /// The event's application-profile judgement, when the caller has one (anomaly rules read it).
    var profile: ProfileJudgement?
    var procName: String?
    var cmdline: String?
    var dnsName: String?
    var fdDirectory: String?
    var fdFilename: String?
    var syscallIDs: [Int64]?
    var uriParams: [String: String]?
    var podLabels: [String]?
    /// Audit fields that many rules read (`AuditSlot`), resolved once per event; empty (no allocation) until the
    /// first audit field is read, so sensor events pay nothing for them.
    var auditStrings: [String?] = []
    var auditInts: [Int64?] = []
    var auditResolved: UInt64 = 0
    /// The indexed audit document being evaluated, read in place; set by the evaluator for the duration of one
    /// `evaluate` call (nil for sensor events and for audit records held as trees).
    var plainReader: AuditPlainReader?
    /// Per `AuditSlot`: where the field's value lies in the document, once resolved (bit set in `auditPlainResolved`).
    var auditPlain: [AuditPlainValue] = []
    var auditPlainResolved: UInt64 = 0

    /// Where `field`'s value lies in the document being evaluated; `.other` when there is no reader.
    @inline(__always)
    mutating func plainValue(_ field: PlainField) -> AuditPlainValue {
        if auditPlainResolved & (1 << UInt64(field.slot.rawValue)) != 0 { return auditPlain[field.slot.rawValue] }
        return resolvePlain(field)
    }

    mutating func resolvePlain(_ field: PlainField) -> AuditPlainValue {
        guard let reader = plainReader else { return .other }
        var value = reader.value(at: field.path)
        if field.uriPath, case .plain(let start, let end) = value, end > start,
            let hit = memchr(reader.bytes.baseAddress! + start, Int32(UInt8(ascii: "?")), end - start)
        {
            // `ka.uri.path`: the request URI up to its query string, as the String getter cuts it.
            value = .plain(start: start, end: UnsafeRawPointer(hit) - UnsafeRawPointer(reader.bytes.baseAddress!))
        }
        if auditPlain.isEmpty { auditPlain = Array(repeating: .other, count: AuditSlot.allCases.count) }
        auditPlain[field.slot.rawValue] = value
        auditPlainResolved |= 1 << UInt64(field.slot.rawValue)
        return value
    }

    /// The bytes of a `.plain` value of the document being evaluated.
    @inline(__always)
    func plainBytes(_ start: Int, _ end: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: plainReader.unsafelyUnwrapped.bytes.baseAddress! + start, count: end - start)
    }

    /// `test` on the bytes of `field`'s value when they lie in the document; false when the field is absent; the
    /// `String` comparison (`fallback`) for any other value, so both ways give one answer.
    @inline(__always)
    mutating func withPlain(
        _ field: PlainField, _ event: EventPointer, _ fallback: Matcher, _ test: (UnsafeBufferPointer<UInt8>) -> Bool
    ) -> Bool {
        switch plainValue(field) {
        case .plain(let start, let end):
            return test(plainBytes(start, end))
        case .absent:
            return false
        case .other:
            return fallback(event, &self)
        }
    }

    /// The cached value of `slot`, resolving it from the event's audit record the first time.
    @inline(__always)
    mutating func auditString(_ slot: AuditSlot, _ event: EventPointer, _ resolve: (AuditRecord) -> String?) -> String? {
        let bit: UInt64 = 1 << UInt64(slot.rawValue)
        if auditResolved & bit != 0 { return auditStrings[slot.rawValue] }
        guard case .audit(let record) = event.pointee.payload else { return nil }
        let value = resolve(record)
        if auditStrings.isEmpty { auditStrings = Array(repeating: nil, count: AuditSlot.allCases.count) }
        auditStrings[slot.rawValue] = value
        auditResolved |= bit
        return value
    }

    /// The cached value of the string field at `path` in `slot`: read through `plainReader` when there is one (no
    /// copy of the record out of the event), else from the record.
    @inline(__always)
    mutating func auditString(_ slot: AuditSlot, _ event: EventPointer, path: AuditFieldPath) -> String? {
        let bit: UInt64 = 1 << UInt64(slot.rawValue)
        if auditResolved & bit != 0 { return auditStrings[slot.rawValue] }
        let value: String?
        if let reader = plainReader {
            if auditPlainResolved & bit != 0, case .plain(let start, let end) = auditPlain[slot.rawValue] {
                // Already located by a comparison: its bytes are its text.
                value = String(decoding: plainBytes(start, end), as: UTF8.self)
            } else {
                value = reader.scalarText(at: path)
            }
        } else {
            guard case .audit(let record) = event.pointee.payload else { return nil }
            value = record.scalarText(at: path)
        }
        if auditStrings.isEmpty { auditStrings = Array(repeating: nil, count: AuditSlot.allCases.count) }
        auditStrings[slot.rawValue] = value
        auditResolved |= bit
        return value
    }

    /// The cached value of the integer field at `path` in `slot`, read like `auditString(_:_:path:)`.
    @inline(__always)
    mutating func auditInt(_ slot: AuditSlot, _ event: EventPointer, path: AuditFieldPath) -> Int64? {
        let bit: UInt64 = 1 << UInt64(slot.rawValue)
        if auditResolved & bit != 0 { return auditInts[slot.rawValue] }
        let value: Int64?
        if let reader = plainReader {
            value = reader.integer(at: path)
        } else {
            guard case .audit(let record) = event.pointee.payload else { return nil }
            value = record.integer(at: path)
        }
        if auditInts.isEmpty { auditInts = Array(repeating: nil, count: AuditSlot.allCases.count) }
        auditInts[slot.rawValue] = value
        auditResolved |= bit
        return value
    }
}

/// Audit fields cached per event in `Scratch`: the ones the shipped rules read over and over (`ka.user.name`
/// appears 79 times in them, `ka.verb` 65), so each is looked up and decoded once per event, not once per rule.
enum AuditSlot: Int, CaseIterable {
    case auditID, stage, level, verb, uri, userName, impersonatedUserName, userAgent, targetNamespace, targetResource
    case targetName, targetSubresource, targetAPIGroup, responseCode, responseReason, authDecision, authReason
    case requestURIString, uriPath, kubectl, bindingRole, bindingRoleKind, serviceType

    static let byField: [String: AuditSlot] = [
        "ka.auditid": .auditID, "ka.stage": .stage, "ka.level": .level, "ka.verb": .verb, "ka.uri": .uri,
        "ka.user.name": .userName, "ka.impuser.name": .impersonatedUserName, "ka.useragent": .userAgent,
        "ka.target.namespace": .targetNamespace, "ka.target.resource": .targetResource, "ka.target.name": .targetName,
        "ka.target.subresource": .targetSubresource, "ka.target.apigroup": .targetAPIGroup,
        "ka.response.code": .responseCode, "ka.response.reason": .responseReason, "ka.auth.decision": .authDecision,
        "ka.auth.reason": .authReason, "ka.req.binding.role": .bindingRole, "ka.req.binding.role_kind": .bindingRoleKind,
        "ka.req.service.type": .serviceType,
    ]
}

/// A cached audit field whose comparisons may read the value's bytes in the document (`AuditPlainValue`) instead
/// of a `String` copy of it.
struct PlainField: Sendable {
    let slot: AuditSlot
    /// The path the field's `String` getter reads with `scalarText(at:)` (for `ka.uri.path`, the request URI).
    let path: AuditFieldPath
    /// `ka.uri.path`: the bytes of the request URI up to its `?`.
    var uriPath = false
}

/// The request URI as a string (stringValue semantics, as the URI-derived fields always read it), cached.
@inline(__always)
func requestURI(_ event: EventPointer, _ scratch: inout Scratch) -> String? {
    scratch.auditString(.requestURIString, event) { $0.string(at: requestURIPath) }
}

/// Conditions receive the event by pointer: closures stored in generic containers are reabstracted, and
/// a large struct passed by value through those thunks would be copied (and retained) on every call.
typealias EventPointer = UnsafePointer<Event>
typealias StringGetter = @Sendable (EventPointer, inout Scratch) -> String?
typealias IntGetter = @Sendable (EventPointer, inout Scratch) -> Int64?
typealias BoolGetter = @Sendable (EventPointer, inout Scratch) -> Bool?
typealias StringsGetter = @Sendable (EventPointer, inout Scratch) -> ArraySlice<String>?
typealias IntsGetter = @Sendable (EventPointer, inout Scratch) -> [Int64]?

/// How to read one field from an event; nil means "not present" (every comparison is then false).
enum Extractor: Sendable {
    case string(StringGetter)
    case int(IntGetter)
    case bool(BoolGetter)
    case strings(StringsGetter)
    case ints(IntsGetter)

    var type: FieldType {
        switch self {
        case .string: return .string
        case .int: return .int
        case .bool: return .bool
        case .strings: return .strings
        case .ints: return .ints
        }
    }

    /// The value as text, for output templates, alert fields and sequence keys.
    func render(_ event: EventPointer, _ scratch: inout Scratch) -> String? {
        switch self {
        case .string(let get): return get(event, &scratch)
        case .int(let get): return get(event, &scratch).map { String($0) }
        case .bool(let get): return get(event, &scratch).map { $0 ? "true" : "false" }
        case .strings(let get): return get(event, &scratch).map { $0.joined(separator: " ") }
        case .ints(let get): return get(event, &scratch).map { $0.map { String($0) }.joined(separator: ",") }
        }
    }
}

/// One row of the field registry.
struct FieldSpec: Sendable {
    enum Argument: Sendable {
        case none
        /// `name[arg]` form; the text says what the argument is.
        case required(String)
    }
    let name: String
    let type: FieldType
    /// The event kinds the field exists for.
    let kinds: Set<EventKind>
    let argument: Argument
    let doc: String
    /// Builds the extractor; receives the bracket argument for `name[arg]` fields. Returns nil when the
    /// argument is invalid (the string says why).
    let make: @Sendable (String?) -> Result<Extractor, FieldArgumentError>
    /// Set for cached audit string fields: comparisons may read the value in place (`Compiler.plainComparison`).
    var plain: PlainField? = nil
}

struct FieldArgumentError: Error { let reason: String }

let sensorKinds = Set(EventKind.allCases).subtracting([.audit])
let allKinds = Set(EventKind.allCases)

// MARK: Payload access

extension Event {
    @inline(__always) var execPayload: Exec? {
        if case .exec(let value) = payload { return value }
        return nil
    }
    @inline(__always) var openPayload: FileOpen? {
        if case .open(let value) = payload { return value }
        return nil
    }
    /// For `connect` and `accept`; `outgoing` is true for connect.
    @inline(__always) var flowPayload: (flow: NetworkFlow, outgoing: Bool)? {
        switch payload {
        case .connect(let flow): return (flow, true)
        case .accept(let flow): return (flow, false)
        default: return nil
        }
    }
    @inline(__always) var auditRecord: AuditRecord? {
        if case .audit(let record) = payload { return record }
        return nil
    }
    /// The executable: for exec events the new image, otherwise the process's.
    @inline(__always) var procExe: String {
        if case .exec(let value) = payload, !value.path.isEmpty { return value.path }
        return process.exe
    }
}

func basename(_ path: String) -> String {
    withBytes(path) { bytes in
        var index = bytes.count
        while index > 0, bytes[index - 1] != UInt8(ascii: "/") { index -= 1 }
        if index == 0 { return path }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[index...]), as: UTF8.self)
    }
}

func dirname(_ path: String) -> String {
    withBytes(path) { bytes in
        var index = bytes.count
        while index > 0, bytes[index - 1] != UInt8(ascii: "/") { index -= 1 }
        if index == 0 { return "." }
        if index == 1 { return "/" }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[..<(index - 1)]), as: UTF8.self)
    }
}

/// `address:port`, with IPv6 addresses in brackets.
func endpointText(_ address: String, _ port: UInt16) -> String {
    address.utf8.contains(UInt8(ascii: ":")) ? "[\(address)]:\(port)" : "\(address):\(port)"
}

// MARK: JSON helpers for audit fields

/// The JSON value as a scalar string: strings as is, integral numbers without a fraction, bools as
/// `true`/`false`; nil for null, arrays and objects.
func jsonScalarText(_ value: JSONValue?) -> String? { value?.scalarText }

func jsonInt(_ value: JSONValue?) -> Int64? { value?.integerValue }

/// A JSON path: object member names and array indexes, `*` meaning every element.
struct JSONPath: Sendable {
    let components: [String]

    /// RFC 6901 pointer (`/a/b/0`, `~1` for `/`, `~0` for `~`).
    init?(pointer: String) {
        guard pointer.hasPrefix("/") else { return nil }
        components = pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).replacing("~1", with: "/").replacing("~0", with: "~")
        }
    }

    init(_ components: [String]) { self.components = components }

    var hasWildcard: Bool { components.contains("*") }

    func single(_ root: JSONValue) -> JSONValue? {
        var current = root
        for key in components {
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

    /// Every value the path reaches, expanding `*` over arrays and objects; arrays at the end are flattened.
    func all(_ root: JSONValue) -> [JSONValue] {
        var current = [root]
        for key in components {
            var next: [JSONValue] = []
            for value in current {
                switch value {
                case .object(let members):
                    if key == "*" { next.append(contentsOf: members.values) } else if let v = members[key] { next.append(v) }
                case .array(let items):
                    if key == "*" { next.append(contentsOf: items) } else if let i = Int(key), items.indices.contains(i) {
                        next.append(items[i])
                    }
                default: break
                }
            }
            current = next
        }
        return current.flatMap { value -> [JSONValue] in
            if case .array(let items) = value { return items }
            return [value]
        }
    }
}

/// Decodes `%XX` and `+` in a query-string component.
func percentDecode(_ text: Substring) -> String {
    guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return String(text) }
    var bytes: [UInt8] = []
    var iterator = Array(text.utf8)[...]
    while let byte = iterator.popFirst() {
        if byte == UInt8(ascii: "+") {
            bytes.append(UInt8(ascii: " "))
        } else if byte == UInt8(ascii: "%"), iterator.count >= 2,
            let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16)
        {
            bytes.append(value)
            iterator = iterator.dropFirst(2)
        } else {
            bytes.append(byte)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

func queryParameters(of uri: String) -> [String: String] {
    guard let question = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return [:] }
    var result: [String: String] = [:]
    for bytes in uri.utf8[uri.utf8.index(after: question)...].split(separator: UInt8(ascii: "&")) {
        let pair = Substring(bytes)
        if let equals = pair.utf8.firstIndex(of: UInt8(ascii: "=")) {
            let key = percentDecode(pair[..<equals])
            if result[key] == nil { result[key] = percentDecode(pair[pair.index(after: equals)...]) }
        } else {
            let key = percentDecode(pair)
            if result[key] == nil { result[key] = "" }
        }
    }
    return result
}

/// Every decoded value of `key` in the URI's query string, in order (exec's `command=` repeats).
func queryParameterValues(of uri: String, _ key: String) -> [String] {
    guard let question = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return [] }
    var values: [String] = []
    for bytes in uri.utf8[uri.utf8.index(after: question)...].split(separator: UInt8(ascii: "&")) {
        let pair = Substring(bytes)
        let equals = pair.utf8.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
        guard percentDecode(pair[..<equals]) == key else { continue }
        values.append(equals == pair.endIndex ? "" : percentDecode(pair[pair.index(after: equals)...]))
    }
    return values
}

/// A path that may hold `*`: the part before the first `*` is resolved in the record (building only that value),
/// the rest with `JSONPath.all` over it.
struct AuditPath: Sendable {
    let base: [String]
    let rest: JSONPath

    init(_ components: [String]) {
        let split = components.firstIndex(of: "*") ?? components.count
        base = Array(components[..<split])
        rest = JSONPath(Array(components[split...]))
    }

    func all(_ record: AuditRecord) -> [JSONValue] {
        guard let value = record.value(at: base) else { return [] }
        return rest.all(value)
    }
}

let requestSpecPath = ["requestObject", "spec"]
let requestURIPath = AuditFieldPath(["requestURI"])

/// The pod specs a request creates: a Pod's own spec, a workload's pod template, a CronJob's job template.
func podSpecs(_ record: AuditRecord) -> [JSONValue] {
    guard let spec = record.value(at: requestSpecPath) else { return [] }
    var specs: [JSONValue] = []
    if spec["containers"] != nil || spec["ephemeralContainers"] != nil || spec["initContainers"] != nil
        || spec["volumes"] != nil || spec["hostNetwork"] != nil || spec["hostPID"] != nil || spec["hostIPC"] != nil
    {
        specs.append(spec)
    }
    if let template = spec["template"]?["spec"] { specs.append(template) }
    if let template = spec["jobTemplate"]?["spec"]?["template"]?["spec"] { specs.append(template) }
    return specs
}

func podContainers(_ record: AuditRecord) -> [JSONValue] {
    podSpecs(record).flatMap { spec in
        ["containers", "initContainers", "ephemeralContainers"].flatMap { spec[$0]?.arrayValue ?? [] }
    }
}

func podFlag(_ record: AuditRecord, _ key: String) -> Bool? {
    let specs = podSpecs(record)
    if specs.isEmpty { return nil }
    return specs.contains { $0[key] == .bool(true) }
}

/// The paths `kubectlCommand` reads, prepared once.
enum KubectlPaths {
    static let verb = AuditFieldPath(["verb"])
    static let resource = AuditFieldPath(["objectRef", "resource"])
    static let namespace = AuditFieldPath(["objectRef", "namespace"])
    static let name = AuditFieldPath(["objectRef", "name"])
    static let subresource = AuditFieldPath(["objectRef", "subresource"])
}

/// The kubectl command that makes this request, as K8sCop reported it for its categories.
func kubectlCommand(_ record: AuditRecord) -> String? {
    guard let verb = record.string(at: KubectlPaths.verb), let resource = record.string(at: KubectlPaths.resource)
    else { return nil }
    let namespace = record.string(at: KubectlPaths.namespace)
    let name = record.string(at: KubectlPaths.name)
    let subresource = record.string(at: KubectlPaths.subresource)
    var scope = namespace.map { " -n \($0)" } ?? ""
    if subresource == "exec" || subresource == "attach", let name {
        let uri = record.string(at: requestURIPath) ?? ""
        let container = queryParameterValues(of: uri, "container").first.map { " -c \($0)" } ?? ""
        if subresource == "attach" { return "kubectl attach\(scope) \(name)\(container)" }
        let command = queryParameterValues(of: uri, "command").joined(separator: " ")
        return "kubectl exec\(scope) \(name)\(container) -- \(command)"
    }
    if subresource == "portforward", let name { return "kubectl port-forward\(scope) \(name)" }
    if subresource == "log", let name { return "kubectl logs\(scope) \(name)" }
    switch verb {
    case "list", "watch":
        if namespace == nil, resource != "namespaces", resource != "nodes", !resource.hasPrefix("cluster") {
            scope = " --all-namespaces"
        }
        return "kubectl get \(resource)\(scope)"
    case "get": return name.map { "kubectl describe \(resource) \($0)\(scope)" } ?? "kubectl get \(resource)\(scope)"
    case "create": return "kubectl create \(resource)\(name.map { " " + $0 } ?? "")\(scope)"
    case "delete": return "kubectl delete \(resource)\(name.map { " " + $0 } ?? "")\(scope)"
    case "deletecollection": return "kubectl delete \(resource) --all\(scope)"
    case "update": return "kubectl replace \(resource)\(name.map { " " + $0 } ?? "")\(scope)"
    case "patch": return "kubectl patch \(resource)\(name.map { " " + $0 } ?? "")\(scope)"
    default: return nil
    }
}

// MARK: The registry

/// Every field conditions and output templates may use. Add a field by adding one row here.
enum FieldRegistry {
    static func string(
        _ name: String, _ kinds: Set<EventKind>, _ doc: String, _ get: @escaping StringGetter
    ) -> FieldSpec {
        FieldSpec(name: name, type: .string, kinds: kinds, argument: .none, doc: doc) { _ in .success(.string(get)) }
    }
    static func int(_ name: String, _ kinds: Set<EventKind>, _ doc: String, _ get: @escaping IntGetter) -> FieldSpec {
        FieldSpec(name: name, type: .int, kinds: kinds, argument: .none, doc: doc) { _ in .success(.int(get)) }
    }
    static func bool(_ name: String, _ kinds: Set<EventKind>, _ doc: String, _ get: @escaping BoolGetter) -> FieldSpec {
        FieldSpec(name: name, type: .bool, kinds: kinds, argument: .none, doc: doc) { _ in .success(.bool(get)) }
    }
    static func strings(
        _ name: String, _ kinds: Set<EventKind>, _ doc: String, _ get: @escaping StringsGetter
    ) -> FieldSpec {
        FieldSpec(name: name, type: .strings, kinds: kinds, argument: .none, doc: doc) { _ in .success(.strings(get)) }
    }
    static func ints(_ name: String, _ kinds: Set<EventKind>, _ doc: String, _ get: @escaping IntsGetter) -> FieldSpec {
        FieldSpec(name: name, type: .ints, kinds: kinds, argument: .none, doc: doc) { _ in .success(.ints(get)) }
    }
    /// A multi-valued audit field computed from the document.
    static func auditStrings(_ name: String, _ doc: String, _ get: @escaping @Sendable (AuditRecord) -> [String]) -> FieldSpec {
        strings(name, [.audit], doc) { e, _ in e.pointee.auditRecord.map { ArraySlice(get($0)) } }
    }
    static func auditBool(_ name: String, _ doc: String, _ get: @escaping @Sendable (AuditRecord) -> Bool?) -> FieldSpec {
        bool(name, [.audit], doc) { e, _ in e.pointee.auditRecord.flatMap(get) }
    }
    /// `ka.uri.path`'s spec, marked so its comparisons may read the request URI's bytes up to the `?` in place.
    static func uriPath(_ spec: FieldSpec) -> FieldSpec {
        var spec = spec
        spec.plain = PlainField(slot: .uriPath, path: requestURIPath, uriPath: true)
        return spec
    }

    /// The in-place form of a field without an argument, when it has one.
    static func plainField(_ reference: String) -> PlainField? { simple[reference]?.plain }

    /// An audit field read from a fixed path of the audit document.
    static func audit(_ name: String, _ path: [String], _ type: FieldType = .string, _ doc: String) -> FieldSpec {
        let wildcard = AuditPath(path)
        let path = AuditFieldPath(path)
        let slot = AuditSlot.byField[name]
        var plain: PlainField?
        if type == .string, let slot { plain = PlainField(slot: slot, path: path) }
        return FieldSpec(name: name, type: type, kinds: [.audit], argument: .none, doc: doc, make: { _ in
            switch type {
            case .int:
                // `integer(at:)`/`scalarText(at:)` read the token where it lies: building the JSONValue first
                // (then converting it) cost more than the lookup.
                if let slot { return .success(.int { e, s in s.auditInt(slot, e, path: path) }) }
                return .success(.int { event, _ in event.pointee.auditRecord.flatMap { $0.integer(at: path) } })
            case .strings:
                return .success(
                    .strings { event, _ in
                        guard let record = event.pointee.auditRecord else { return nil }
                        return ArraySlice(wildcard.all(record).compactMap(jsonScalarText))
                    })
            default:
                if let slot {
                    return .success(.string { e, s in s.auditString(slot, e, path: path) })
                }
                return .success(.string { event, _ in event.pointee.auditRecord.flatMap { $0.scalarText(at: path) } })
            }
        }, plain: plain)
    }

    static let table: [FieldSpec] = [
        // Application profile (set by the collector for container events; docs/profiles.md)
        string("profile.state", sensorKinds, "The workload container's profile state: `learning`, `partial`, `final`, `failed`; empty without a profile.") { _, s in
            s.profile?.state ?? ""
        },
        bool("profile.unexpected", sensorKinds, "The event shows behaviour its final profile lacks, for the first time in this container.") { _, s in
            !(s.profile?.unexpected.isEmpty ?? true)
        },
        string("profile.behaviour", sensorKinds, "The unexpected behaviour in words (`exec /bin/sh -c id`); several joined by `; `.") { _, s in
            s.profile.map { $0.unexpected.joined(separator: "; ") } ?? ""
        },
        string("profile.workload", sensorKinds, "The profiled workload, `namespace/Kind/name`.") { _, s in
            s.profile?.workload ?? ""
        },
        string("profile.allow", sensorKinds, "The `patrolctl profiles allow ...` command(s) that add the unexpected behaviour; several joined by `; `.") { _, s in
            s.profile.map { $0.allowCommands.joined(separator: "; ") } ?? ""
        },
        // Event
        string("evt.kind", allKinds, "The event kind (`exec`, `open`, ...).") { e, _ in e.pointee.kind.rawValue },
        int("evt.count", allKinds, "How many identical events the sensor folded into this one.") { e, _ in
            Int64(e.pointee.count)
        },
        string("evt.node", allKinds, "The node (host name) the event came from.") { e, _ in e.pointee.node },
        string(
            "evt.target", [.exec, .open, .connect, .accept, .dns],
            "What the event acts on, for templates shared by several kinds: the exec or opened path, the remote "
                + "(connect) or local (accept) `address:port`, the normalised DNS name."
        ) { e, s in
            switch e.pointee.payload {
            case .exec(let exec): return exec.path
            case .open(let open): return open.path
            case .connect(let flow): return endpointText(flow.remoteAddress, flow.remotePort)
            case .accept(let flow): return endpointText(flow.localAddress, flow.localPort)
            case .dns(let query):
                if let cached = s.dnsName { return cached }
                let name = normalisedDNSName(query.name)
                s.dnsName = name
                return name
            default: return nil
            }
        },
        // Process
        string("proc.exe", sensorKinds, "Executable path; for exec events the new image.") { e, _ in e.pointee.procExe },
        string("proc.name", sensorKinds, "Base name of `proc.exe` (falls back to `proc.comm`).") { e, s in
            if let cached = s.procName { return cached }
            let exe = e.pointee.procExe
            let name = exe.isEmpty ? e.pointee.process.comm : basename(exe)
            s.procName = name
            return name
        },
        string("proc.comm", sensorKinds, "The kernel's command name (at most 15 bytes).") { e, _ in e.pointee.process.comm },
        strings("proc.args", [.exec], "Arguments after argv[0] (multi-valued).") { e, _ in
            e.pointee.execPayload.map { $0.argv.dropFirst() }
        },
        string("proc.cmdline", [.exec], "argv joined by spaces (argv[0] first); the path when argv is empty.") { e, s in
            if let cached = s.cmdline { return cached }
            guard let exec = e.pointee.execPayload else { return nil }
            let line = exec.argv.isEmpty ? exec.path : exec.argv.joined(separator: " ")
            s.cmdline = line
            return line
        },
        strings("proc.env", [.exec], "Environment entries the sensor keeps, as `NAME=value` (multi-valued).") { e, _ in
            e.pointee.execPayload.map { $0.env[...] }
        },
        FieldSpec(
            name: "proc.env", type: .string, kinds: [.exec], argument: .required("variable name"),
            doc: "`proc.env[NAME]`: the value of one kept environment variable."
        ) { argument in
            let prefix = (argument ?? "") + "="
            return .success(
                .string { e, _ in
                    guard let env = e.pointee.execPayload?.env else { return nil }
                    for entry in env where entry.hasPrefix(prefix) { return String(entry.dropFirst(prefix.count)) }
                    return nil
                })
        },
        int("proc.pid", sensorKinds, "Process id.") { e, _ in Int64(e.pointee.process.pid) },
        int("proc.ppid", sensorKinds, "Parent process id.") { e, _ in Int64(e.pointee.process.ppid) },
        int("proc.tid", sensorKinds, "Thread id.") { e, _ in Int64(e.pointee.process.tid) },
        int("proc.uid", sensorKinds, "User id.") { e, _ in Int64(e.pointee.process.uid) },
        int("proc.gid", sensorKinds, "Group id.") { e, _ in Int64(e.pointee.process.gid) },
        string("proc.cwd", sensorKinds, "Working directory.") { e, _ in e.pointee.process.cwd },
        bool("exec.upper_layer", [.exec], "The executable is in the container's writable layer (drift).") { e, _ in
            e.pointee.execPayload?.upperLayer
        },
        bool("exec.from_volume", [.exec], "The executable is under one of the container's volume mounts.") { e, _ in
            e.pointee.execPayload?.fromVolume
        },
        bool("exec.stdio_socket", [.exec], "The new program's stdin or stdout is a socket (reverse shell shape).") { e, _ in
            e.pointee.execPayload?.stdioSocket
        },
        int("exit.code", [.exit], "Exit code.") { e, _ in
            if case .exit(let x) = e.pointee.payload { return Int64(x.code) }
            return nil
        },
        int("exit.signal", [.exit], "Terminating signal, 0 if none.") { e, _ in
            if case .exit(let x) = e.pointee.payload { return Int64(x.signal) }
            return nil
        },
        // Container and Kubernetes; absent (nil) for host processes.
        string("container.id", sensorKinds, "Container id; absent on the host.") { e, _ in e.pointee.container?.containerID },
        string("container.name", sensorKinds, "Container name.") { e, _ in e.pointee.container?.containerName },
        string("container.image", sensorKinds, "Container image.") { e, _ in e.pointee.container?.image },
        string("container.runtime", sensorKinds, "Container runtime.") { e, _ in e.pointee.container?.runtime },
        string("k8s.ns.name", sensorKinds, "Pod namespace.") { e, _ in e.pointee.container?.namespace },
        string("k8s.pod.name", sensorKinds, "Pod name.") { e, _ in e.pointee.container?.podName },
        string("k8s.pod.uid", sensorKinds, "Pod UID.") { e, _ in e.pointee.container?.podUID },
        // Labels and owner come from the Kubernetes API when the sensor has one; empty otherwise.
        FieldSpec(
            name: "k8s.pod.label", type: .string, kinds: sensorKinds, argument: .required("label key"),
            doc: "`k8s.pod.label[KEY]`: the value of one pod label; absent when the pod has no such label."
        ) { argument in
            let key = argument ?? ""
            return .success(.string { e, _ in e.pointee.container?.labels[key] })
        },
        strings("k8s.pod.labels", sensorKinds, "Pod labels as `key=value`, sorted by key (multi-valued).") { e, s in
            if let cached = s.podLabels { return cached[...] }
            guard let labels = e.pointee.container?.labels else { return nil }
            let entries = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            s.podLabels = entries
            return entries[...]
        },
        // Absent (not empty) when unknown, so `not k8s.owner.kind exists` finds bare pods and API-less sensors.
        string("k8s.owner.kind", sensorKinds, "Workload kind: `Deployment`, `StatefulSet`, `CronJob`, ...") { e, _ in
            e.pointee.container.flatMap { $0.ownerKind.isEmpty ? nil : $0.ownerKind }
        },
        string("k8s.owner.name", sensorKinds, "Workload name (a ReplicaSet's Deployment, a Job's CronJob).") { e, _ in
            e.pointee.container.flatMap { $0.ownerName.isEmpty ? nil : $0.ownerName }
        },
        // Files
        string("fd.name", [.open], "The opened path.") { e, _ in e.pointee.openPayload?.path },
        string("fd.directory", [.open], "Directory part of `fd.name`.") { e, s in
            if let cached = s.fdDirectory { return cached }
            guard let path = e.pointee.openPayload?.path else { return nil }
            let dir = dirname(path)
            s.fdDirectory = dir
            return dir
        },
        string("fd.filename", [.open], "Last component of `fd.name`.") { e, s in
            if let cached = s.fdFilename { return cached }
            guard let path = e.pointee.openPayload?.path else { return nil }
            let file = basename(path)
            s.fdFilename = file
            return file
        },
        int("fd.flags", [.open], "open(2) flags.") { e, _ in e.pointee.openPayload.map { Int64($0.flags) } },
        bool("fd.write", [.open], "Opened for writing (O_WRONLY, O_RDWR, O_CREAT or O_TRUNC).") { e, _ in
            e.pointee.openPayload.map { ($0.flags & 0o3) != 0 || ($0.flags & 0o1100) != 0 }
        },
        int("fd.result", [.open], "File descriptor or negative errno.") { e, _ in e.pointee.openPayload.map { Int64($0.result) } },
        bool("open.from_volume", [.open], "The opened path is under one of the container's volume mounts.") { e, _ in
            e.pointee.openPayload?.fromVolume
        },
        // Network: dport/daddr are the remote end for connect and the local end for accept.
        int("net.dport", [.connect, .accept], "Destination port.") { e, _ in
            e.pointee.flowPayload.map { Int64($0.outgoing ? $0.flow.remotePort : $0.flow.localPort) }
        },
        string("net.daddr", [.connect, .accept], "Destination address.") { e, _ in
            e.pointee.flowPayload.map { $0.outgoing ? $0.flow.remoteAddress : $0.flow.localAddress }
        },
        int("net.sport", [.connect, .accept], "Source port.") { e, _ in
            e.pointee.flowPayload.map { Int64($0.outgoing ? $0.flow.localPort : $0.flow.remotePort) }
        },
        string("net.saddr", [.connect, .accept], "Source address.") { e, _ in
            e.pointee.flowPayload.map { $0.outgoing ? $0.flow.localAddress : $0.flow.remoteAddress }
        },
        string("net.proto", [.connect, .accept], "`tcp`, `udp` or `unspecified`.") { e, _ in
            e.pointee.flowPayload?.flow.proto.rawValue
        },
        string("net.family", [.connect, .accept], "`inet`, `inet6`, `unix` or `unspecified`.") { e, _ in
            e.pointee.flowPayload?.flow.family.rawValue
        },
        int("net.result", [.connect, .accept], "0 or negative errno.") { e, _ in e.pointee.flowPayload.map { Int64($0.flow.result) } },
        // DNS
        string("dns.name", [.dns], "Query name, lowercased, trailing dot removed.") { e, s in
            if let cached = s.dnsName { return cached }
            guard case .dns(let query) = e.pointee.payload else { return nil }
            let name = normalisedDNSName(query.name)
            s.dnsName = name
            return name
        },
        int("dns.type", [.dns], "Numeric query type (1 = A, 28 = AAAA).") { e, _ in
            if case .dns(let query) = e.pointee.payload { return Int64(query.queryType) }
            return nil
        },
        strings("dns.answers", [.dns], "Answer addresses (multi-valued).") { e, _ in
            if case .dns(let query) = e.pointee.payload { return query.answers[...] }
            return nil
        },
        // Syscalls, capabilities, modules, namespaces
        ints("syscall.ids", [.syscalls], "Syscall numbers used in the window (multi-valued).") { e, s in
            if let cached = s.syscallIDs { return cached }
            guard case .syscalls(let set) = e.pointee.payload else { return nil }
            let ids = set.syscalls.map { Int64($0) }
            s.syscallIDs = ids
            return ids
        },
        int("cap.id", [.capability], "Capability number (CAP_SYS_ADMIN = 21).") { e, _ in
            if case .capability(let use) = e.pointee.payload { return Int64(use.capability) }
            return nil
        },
        string("cap.name", [.capability], "Capability name, e.g. `CAP_SYS_ADMIN`.") { e, _ in
            guard case .capability(let use) = e.pointee.payload else { return nil }
            return LinuxNames.capability(use.capability)
        },
        int("cap.syscall", [.capability], "The syscall that asked for the capability.") { e, _ in
            if case .capability(let use) = e.pointee.payload { return Int64(use.syscall) }
            return nil
        },
        bool("cap.granted", [.capability], "The kernel granted the capability.") { e, _ in
            if case .capability(let use) = e.pointee.payload { return use.granted }
            return nil
        },
        string("module.name", [.moduleLoad], "Kernel module name.") { e, _ in
            if case .moduleLoad(let load) = e.pointee.payload { return load.name }
            return nil
        },
        string("module.syscall", [.moduleLoad], "`init_module` or `finit_module`.") { e, _ in
            if case .moduleLoad(let load) = e.pointee.payload { return load.syscall }
            return nil
        },
        string("ns.syscall", [.namespaceChange], "`unshare`, `setns` or `mount`.") { e, _ in
            if case .namespaceChange(let change) = e.pointee.payload { return change.syscall }
            return nil
        },
        int("ns.flags", [.namespaceChange], "CLONE_NEW* flags, or mount flags.") { e, _ in
            if case .namespaceChange(let change) = e.pointee.payload { return Int64(bitPattern: change.flags) }
            return nil
        },
        string("mount.source", [.namespaceChange], "Mount source (or setns target path).") { e, _ in
            if case .namespaceChange(let change) = e.pointee.payload { return change.source }
            return nil
        },
        string("mount.target", [.namespaceChange], "Mount target directory.") { e, _ in
            if case .namespaceChange(let change) = e.pointee.payload { return change.target }
            return nil
        },
        string("mount.fstype", [.namespaceChange], "Mount file-system type.") { e, _ in
            if case .namespaceChange(let change) = e.pointee.payload { return change.fsType }
            return nil
        },
        string("memfd.name", [.memfd], "memfd_create name.") { e, _ in
            if case .memfd(let memfd) = e.pointee.payload { return memfd.name }
            return nil
        },
        int("memfd.flags", [.memfd], "memfd_create flags.") { e, _ in
            if case .memfd(let memfd) = e.pointee.payload { return Int64(memfd.flags) }
            return nil
        },
        string("link.target", [.link], "What the new link points to.") { e, _ in
            if case .link(let link) = e.pointee.payload { return link.target }
            return nil
        },
        string("link.path", [.link], "The new link's path.") { e, _ in
            if case .link(let link) = e.pointee.payload { return link.linkPath }
            return nil
        },
        bool("link.symbolic", [.link], "Symbolic (true) or hard (false) link.") { e, _ in
            if case .link(let link) = e.pointee.payload { return link.symbolic }
            return nil
        },
        int("bpf.cmd", [.bpf], "bpf(2) command number.") { e, _ in
            if case .bpf(let call) = e.pointee.payload { return Int64(call.command) }
            return nil
        },
        int("ptrace.request", [.ptrace], "ptrace request.") { e, _ in
            if case .ptrace(let attach) = e.pointee.payload { return Int64(attach.request) }
            return nil
        },
        int("ptrace.pid", [.ptrace], "Target pid.") { e, _ in
            if case .ptrace(let attach) = e.pointee.payload { return Int64(attach.targetPid) }
            return nil
        },
        string("scan.signature", [.scanResult], "Malware signature name.") { e, _ in
            if case .scanResult(let scan) = e.pointee.payload { return scan.signature }
            return nil
        },
        string("scan.path", [.scanResult], "Infected file path.") { e, _ in
            if case .scanResult(let scan) = e.pointee.payload { return scan.path }
            return nil
        },
        string("scan.sha256", [.scanResult], "File SHA-256.") { e, _ in
            if case .scanResult(let scan) = e.pointee.payload { return scan.sha256 }
            return nil
        },
        bool("scan.part_of_image", [.scanResult], "File comes from the image's lower layers.") { e, _ in
            if case .scanResult(let scan) = e.pointee.payload { return scan.partOfImage }
            return nil
        },
        // Kubernetes audit (raw audit.k8s.io/v1 layout).
        audit("ka.auditid", ["auditID"], .string, "Audit ID, shared by all stages of one request."),
        audit("ka.stage", ["stage"], .string, "`RequestReceived`, `ResponseStarted`, `ResponseComplete`, `Panic`."),
        audit("ka.level", ["level"], .string, "Audit level."),
        audit("ka.verb", ["verb"], .string, "Request verb."),
        audit("ka.uri", ["requestURI"], .string, "Request URI with query string."),
        audit("ka.user.name", ["user", "username"], .string, "User name."),
        audit("ka.user.groups", ["user", "groups"], .strings, "User groups (multi-valued)."),
        audit("ka.impuser.name", ["impersonatedUser", "username"], .string, "Impersonated user name."),
        audit("ka.useragent", ["userAgent"], .string, "User agent."),
        audit("ka.sourceips", ["sourceIPs"], .strings, "Source IPs (multi-valued)."),
        audit("ka.target.namespace", ["objectRef", "namespace"], .string, "Target namespace."),
        audit("ka.target.resource", ["objectRef", "resource"], .string, "Target resource (`pods`, `secrets`, ...)."),
        audit("ka.target.name", ["objectRef", "name"], .string, "Target object name."),
        audit("ka.target.subresource", ["objectRef", "subresource"], .string, "Target subresource (`exec`, ...)."),
        audit("ka.target.apigroup", ["objectRef", "apiGroup"], .string, "Target API group."),
        audit("ka.response.code", ["responseStatus", "code"], .int, "HTTP response code."),
        audit("ka.response.reason", ["responseStatus", "reason"], .string, "Response reason."),
        audit("ka.auth.decision", ["annotations", "authorization.k8s.io/decision"], .string, "`allow` or `forbid`."),
        audit("ka.auth.reason", ["annotations", "authorization.k8s.io/reason"], .string, "Authorization reason."),
        FieldSpec(
            name: "ka.uri.param", type: .string, kinds: [.audit], argument: .required("query parameter name"),
            doc: "`ka.uri.param[NAME]`: a decoded query parameter of the request URI."
        ) { argument in
            let key = argument ?? ""
            return .success(
                .string { e, s in
                    if s.uriParams == nil {
                        guard let uri = requestURI(e, &s) else { return nil }
                        s.uriParams = queryParameters(of: uri)
                    }
                    return s.uriParams?[key]
                })
        },
        audit("ka.impuser.groups", ["impersonatedUser", "groups"], .strings, "Impersonated user groups (multi-valued)."),
        uriPath(string("ka.uri.path", [.audit], "Request URI without the query string.") { e, s in
            guard let uri = requestURI(e, &s) else { return nil }
            return s.auditString(.uriPath, e) { _ in
                // memchr over the bytes: the generic `utf8.firstIndex(of:)` was a visible cost per event.
                withBytes(uri) { bytes in
                    guard !bytes.isEmpty, let hit = memchr(bytes.baseAddress!, Int32(UInt8(ascii: "?")), bytes.count) else { return uri }
                    let count = UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self)) - bytes.baseAddress!
                    return String(decoding: UnsafeBufferPointer(rebasing: bytes[..<count]), as: UTF8.self)
                }
            }
        }),
        FieldSpec(
            name: "ka.uri.params", type: .strings, kinds: [.audit], argument: .required("query parameter name"),
            doc: "`ka.uri.params[NAME]`: every decoded value of a repeated query parameter (multi-valued)."
        ) { argument in
            let key = argument ?? ""
            return .success(
                .strings { e, s in
                    guard let uri = requestURI(e, &s) else { return nil }
                    return ArraySlice(queryParameterValues(of: uri, key))
                })
        },
        string(
            "ka.exec.command", [.audit],
            "For exec/attach: the command from the repeated `command=` parameters, URL-decoded, joined by spaces."
        ) { e, s in
            guard let uri = requestURI(e, &s) else { return nil }
            let words = queryParameterValues(of: uri, "command")
            return words.isEmpty ? nil : words.joined(separator: " ")
        },
        string("ka.exec.container", [.audit], "For exec/attach: the `container=` parameter.") { e, s in
            guard let uri = requestURI(e, &s) else { return nil }
            return queryParameterValues(of: uri, "container").first
        },
        string("ka.kubectl", [.audit], "The equivalent kubectl command for the request (best effort).") { e, s in
            s.auditString(.kubectl, e, kubectlCommand)
        },
        auditStrings("ka.req.pod.containers.image", "Images of every container, init and ephemeral container.") {
            podContainers($0).compactMap { $0["image"]?.stringValue }
        },
        auditStrings(
            "ka.req.pod.containers.privileged",
            "`securityContext.privileged` of every container, init and ephemeral container (`true`/`false`)."
        ) { podContainers($0).compactMap { jsonScalarText($0["securityContext"]?["privileged"]) } },
        auditStrings("ka.req.pod.containers.add_capabilities", "Capabilities added by any container.") {
            podContainers($0).flatMap { JSONPath(["securityContext", "capabilities", "add"]).all($0).compactMap(jsonScalarText) }
        },
        auditStrings("ka.req.pod.volumes.hostpath", "hostPath volume paths of the pod (or pod template).") {
            podSpecs($0).flatMap { JSONPath(["volumes", "*", "hostPath", "path"]).all($0).compactMap(jsonScalarText) }
        },
        auditBool("ka.req.pod.host_network", "The pod (or template) uses the host network.") {
            podFlag($0, "hostNetwork")
        },
        auditBool("ka.req.pod.host_pid", "The pod (or template) uses the host PID namespace.") { podFlag($0, "hostPID") },
        auditBool("ka.req.pod.host_ipc", "The pod (or template) uses the host IPC namespace.") { podFlag($0, "hostIPC") },
        audit("ka.req.binding.role", ["requestObject", "roleRef", "name"], .string, "Role a (Cluster)RoleBinding refers to."),
        audit("ka.req.binding.role_kind", ["requestObject", "roleRef", "kind"], .string, "`Role` or `ClusterRole`."),
        audit("ka.req.binding.subjects", ["requestObject", "subjects", "*", "name"], .strings, "Binding subject names."),
        audit("ka.req.role.rules.verbs", ["requestObject", "rules", "*", "verbs"], .strings, "Verbs of every rule of a (Cluster)Role."),
        audit(
            "ka.req.role.rules.resources", ["requestObject", "rules", "*", "resources"], .strings,
            "Resources of every rule of a (Cluster)Role."),
        audit("ka.req.service.type", ["requestObject", "spec", "type"], .string, "Service type (`NodePort`, ...)."),
        auditBool("ka.req.ingress.tls", "The Ingress has a non-empty `spec.tls`.") { record in
            guard let spec = record.value(at: requestSpecPath) else { return nil }
            return !(spec["tls"]?.arrayValue ?? []).isEmpty
        },
        auditStrings("ka.req.configmap.entries", "A ConfigMap's `data` as `key=value` strings.") { record in
            guard case .object(let data)? = record.value(at: ["requestObject", "data"]) else { return [] }
            return data.map { "\($0.key)=\(jsonScalarText($0.value) ?? "")" }
        },
        FieldSpec(
            name: "ka.annotation", type: .string, kinds: [.audit], argument: .required("annotation key"),
            doc: "`ka.annotation[KEY]`: an audit annotation."
        ) { argument in
            let path = AuditFieldPath(["annotations", argument ?? ""])
            return .success(.string { e, _ in e.pointee.auditRecord.flatMap { $0.scalarText(at: path) } })
        },
        FieldSpec(
            name: "jevt.value", type: .string, kinds: [.audit], argument: .required("JSON pointer"),
            doc: "`jevt.value[/json/pointer]`: a scalar of the audit document, as text."
        ) { argument in
            guard let path = JSONPath(pointer: argument ?? ""), !path.hasWildcard else {
                return .failure(FieldArgumentError(reason: "jevt.value needs a JSON pointer like /objectRef/name (no *)"))
            }
            let components = AuditFieldPath(path.components)
            return .success(.string { e, _ in e.pointee.auditRecord.flatMap { $0.scalarText(at: components) } })
        },
        FieldSpec(
            name: "jevt.int", type: .int, kinds: [.audit], argument: .required("JSON pointer"),
            doc: "`jevt.int[/json/pointer]`: an integer of the audit document."
        ) { argument in
            guard let path = JSONPath(pointer: argument ?? ""), !path.hasWildcard else {
                return .failure(FieldArgumentError(reason: "jevt.int needs a JSON pointer like /responseStatus/code"))
            }
            let components = AuditFieldPath(path.components)
            return .success(.int { e, _ in e.pointee.auditRecord.flatMap { $0.integer(at: components) } })
        },
        FieldSpec(
            name: "jevt.values", type: .strings, kinds: [.audit], argument: .required("JSON pointer with * wildcards"),
            doc: "`jevt.values[/requestObject/spec/containers/*/image]`: every scalar the pointer reaches (multi-valued)."
        ) { argument in
            guard let path = JSONPath(pointer: argument ?? "") else {
                return .failure(FieldArgumentError(reason: "jevt.values needs a JSON pointer like /a/*/b"))
            }
            let wildcard = AuditPath(path.components)
            return .success(
                .strings { e, _ in
                    guard let record = e.pointee.auditRecord else { return nil }
                    return ArraySlice(wildcard.all(record).compactMap(jsonScalarText))
                })
        },
    ]

    private static let simple: [String: FieldSpec] = {
        var map: [String: FieldSpec] = [:]
        for spec in table { if case .none = spec.argument { map[spec.name] = spec } }
        return map
    }()
    private static let withArgument: [String: FieldSpec] = {
        var map: [String: FieldSpec] = [:]
        for spec in table { if case .required = spec.argument { map[spec.name] = spec } }
        return map
    }()

    static var names: [String] { table.map(\.name) }

    /// Splits `name[arg]`.
    static func split(_ reference: String) -> (name: String, argument: String?) {
        guard reference.hasSuffix("]"), let open = reference.firstIndex(of: "[") else { return (reference, nil) }
        return (String(reference[..<open]), String(reference[reference.index(after: open)..<reference.index(before: reference.endIndex)]))
    }

    /// True when `reference` names a field (possibly with an argument); does not validate the argument.
    static func isField(_ reference: String) -> Bool {
        let (name, argument) = split(reference)
        return argument == nil ? simple[name] != nil : withArgument[name] != nil
    }

    /// The spec and extractor for a field reference, or the reason it is not one.
    static func resolve(_ reference: String) -> Result<(FieldSpec, Extractor), FieldArgumentError> {
        let (name, argument) = split(reference)
        if let argument {
            guard let spec = withArgument[name] else {
                return .failure(FieldArgumentError(reason: "unknown field '\(reference)'" + didYouMean(name, withArgument.keys)))
            }
            return spec.make(argument).map { (spec, $0) }
        }
        guard let spec = simple[name] else {
            if withArgument[name] != nil {
                return .failure(FieldArgumentError(reason: "field '\(name)' needs an argument: \(name)[...]"))
            }
            return .failure(FieldArgumentError(reason: "unknown field '\(name)'" + didYouMean(name, names)))
        }
        return spec.make(nil).map { (spec, $0) }
    }
}

/// A field conditions can use, for documentation and tooling.
public struct FieldInfo: Sendable, Hashable {
    public let name: String
    public let type: FieldType
    public let kinds: [EventKind]
    /// Non-nil for `name[argument]` fields: what the argument is.
    public let argument: String?
    public let summary: String
}

extension FieldInfo {
    /// Every field the rule language knows.
    public static var all: [FieldInfo] {
        FieldRegistry.table.map { spec in
            var argument: String?
            if case .required(let text) = spec.argument { argument = text }
            return FieldInfo(
                name: spec.name, type: spec.type, kinds: EventKind.allCases.filter { spec.kinds.contains($0) },
                argument: argument, summary: spec.doc)
        }
    }
}
