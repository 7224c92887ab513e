internal import CProtobufC
internal import CWireProto
import EventModel

// The messages of admin.proto (`patrol.v1.AdminService`) that the collector's admin service and patrolctl
// exchange. Resources travel as text documents and listings as tables, so these types stay generic.

/// How a document's body is written.
public enum AdminDocumentFormat: UInt32, Sendable, Hashable {
    case unspecified = 0
    case yaml = 1
    case json = 2
}

/// One resource as text (`Document`).
public struct AdminDocument: Sendable, Hashable {
    public var name: String
    public var namespace: String
    public var format: AdminDocumentFormat
    public var body: String

    public init(name: String = "", namespace: String = "", format: AdminDocumentFormat = .yaml, body: String) {
        self.name = name
        self.namespace = namespace
        self.format = format
        self.body = body
    }
}

/// A listing (`Table`): column names and rows with one cell per column.
public struct AdminTable: Sendable, Hashable {
    public var columns: [String]
    public var rows: [[String]]

    public init(columns: [String], rows: [[String]] = []) {
        self.columns = columns
        self.rows = rows
    }
}

/// `ListRequest`. `filter` is in the resource's own terms; the admin service documents each.
public struct AdminListRequest: Sendable, Hashable {
    public var namespace: String
    public var filter: String
    public var limit: UInt32
    public var pageToken: String

    public init(namespace: String = "", filter: String = "", limit: UInt32 = 0, pageToken: String = "") {
        self.namespace = namespace
        self.filter = filter
        self.limit = limit
        self.pageToken = pageToken
    }
}

/// `ListReply`.
public struct AdminListReply: Sendable, Hashable {
    public var table: AdminTable
    public var nextPageToken: String

    public init(table: AdminTable, nextPageToken: String = "") {
        self.table = table
        self.nextPageToken = nextPageToken
    }
}

/// `GetRequest`.
public struct AdminGetRequest: Sendable, Hashable {
    public var name: String
    public var namespace: String
    public var format: AdminDocumentFormat

    public init(name: String, namespace: String = "", format: AdminDocumentFormat = .yaml) {
        self.name = name
        self.namespace = namespace
        self.format = format
    }
}

/// `ApplyRequest`.
public struct AdminApplyRequest: Sendable, Hashable {
    public var documents: [AdminDocument]
    public var dryRun: Bool

    public init(documents: [AdminDocument], dryRun: Bool = false) {
        self.documents = documents
        self.dryRun = dryRun
    }
}

/// `ApplyAction`.
public enum AdminApplyAction: UInt32, Sendable, Hashable {
    case unspecified = 0
    case created = 1
    case updated = 2
    case unchanged = 3
    case rejected = 4

    public var word: String {
        switch self {
        case .unspecified: return "unknown"
        case .created: return "created"
        case .updated: return "updated"
        case .unchanged: return "unchanged"
        case .rejected: return "rejected"
        }
    }
}

/// `ApplyResult`: what happened to one document.
public struct AdminApplyResult: Sendable, Hashable {
    public var name: String
    public var namespace: String
    public var action: AdminApplyAction
    public var message: String

    public init(name: String, namespace: String = "", action: AdminApplyAction, message: String = "") {
        self.name = name
        self.namespace = namespace
        self.action = action
        self.message = message
    }
}

/// `DeleteRequest`.
public struct AdminDeleteRequest: Sendable, Hashable {
    public var name: String
    public var namespace: String

    public init(name: String, namespace: String = "") {
        self.name = name
        self.namespace = namespace
    }
}

/// `ProfileAllowRequest`: one behaviour to add to a workload container's profile, as an event kind plus fields
/// (docs/patrolctl.md lists the fields per kind).
public struct AdminProfileAllowRequest: Sendable, Hashable {
    public var name: String
    public var namespace: String
    public var container: String
    /// The behaviour's event kind; nil only with `finalize`.
    public var kind: EventKind?
    public var fields: [String: String]
    /// End learning now instead of adding a behaviour (`patrolctl profiles finalize`).
    public var finalize: Bool

    public init(
        name: String, namespace: String, container: String, kind: EventKind?, fields: [String: String] = [:],
        finalize: Bool = false
    ) {
        self.name = name
        self.namespace = namespace
        self.container = container
        self.kind = kind
        self.fields = fields
        self.finalize = finalize
    }
}

extension WireCodec {
    // MARK: Document, Table

