#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Basics

/// Why a document could not be turned into an audit event. The message names the field.
public struct AuditMappingError: PatrolError {
    public enum Code: String, Sendable {
        /// The bytes are not JSON (or a stringified request object is not).
        case notJSON = "not_json"
        case missingField = "missing_field"
        case wrongType = "wrong_type"
    }
    public let code: Code
    public let message: String
    public let cause: Cause?
    /// The field at fault, in the source document's naming (e.g. `kubernetes.audit.verb`), or "" for the document.
    public let field: String

    init(_ code: Code, field: String, _ message: String, cause: Cause? = nil) {
        self.code = code
        self.field = field
        self.message = message
        self.cause = cause
    }
}

/// How a shipper lays out Kubernetes audit events (REFERENCE §2), and the normalisation into the raw
/// `audit.k8s.io/v1` layout that rules read (`ka.*` fields).
///
/// Used by every audit source: file and webhook read raw events; Elasticsearch holds Fluentd/Fluent Bit or
/// Elastic Agent layouts. Build one per source and reuse it; it holds no state.
public struct AuditMapping: Sendable, Hashable {
    public enum Preset: String, Sendable, CaseIterable {
        /// kube-apiserver's log file or webhook: the Event object itself.
        case raw
        /// Fluentd / Fluent Bit with logstash_format: fields at the top level, `@timestamp`, K8sCop's `origin`,
        /// request and response objects possibly stringified.
        case fluentd
        /// Elastic Agent's kubernetes.audit_logs data stream: fields under `kubernetes.audit.`, annotation keys
        /// with dots replaced by `_` (`authorization_k8s_io/decision`).
        case elasticAgent = "elastic-agent"
    }

    /// Dotted path of the object holding the audit fields ("" for the top level), e.g. `kubernetes.audit`.
    public var fieldPrefix: String
    /// Fields tried in order for the event time (RFC 3339). The first present one is used.
    public var timestampFields: [String]
    /// Annotation keys were dedotted by the shipper; restore the dots before `/` so rules see the real keys.
    public var dedottedAnnotations: Bool
    /// `requestObject` / `responseObject` may be JSON text; parse them back into objects.
    public var parseStringifiedObjects: Bool

    public init(fieldPrefix: String, timestampFields: [String], dedottedAnnotations: Bool, parseStringifiedObjects: Bool) {
        self.fieldPrefix = fieldPrefix
        self.timestampFields = timestampFields
        self.dedottedAnnotations = dedottedAnnotations
        self.parseStringifiedObjects = parseStringifiedObjects
    }

    public init(preset: Preset) {
        switch preset {
        case .raw:
            self.init(
                fieldPrefix: "", timestampFields: ["stageTimestamp", "requestReceivedTimestamp"],
                dedottedAnnotations: false, parseStringifiedObjects: false)
        case .fluentd:
            // `@timestamp` is often the ingest time, so the apiserver's own times win when present.
            self.init(
                fieldPrefix: "", timestampFields: ["stageTimestamp", "requestReceivedTimestamp", "@timestamp"],
                dedottedAnnotations: false, parseStringifiedObjects: true)
        case .elasticAgent:
            self.init(
                fieldPrefix: "kubernetes.audit", timestampFields: ["stageTimestamp", "requestReceivedTimestamp", "@timestamp"],
                dedottedAnnotations: true, parseStringifiedObjects: true)
        }
    }

    public static let raw = AuditMapping(preset: .raw)
    public static let fluentd = AuditMapping(preset: .fluentd)
    public static let elasticAgent = AuditMapping(preset: .elasticAgent)

    /// Parses one JSON document (a log line, an ES `_source`) into an audit event.
    ///
    /// The document is indexed, not built into a tree: the checks below and the rules read single paths of it
    /// (`AuditRecord.value(at:)`). Errors and the resulting `document` are the same as `event(from:)` gives.
    public func event(fromJSON bytes: UnsafeBufferPointer<UInt8>, sourceID: String = "") throws(AuditMappingError) -> Event {
        try event(fromIndex: try Self.index(Array(bytes)), sourceID: sourceID)
    }

    public func event(fromJSON text: String, sourceID: String = "") throws(AuditMappingError) -> Event {
        // The index keeps the line itself rather than a copy of its bytes.
        let index: JSONIndex
        do {
            index = try JSONIndex(text)
        } catch {
            throw Self.notJSON(error)
        }
        return try event(fromIndex: index, sourceID: sourceID)
    }

