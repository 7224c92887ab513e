public import EventModel

/// One `_bulk` operation.
public struct BulkOperation: Sendable, Equatable {
    public enum Action: String, Sendable {
        /// Fails with 409 when the `_id` exists: with deterministic ids a rerun writes nothing twice.
        case create
        case index
    }

    public var action: Action
    public var index: String
    public var id: String?
    /// The document as JSON object text (sinks that already render JSON pass it through unparsed).
    public var source: String

    public init(_ action: Action, index: String, id: String?, source: String) {
        self.action = action
        self.index = index
        self.id = id
        self.source = source
    }

    public init(_ action: Action, index: String, id: String?, document: JSONValue) {
        self.init(action, index: index, id: id, source: document.jsonText)
    }
}

/// The outcome of one bulk item, in request order.
public struct BulkItemResult: Sendable, Equatable {
    public var index: String
    public var id: String?
    public var status: Int
    public var errorType: String?
    public var errorReason: String?

    public var succeeded: Bool { (200..<300).contains(status) }
    /// 429 (rejected: back off) and 5xx are worth sending again; 400, 404, 409 are final.
    public var isRetryable: Bool { status == 429 || status >= 500 }
}

extension ElasticsearchClient {
    /// The NDJSON body of a bulk request: every line ends with `\n`, the last one too.
    public static func bulkBody(_ operations: [BulkOperation]) -> [UInt8] {
        var text = ""
        for operation in operations {
            var meta: [String: JSONValue] = ["_index": .string(operation.index)]
            if let id = operation.id { meta["_id"] = .string(id) }
            text += JSONValue.object([operation.action.rawValue: .object(meta)]).jsonText
            text += "\n"
            text += operation.source
            text += "\n"
        }
        return Array(text.utf8)
    }

    /// `POST /_bulk`. The request as a whole succeeds (HTTP 200) even when items fail; the per-item
    /// outcomes come back in request order. Throws only when there is no usable reply.
    public func bulk(_ operations: [BulkOperation], refresh: Bool = false) async throws(ElasticsearchError)
        -> [BulkItemResult]
    {
        guard !operations.isEmpty else { return [] }
        let reply = try await perform(
            .post, "/_bulk", query: refresh ? [("refresh", "wait_for")] : [], body: Self.bulkBody(operations),
            contentType: "application/x-ndjson")
        guard let items = reply["items"]?.arrayValue, items.count == operations.count else {
            throw ElasticsearchError(
                .invalidResponse,
                "POST /_bulk: reply has \(reply["items"]?.arrayValue?.count ?? 0) items for \(operations.count) operations"
            )
        }
        return zip(items, operations).map { item, operation in
            let result = item.objectValue?.values.first ?? .object([:])
            let (type, reason) = ElasticsearchError.envelope(result)
            return BulkItemResult(
                index: result["_index"]?.stringValue ?? operation.index,
                id: result["_id"]?.stringValue ?? operation.id, status: result["status"]?.intValue ?? 0,
                errorType: type, errorReason: reason)
        }
    }
}