    private static func fill(_ document: AdminDocument, into arena: inout Arena) -> UnsafeMutablePointer<
        Patrol__V1__Document
    > {
        let message = arena.allocate(Patrol__V1__Document.self)
        patrol__v1__document__init(message)
        message.pointee.name = arena.cString(document.name)
        message.pointee.namespace_ = arena.cString(document.namespace)
        message.pointee.format = Patrol__V1__DocumentFormat(rawValue: document.format.rawValue)
        message.pointee.body = arena.cString(document.body)
        return message
    }

    private static func read(_ document: Patrol__V1__Document, _ field: String) throws(WireFormatError)
        -> AdminDocument
    {
        guard let format = AdminDocumentFormat(rawValue: document.format.rawValue) else {
            throw WireFormatError(
                .invalidValue, "\(field).format \(document.format.rawValue) is not a known DocumentFormat")
        }
        return AdminDocument(
            name: try controlText(document.name, "\(field).name"),
            namespace: try controlText(document.namespace_, "\(field).namespace"), format: format,
            body: try controlText(document.body, "\(field).body"))
    }

    // MARK: ListRequest / ListReply

    public static func encode(_ value: AdminListRequest) -> [UInt8] {
        var arena = Arena(capacity: 512)
        let message = arena.allocate(Patrol__V1__ListRequest.self)
        patrol__v1__list_request__init(message)
        message.pointee.namespace_ = arena.cString(value.namespace)
        message.pointee.filter = arena.cString(value.filter)
        message.pointee.limit = value.limit
        message.pointee.page_token = arena.cString(value.pageToken)
        return pack(message)
    }