    static func index(_ bytes: [UInt8]) throws(AuditMappingError) -> JSONIndex {
        do {
            return try JSONIndex(bytes: bytes)
        } catch {
            throw notJSON(error)
        }
    }

    static func notJSON(_ error: JSONText.ParseError) -> AuditMappingError {
        AuditMappingError(
            .notJSON, field: "", "document is not JSON: \(error.reason) at byte \(error.offset)", cause: .error(error))
    }

    // Constants, not literals in the function: an array literal is allocated on every call.
    static let stringKeys: [AuditTopLevel.Key] = [.auditID, .verb, .requestURI]
    static let objectKeys: [AuditTopLevel.Key] = [.user, .objectRef, .responseStatus, .impersonatedUser]
    static let payloadKeys: [AuditTopLevel.Key] = [.requestObject, .responseObject]

    /// `event(from:)` over an index: the same checks in the same order, reading tokens instead of a tree.
    func event(fromIndex index: JSONIndex, sourceID: String) throws(AuditMappingError) -> Event {
        guard index.kind(JSONIndex.root) == .object else {
            throw AuditMappingError(.wrongType, field: "", "document is not a JSON object")
        }
        var root = JSONIndex.root
        if !fieldPrefix.isEmpty {
            var found: Int? = root
            for key in fieldPrefix.split(separator: ".") {
                found = found.flatMap { index.kind($0) == .object ? index.member($0, String(key)) : nil }
            }
            // Flat `kubernetes.audit.verb` keys are folded into a new object: that needs the tree.
            guard let found else { return try event(from: index.materialize(), sourceID: sourceID) }
            root = found
        }
        guard index.kind(root) == .object else {
            throw AuditMappingError(.missingField, field: fieldPrefix, "missing field '\(fieldPrefix)' (the audit event)")
        }
        // One pass over the audit object's members finds every member the checks below (and the common rule
        // fields) read, instead of one scan of the members per lookup.
        let top = AuditTopLevel(index, root)
        func member(_ key: AuditTopLevel.Key) -> Int? { top[key] }
        func isObjectOrNull(_ token: Int) -> Bool { index.kind(token) == .object || index.kind(token) == .null }
        for key in Self.stringKeys {
            if let token = member(key), index.kind(token) != .null, index.kind(token) != .string {
                throw AuditMappingError(.wrongType, field: name(key.rawValue), "field '\(name(key.rawValue))' must be a string")
            }
        }
        if member(.verb).map({ index.kind($0) != .string }) ?? true,
            member(.requestURI).map({ index.kind($0) != .string }) ?? true, member(.objectRef) == nil, member(.user) == nil
        {
            throw AuditMappingError(
                .missingField, field: name("verb"),
                "missing field '\(name("verb"))' (the event names no request: no verb, requestURI, objectRef or user)")
        }
        for key in Self.objectKeys {
            if let token = member(key), !isObjectOrNull(token) {
                throw AuditMappingError(.wrongType, field: name(key.rawValue), "field '\(name(key.rawValue))' must be an object")
            }
        }
        if let status = member(.responseStatus), let code = index.member(status, "code"), index.kind(code) != .number,
            index.kind(code) != .null
        {
            throw AuditMappingError(.wrongType, field: name("responseStatus.code"), "field '\(name("responseStatus.code"))' must be a number")
        }
        var replaced: [String: JSONValue] = [:]
        for key in Self.payloadKeys {
            guard let token = member(key) else { continue }
            if parseStringifiedObjects, let text = index.string(token) {
                do {
                    replaced[key.rawValue] = try JSONText.parse(text)
                } catch {
                    throw AuditMappingError(
                        .notJSON, field: name(key.rawValue),
                        "field '\(name(key.rawValue))' is a string but not JSON: \(error.reason)", cause: .error(error))
                }
            } else if !isObjectOrNull(token) {
                throw AuditMappingError(.wrongType, field: name(key.rawValue), "field '\(name(key.rawValue))' must be an object")
            }
        }
        let annotations = member(.annotations)
        let dedotted = dedottedAnnotations && annotations.map { index.kind($0) == .object } ?? false
        if !dedotted, let annotations, !isObjectOrNull(annotations) {
            throw AuditMappingError(.wrongType, field: name("annotations"), "field '\(name("annotations"))' must be an object")
        }
        var time: EpochNanoseconds?
        for key in timestampFields {
            // `@timestamp` belongs to the shipper's document, not the audit object. (The byte test first: a
            // `hasPrefix` per key and event was a visible cost.)
            let shipperField = key.utf8.first == UInt8(ascii: "@") && key.hasPrefix("@")
            let token = shipperField ? index.member(JSONIndex.root, key) : top.token(named: key, index, root: root)
            guard let token else { continue }
            let label = shipperField ? key : name(key)
            // Times hold no escapes: parsed from the document's bytes, with no String in between.
            let parsed: EpochNanoseconds?? = index.withPlainString(token) { Self.parseRFC3339(bytes: $0) }
            guard let nanos = parsed ?? index.string(token).flatMap({ Self.parseRFC3339($0) }) else {
                throw AuditMappingError(.wrongType, field: label, "field '\(label)' must be an RFC 3339 time")
            }
            time = nanos
            break
        }
        let document = IndexedAuditDocument(
            index: index, root: root, top: top, replaced: replaced, dedottedAnnotations: dedotted)
        let record = AuditRecord(indexed: document, sourceID: sourceID)
        // No time at all (trimmed or hand-written events): the time it was read is the best there is.
        return Event(time: time ?? WallClock.now(), node: "", process: ProcessInfo(), payload: .audit(record))
    }