    public static func decodeAdminListRequest(_ bytes: [UInt8]) throws(WireFormatError) -> AdminListRequest {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "ListRequest")
            guard let message = patrol__v1__list_request__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("ListRequest", raw.count)
            }
            defer { patrol__v1__list_request__free_unpacked(message, nil) }
            let request = message.pointee
            return AdminListRequest(
                namespace: try controlText(request.namespace_, "ListRequest.namespace"),
                filter: try controlText(request.filter, "ListRequest.filter"), limit: request.limit,
                pageToken: try controlText(request.page_token, "ListRequest.page_token"))
        }
    }

    public static func encode(_ value: AdminListReply) -> [UInt8] {
        var arena = Arena(capacity: 4096)
        let message = arena.allocate(Patrol__V1__ListReply.self)
        patrol__v1__list_reply__init(message)
        let table = arena.allocate(Patrol__V1__Table.self)
        patrol__v1__table__init(table)
        table.pointee.n_columns = value.table.columns.count
        table.pointee.columns = arena.cStrings(value.table.columns)
        if !value.table.rows.isEmpty {
            let rows = arena.allocate(UnsafeMutablePointer<Patrol__V1__TableRow>?.self, count: value.table.rows.count)
            for (index, cells) in value.table.rows.enumerated() {
                let row = arena.allocate(Patrol__V1__TableRow.self)
                patrol__v1__table_row__init(row)
                row.pointee.n_cells = cells.count
                row.pointee.cells = arena.cStrings(cells)
                rows[index] = row
            }
            table.pointee.n_rows = value.table.rows.count
            table.pointee.rows = rows
        }
        message.pointee.table = table
        message.pointee.next_page_token = arena.cString(value.nextPageToken)
        return pack(message)
    }

    public static func decodeAdminListReply(_ bytes: [UInt8]) throws(WireFormatError) -> AdminListReply {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "ListReply")
            guard let message = patrol__v1__list_reply__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("ListReply", raw.count)
            }
            defer { patrol__v1__list_reply__free_unpacked(message, nil) }
            var table = AdminTable(columns: [])
            if let pointer = message.pointee.table {
                let wire = pointer.pointee
                table.columns = try controlTexts(wire.n_columns, wire.columns, "ListReply.table.columns")
                for index in 0..<wire.n_rows {
                    guard let row = wire.rows[index]?.pointee else {
                        throw WireFormatError(.malformed, "ListReply.table.rows[\(index)] is missing")
                    }
                    let cells = try controlTexts(row.n_cells, row.cells, "ListReply.table.rows[\(index)].cells")
                    guard cells.count == table.columns.count else {
                        throw WireFormatError(
                            .invalidValue,
                            "ListReply.table.rows[\(index)] has \(cells.count) cells for \(table.columns.count) columns"
                        )
                    }
                    table.rows.append(cells)
                }
            }
            return AdminListReply(
                table: table,
                nextPageToken: try controlText(message.pointee.next_page_token, "ListReply.next_page_token"))
        }
    }

    // MARK: GetRequest / GetReply

    public static func encode(_ value: AdminGetRequest) -> [UInt8] {
        var arena = Arena(capacity: 512)
        let message = arena.allocate(Patrol__V1__GetRequest.self)
        patrol__v1__get_request__init(message)
        message.pointee.name = arena.cString(value.name)
        message.pointee.namespace_ = arena.cString(value.namespace)
        message.pointee.format = Patrol__V1__DocumentFormat(rawValue: value.format.rawValue)
        return pack(message)
    }

    public static func decodeAdminGetRequest(_ bytes: [UInt8]) throws(WireFormatError) -> AdminGetRequest {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "GetRequest")
            guard let message = patrol__v1__get_request__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("GetRequest", raw.count)
            }
            defer { patrol__v1__get_request__free_unpacked(message, nil) }
            let request = message.pointee
            guard let format = AdminDocumentFormat(rawValue: request.format.rawValue) else {
                throw WireFormatError(
                    .invalidValue, "GetRequest.format \(request.format.rawValue) is not a known DocumentFormat")
            }
            return AdminGetRequest(
                name: try controlText(request.name, "GetRequest.name"),
                namespace: try controlText(request.namespace_, "GetRequest.namespace"), format: format)
        }
    }

    /// `GetReply` holding `document`.
    public static func encodeGetReply(_ document: AdminDocument) -> [UInt8] {
        var arena = Arena(capacity: 1024 + document.body.utf8.count)
        let message = arena.allocate(Patrol__V1__GetReply.self)
        patrol__v1__get_reply__init(message)
        message.pointee.document = fill(document, into: &arena)
        return pack(message)
    }

    public static func decodeAdminGetReply(_ bytes: [UInt8]) throws(WireFormatError) -> AdminDocument {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "GetReply")
            guard let message = patrol__v1__get_reply__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("GetReply", raw.count)
            }
            defer { patrol__v1__get_reply__free_unpacked(message, nil) }
            guard let document = message.pointee.document else {
                throw WireFormatError(.missingField, "GetReply.document is missing")
            }
            return try read(document.pointee, "GetReply.document")
        }
    }

    // MARK: ApplyRequest / ApplyReply

    public static func encode(_ value: AdminApplyRequest) -> [UInt8] {
        var arena = Arena(capacity: 1024 + value.documents.reduce(0) { $0 + $1.body.utf8.count + 64 })
        let message = arena.allocate(Patrol__V1__ApplyRequest.self)
        patrol__v1__apply_request__init(message)
        if !value.documents.isEmpty {
            let pointers = arena.allocate(
                UnsafeMutablePointer<Patrol__V1__Document>?.self, count: value.documents.count)
            for (index, document) in value.documents.enumerated() { pointers[index] = fill(document, into: &arena) }
            message.pointee.n_documents = value.documents.count
            message.pointee.documents = pointers
        }
        message.pointee.dry_run = value.dryRun ? 1 : 0
        return pack(message)
    }

    public static func decodeAdminApplyRequest(_ bytes: [UInt8]) throws(WireFormatError) -> AdminApplyRequest {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "ApplyRequest")
            guard let message = patrol__v1__apply_request__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("ApplyRequest", raw.count)
            }
            defer { patrol__v1__apply_request__free_unpacked(message, nil) }
            var documents: [AdminDocument] = []
            for index in 0..<message.pointee.n_documents {
                guard let document = message.pointee.documents[index]?.pointee else {
                    throw WireFormatError(.malformed, "ApplyRequest.documents[\(index)] is missing")
                }
                documents.append(try read(document, "ApplyRequest.documents[\(index)]"))
            }
            return AdminApplyRequest(documents: documents, dryRun: message.pointee.dry_run != 0)
        }
    }

    public static func encode(_ value: [AdminApplyResult]) -> [UInt8] {
        var arena = Arena(capacity: 1024)
        let message = arena.allocate(Patrol__V1__ApplyReply.self)
        patrol__v1__apply_reply__init(message)
        if !value.isEmpty {
            let pointers = arena.allocate(UnsafeMutablePointer<Patrol__V1__ApplyResult>?.self, count: value.count)
            for (index, result) in value.enumerated() {
                let wire = arena.allocate(Patrol__V1__ApplyResult.self)
                patrol__v1__apply_result__init(wire)
                wire.pointee.name = arena.cString(result.name)
                wire.pointee.namespace_ = arena.cString(result.namespace)
                wire.pointee.action = Patrol__V1__ApplyAction(rawValue: result.action.rawValue)
                wire.pointee.message = arena.cString(result.message)
                pointers[index] = wire
            }
            message.pointee.n_results = value.count
            message.pointee.results = pointers
        }
        return pack(message)
    }

    public static func decodeAdminApplyReply(_ bytes: [UInt8]) throws(WireFormatError) -> [AdminApplyResult] {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "ApplyReply")
            guard let message = patrol__v1__apply_reply__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("ApplyReply", raw.count)
            }
            defer { patrol__v1__apply_reply__free_unpacked(message, nil) }
            var results: [AdminApplyResult] = []
            for index in 0..<message.pointee.n_results {
                guard let result = message.pointee.results[index]?.pointee else {
                    throw WireFormatError(.malformed, "ApplyReply.results[\(index)] is missing")
                }
                guard let action = AdminApplyAction(rawValue: result.action.rawValue) else {
                    throw WireFormatError(
                        .invalidValue,
                        "ApplyReply.results[\(index)].action \(result.action.rawValue) is not a known ApplyAction")
                }
                results.append(
                    AdminApplyResult(
                        name: try controlText(result.name, "ApplyReply.results[\(index)].name"),
                        namespace: try controlText(result.namespace_, "ApplyReply.results[\(index)].namespace"),
                        action: action,
                        message: try controlText(result.message, "ApplyReply.results[\(index)].message")))
            }
            return results
        }
    }

    // MARK: DeleteRequest / DeleteReply

    public static func encode(_ value: AdminDeleteRequest) -> [UInt8] {
        var arena = Arena(capacity: 512)
        let message = arena.allocate(Patrol__V1__DeleteRequest.self)
        patrol__v1__delete_request__init(message)
        message.pointee.name = arena.cString(value.name)
        message.pointee.namespace_ = arena.cString(value.namespace)
        return pack(message)
    }

    public static func decodeAdminDeleteRequest(_ bytes: [UInt8]) throws(WireFormatError) -> AdminDeleteRequest {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "DeleteRequest")
            guard let message = patrol__v1__delete_request__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("DeleteRequest", raw.count)
            }
            defer { patrol__v1__delete_request__free_unpacked(message, nil) }
            return AdminDeleteRequest(
                name: try controlText(message.pointee.name, "DeleteRequest.name"),
                namespace: try controlText(message.pointee.namespace_, "DeleteRequest.namespace"))
        }
    }

    /// `DeleteReply`.
    public static func encodeDeleteReply(deleted: Bool) -> [UInt8] {
        var message = Patrol__V1__DeleteReply()
        patrol__v1__delete_reply__init(&message)
        message.deleted = deleted ? 1 : 0
        return withUnsafeMutablePointer(to: &message) { pack($0) }
    }

    public static func decodeAdminDeleteReply(_ bytes: [UInt8]) throws(WireFormatError) -> Bool {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "DeleteReply")
            guard let message = patrol__v1__delete_reply__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("DeleteReply", raw.count)
            }
            defer { patrol__v1__delete_reply__free_unpacked(message, nil) }
            return message.pointee.deleted != 0
        }
    }

    // MARK: ProfileAllowRequest / ProfileAllowReply

    public static func encode(_ value: AdminProfileAllowRequest) -> [UInt8] {
        var arena = Arena(capacity: 1024)
        let message = arena.allocate(Patrol__V1__ProfileAllowRequest.self)
        patrol__v1__profile_allow_request__init(message)
        message.pointee.name = arena.cString(value.name)
        message.pointee.namespace_ = arena.cString(value.namespace)
        message.pointee.container = arena.cString(value.container)
        message.pointee.kind = Patrol__V1__EventKind(rawValue: value.kind.map(WireEnums.number) ?? 0)
        message.pointee.finalize = value.finalize ? 1 : 0
        (message.pointee.n_fields, message.pointee.fields) = arena.entries(
            value.fields, patrol__v1__profile_allow_request__fields_entry__init
        ) { entry, key, value in
            entry.pointee.key = key
            entry.pointee.value = value
        }
        return pack(message)
    }

    public static func decodeAdminProfileAllowRequest(_ bytes: [UInt8]) throws(WireFormatError)
        -> AdminProfileAllowRequest
    {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "ProfileAllowRequest")
            guard let message = patrol__v1__profile_allow_request__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("ProfileAllowRequest", raw.count)
            }
            defer { patrol__v1__profile_allow_request__free_unpacked(message, nil) }
            let request = message.pointee
            let kind = WireEnums.kind(request.kind.rawValue)
            if kind == nil, request.kind.rawValue != 0 || request.finalize == 0 {
                throw WireFormatError(
                    .invalidValue, "ProfileAllowRequest.kind \(request.kind.rawValue) is not a known EventKind")
            }
            var fields: [String: String] = [:]
            for index in 0..<request.n_fields {
                guard let entry = request.fields[index]?.pointee else {
                    throw WireFormatError(.malformed, "ProfileAllowRequest.fields[\(index)] is missing")
                }
                fields[try controlText(entry.key, "ProfileAllowRequest.fields[\(index)].key")] = try controlText(
                    entry.value, "ProfileAllowRequest.fields[\(index)].value")
            }
            return AdminProfileAllowRequest(
                name: try controlText(request.name, "ProfileAllowRequest.name"),
                namespace: try controlText(request.namespace_, "ProfileAllowRequest.namespace"),
                container: try controlText(request.container, "ProfileAllowRequest.container"), kind: kind,
                fields: fields, finalize: request.finalize != 0)
        }
    }

    /// `ProfileAllowReply`.
    public static func encodeProfileAllowReply(changed: Bool) -> [UInt8] {
        var message = Patrol__V1__ProfileAllowReply()
        patrol__v1__profile_allow_reply__init(&message)
        message.changed = changed ? 1 : 0
        return withUnsafeMutablePointer(to: &message) { pack($0) }
    }

    public static func decodeAdminProfileAllowReply(_ bytes: [UInt8]) throws(WireFormatError) -> Bool {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "ProfileAllowReply")
            guard let message = patrol__v1__profile_allow_reply__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("ProfileAllowReply", raw.count)
            }
            defer { patrol__v1__profile_allow_reply__free_unpacked(message, nil) }
            return message.pointee.changed != 0
        }
    }
}