    static func parse(_ text: String) throws(AuditMappingError) -> JSONValue {
        do {
            return try JSONText.parse(text)
        } catch {
            throw AuditMappingError(
                .notJSON, field: "", "document is not JSON: \(error.reason) at byte \(error.offset)", cause: .error(error))
        }
    }

    /// A webhook body (`{"kind":"EventList","items":[...]}`) or a single event: every event it holds.
    /// An item that does not map fails the whole body, its error naming `items[N].<field>`.
    public func events(fromJSON text: String, sourceID: String = "") throws(AuditMappingError) -> [Event] {
        let document = try Self.parse(text)
        guard document["kind"]?.stringValue == "EventList" else { return [try event(from: document, sourceID: sourceID)] }
        guard let items = document["items"]?.arrayValue else {
            throw AuditMappingError(.missingField, field: "items", "EventList without an 'items' array")
        }
        var events: [Event] = []
        events.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            do throws(AuditMappingError) {
                events.append(try event(from: item, sourceID: sourceID.isEmpty ? "" : "\(sourceID)#\(index)"))
            } catch {
                let field = "items[\(index)]" + (error.field.isEmpty ? "" : "." + error.field)
                throw AuditMappingError(error.code, field: field, "\(field): \(error.message)", cause: error.cause)
            }
        }
        return events
    }

    /// Maps an already parsed document (e.g. an Elasticsearch hit's `_source`).
    public func event(from source: JSONValue, sourceID: String = "") throws(AuditMappingError) -> Event {
        guard case .object = source else {
            throw AuditMappingError(.wrongType, field: "", "document is not a JSON object")
        }
        guard case .object(var members) = auditObject(in: source) else {
            throw AuditMappingError(.missingField, field: fieldPrefix, "missing field '\(fieldPrefix)' (the audit event)")
        }
        // Required scalars: what every rule and every alert needs.
        // Real apiserver events always carry all three, but hand-written and shipper-trimmed ones often lack
        // auditID or one of verb/requestURI; rules cope with absent fields, so only an event that names no
        // request at all is refused.
        for key in ["auditID", "verb", "requestURI"] {
            if let value = members[key], value != .null, value.stringValue == nil {
                throw AuditMappingError(.wrongType, field: name(key), "field '\(name(key))' must be a string")
            }
        }
        if members["verb"]?.stringValue == nil, members["requestURI"]?.stringValue == nil, members["objectRef"] == nil,
            members["user"] == nil
        {
            throw AuditMappingError(
                .missingField, field: name("verb"),
                "missing field '\(name("verb"))' (the event names no request: no verb, requestURI, objectRef or user)")
        }
        for key in ["user", "objectRef", "responseStatus", "impersonatedUser"] {
            if let value = members[key], !isObjectOrNull(value) {
                throw AuditMappingError(.wrongType, field: name(key), "field '\(name(key))' must be an object")
            }
        }
        if let code = members["responseStatus"]?["code"], code.numberValue == nil, code != .null {
            throw AuditMappingError(.wrongType, field: name("responseStatus.code"), "field '\(name("responseStatus.code"))' must be a number")
        }
        for key in ["requestObject", "responseObject"] {
            guard let value = members[key] else { continue }
            if parseStringifiedObjects, case .string(let text) = value {
                do {
                    members[key] = try JSONText.parse(text)
                } catch {
                    throw AuditMappingError(
                        .notJSON, field: name(key), "field '\(name(key))' is a string but not JSON: \(error.reason)",
                        cause: .error(error))
                }
            } else if !isObjectOrNull(value) {
                throw AuditMappingError(.wrongType, field: name(key), "field '\(name(key))' must be an object")
            }
        }
        if dedottedAnnotations, case .object(let annotations)? = members["annotations"] {
            var restored: [String: JSONValue] = [:]
            for (key, value) in annotations { restored[Self.redot(key)] = value }
            members["annotations"] = .object(restored)
        } else if let annotations = members["annotations"], !isObjectOrNull(annotations) {
            throw AuditMappingError(.wrongType, field: name("annotations"), "field '\(name("annotations"))' must be an object")
        }
        let time = try timestamp(members, source)
        let record = AuditRecord(document: .object(members), sourceID: sourceID)
        return Event(time: time, node: "", process: ProcessInfo(), payload: .audit(record))
    }

    /// The object holding the audit fields: nested objects along the prefix, or (as Elasticsearch may store
    /// them) flat keys `kubernetes.audit.verb` folded back into one object.
    func auditObject(in source: JSONValue) -> JSONValue? {
        if fieldPrefix.isEmpty { return source }
        if let nested = source.value(at: fieldPrefix.split(separator: "."))  { return nested }
        guard case .object(let members) = source else { return nil }
        let dotted = fieldPrefix + "."
        var folded: [String: JSONValue] = [:]
        for (key, value) in members where key.hasPrefix(dotted) {
            let inner = key.dropFirst(dotted.count)
            // `objectRef.resource` → objectRef: {resource: ...}
            let parts = inner.split(separator: ".", maxSplits: 1)
            if parts.count == 2, ["user", "objectRef", "responseStatus", "impersonatedUser"].contains(String(parts[0])) {
                var object: [String: JSONValue] = [:]
                if case .object(let members)? = folded[String(parts[0])] { object = members }
                object[String(parts[1])] = value
                folded[String(parts[0])] = .object(object)
            } else {
                folded[String(inner)] = value
            }
        }
        return folded.isEmpty ? nil : .object(folded)
    }

    /// `authorization_k8s_io/decision` → `authorization.k8s.io/decision`: the dots before the `/` were replaced.
    static func redot(_ key: String) -> String {
        guard let slash = key.firstIndex(of: "/") else { return key }
        return String(key[..<slash]).replacingUnderscores + String(key[slash...])
    }

    func name(_ key: String) -> String { fieldPrefix.isEmpty ? key : fieldPrefix + "." + key }

    func isObjectOrNull(_ value: JSONValue) -> Bool {
        switch value {
        case .object, .null: return true
        default: return false
        }
    }

    func timestamp(_ members: [String: JSONValue], _ source: JSONValue) throws(AuditMappingError) -> EpochNanoseconds {
        for key in timestampFields {
            // `@timestamp` belongs to the shipper's document, not the audit object.
            let value = key.hasPrefix("@") ? source[key] : members[key]
            guard let value else { continue }
            let label = key.hasPrefix("@") ? key : name(key)
            guard case .string(let text) = value, let nanos = Self.parseRFC3339(text) else {
                throw AuditMappingError(.wrongType, field: label, "field '\(label)' must be an RFC 3339 time")
            }
            return nanos
        }
        // No time at all (trimmed or hand-written events): the time it was read is the best there is.
        return WallClock.now()
    }

    /// `2019-02-01T10:20:30.123456Z` or with a `+hh:mm` offset → nanoseconds since the epoch.
    public static func parseRFC3339(_ text: String) -> EpochNanoseconds? {
        var text = text
        return text.withUTF8 { parseRFC3339(bytes: $0) }
    }

    static func parseRFC3339(bytes b: UnsafeBufferPointer<UInt8>) -> EpochNanoseconds? {
        func num(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var value = 0
            for i in from..<(from + count) {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                value = value * 10 + Int(b[i] - 48)
            }
            return value
        }
        guard b.count >= 20, let year = num(0, 4), b[4] == 45, let month = num(5, 2), b[7] == 45, let day = num(8, 2),
            b[10] | 0x20 == UInt8(ascii: "t") || b[10] == 32, let hour = num(11, 2), b[13] == 58, let minute = num(14, 2),
            b[16] == 58, let second = num(17, 2), (1...12).contains(month), (1...31).contains(day), hour < 24,
            minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction: Int64 = 0
        if index < b.count, b[index] == 46 {
            index += 1
            var scale: Int64 = 100_000_000
            let start = index
            while index < b.count, b[index] >= 48, b[index] <= 57 {
                fraction += Int64(b[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offsetSeconds = 0
        // Some exports drop the zone (`2024-11-13 18:34:10.595141000`); those times are UTC.
        if index == b.count {
        } else if b[index] | 0x20 == UInt8(ascii: "z") {
            index += 1
        } else if b[index] == 43 || b[index] == 45, let oh = num(index + 1, 2), b.count > index + 3, b[index + 3] == 58,
            let om = num(index + 4, 2)
        {
            offsetSeconds = (oh * 3600 + om * 60) * (b[index] == 45 ? -1 : 1)
            index += 6
        } else {
            return nil
        }
        guard index == b.count else { return nil }
        // Days from civil (proleptic Gregorian).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        let seconds = Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        guard seconds >= 0 else { return nil }
        return UInt64(seconds) * 1_000_000_000 + UInt64(fraction)
    }
}

extension String {
    fileprivate var replacingUnderscores: String {
        String(map { $0 == "_" ? "." : $0 })
    }
}

/// The members of an audit object that the field mapping and the common rule fields read, found in one pass over
/// its members (the last one wins when a name repeats, as `JSONIndex.member` and the tree keep it).
struct AuditTopLevel: Sendable {
    enum Key: String, CaseIterable {
        case auditID, verb, requestURI, user, objectRef, responseStatus, impersonatedUser, requestObject
        case responseObject, annotations, stageTimestamp, requestReceivedTimestamp, userAgent, sourceIPs, stage, level
    }

    /// The value token of each key (by `Key.lane`), -1 when absent: sixteen lanes, no allocation per event.
    private var tokens = SIMD16<Int32>(repeating: -1)

    init(_ index: JSONIndex, _ root: Int) {
        var found = SIMD16<Int32>(repeating: -1)
        // One pass with the bytes in hand (taking them per member was a visible cost).
        index.withBytes { bytes in
            index.forEachMember(root) { name, value in
                let token = index.tokens[name]
                let key: Key?
                if token.escaped {
                    key = index.string(name).flatMap(Key.init(rawValue:))
                } else {
                    key = Self.key(UnsafeBufferPointer(rebasing: bytes[Int(token.start)..<Int(token.end)]))
                }
                if let key { found[key.lane] = Int32(value) }
            }
        }
        tokens = found
    }

    /// The key whose name these bytes spell, by length first (most members are not keys).
    static func key(_ bytes: UnsafeBufferPointer<UInt8>) -> Key? {
        func equals(_ name: StaticString) -> Bool {
            name.utf8CodeUnitCount == bytes.count && memcmp(name.utf8Start, bytes.baseAddress!, bytes.count) == 0
        }
        switch bytes.count {
        case 4: return equals("verb") ? .verb : equals("user") ? .user : nil
        case 5: return equals("stage") ? .stage : equals("level") ? .level : nil
        case 7: return equals("auditID") ? .auditID : nil
        case 9: return equals("objectRef") ? .objectRef : equals("userAgent") ? .userAgent : equals("sourceIPs") ? .sourceIPs : nil
        case 10: return equals("requestURI") ? .requestURI : nil
        case 11: return equals("annotations") ? .annotations : nil
        case 13: return equals("requestObject") ? .requestObject : nil
        case 14:
            return equals("responseStatus") ? .responseStatus : equals("responseObject") ? .responseObject
                : equals("stageTimestamp") ? .stageTimestamp : nil
        case 16: return equals("impersonatedUser") ? .impersonatedUser : nil
        case 24: return equals("requestReceivedTimestamp") ? .requestReceivedTimestamp : nil
        default: return nil
        }
    }

    subscript(key: Key) -> Int? {
        let token = tokens[key.lane]
        return token < 0 ? nil : Int(token)
    }

    /// Member `name` of the audit object at `root`: from the table when it is a key, else by a scan.
    /// (By bytes: `Key(rawValue:)` compares the name with every case as Strings, which cost more than the scan.)
    func token(named name: String, _ index: JSONIndex, root: Int) -> Int? {
        var name = name
        if let key = name.withUTF8({ Self.key($0) }) { return self[key] }
        return index.member(root, name)
    }
}

extension AuditTopLevel.Key {
    var lane: Int {
        switch self {
        case .auditID: return 0
        case .verb: return 1
        case .requestURI: return 2
        case .user: return 3
        case .objectRef: return 4
        case .responseStatus: return 5
        case .impersonatedUser: return 6
        case .requestObject: return 7
        case .responseObject: return 8
        case .annotations: return 9
        case .stageTimestamp: return 10
        case .requestReceivedTimestamp: return 11
        case .userAgent: return 12
        case .sourceIPs: return 13
        case .stage: return 14
        case .level: return 15
        }
    }
}