/// `StartScanRequest`: a malware scan on one node's sensor (`patrolctl scans start`).
public struct AdminStartScanRequest: Sendable, Hashable {
    /// The node (or a sensor id).
    public var node: String
    /// A host path, or with `containerID` a path inside the container; empty: the whole host or container.
    public var path: String
    public var containerID: String

    public init(node: String, path: String = "", containerID: String = "") {
        self.node = node
        self.path = path
        self.containerID = containerID
    }
}

/// `StartScanReply`.
public struct AdminStartScanReply: Sendable, Hashable {
    public var scanID: String
    /// The sensors the scan was queued on.
    public var sensors: [String]

    public init(scanID: String, sensors: [String]) {
        self.scanID = scanID
        self.sensors = sensors
    }
}

extension WireCodec {
    // MARK: StartScanRequest / StartScanReply

    public static func encode(_ value: AdminStartScanRequest) -> [UInt8] {
        var arena = Arena(capacity: 512)
        let message = arena.allocate(Patrol__V1__StartScanRequest.self)
        patrol__v1__start_scan_request__init(message)
        message.pointee.node = arena.cString(value.node)
        message.pointee.path = arena.cString(value.path)
        message.pointee.container_id = arena.cString(value.containerID)
        return pack(message)
    }

    public static func decodeAdminStartScanRequest(_ bytes: [UInt8]) throws(WireFormatError) -> AdminStartScanRequest {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "StartScanRequest")
            guard let message = patrol__v1__start_scan_request__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("StartScanRequest", raw.count)
            }
            defer { patrol__v1__start_scan_request__free_unpacked(message, nil) }
            return AdminStartScanRequest(
                node: try controlText(message.pointee.node, "StartScanRequest.node"),
                path: try controlText(message.pointee.path, "StartScanRequest.path"),
                containerID: try controlText(message.pointee.container_id, "StartScanRequest.container_id"))
        }
    }

    public static func encode(_ value: AdminStartScanReply) -> [UInt8] {
        var arena = Arena(capacity: 512)
        let message = arena.allocate(Patrol__V1__StartScanReply.self)
        patrol__v1__start_scan_reply__init(message)
        message.pointee.scan_id = arena.cString(value.scanID)
        message.pointee.n_sensors = value.sensors.count
        message.pointee.sensors = arena.cStrings(value.sensors)
        return pack(message)
    }

    public static func decodeAdminStartScanReply(_ bytes: [UInt8]) throws(WireFormatError) -> AdminStartScanReply {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "StartScanReply")
            guard let message = patrol__v1__start_scan_reply__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("StartScanReply", raw.count)
            }
            defer { patrol__v1__start_scan_reply__free_unpacked(message, nil) }
            return AdminStartScanReply(
                scanID: try controlText(message.pointee.scan_id, "StartScanReply.scan_id"),
                sensors: try controlTexts(
                    message.pointee.n_sensors, message.pointee.sensors, "StartScanReply.sensors"))
        }
    }
}

extension RPCMethods {
    /// `patrol.v1.AdminService/<name>`, checked against protoc-c's descriptor so a typo traps in tests.
    public static func admin(_ name: String) -> String {
        let method = "patrol.v1.AdminService/\(name)"
        precondition(adminService.contains(method), "AdminService has no method \(name)")
        return method
    }
}
