import EventModel
import Foundation

extension ElasticsearchTestServer {
    /// `POST /_bulk` and `POST /<index>/_bulk`: NDJSON action lines, each (but `delete`) followed by a source line.
    func bulk(_ request: HTTPTestServer.Request, defaultIndex: String?) -> HTTPTestServer.Response {
        let text = request.bodyText
        guard !text.isEmpty else {
            return badRequest("request body is required", type: "action_request_validation_exception")
        }
        guard text.hasSuffix("\n") else {
            return badRequest(
                "The bulk request must be terminated by a newline [\\n]", type: "illegal_argument_exception")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)[...]
        let immediate = ["true", "wait_for", ""].contains(request.queryItem("refresh") ?? "-")
        var items: [JSONValue] = []
        var errors = false
        while let actionLine = lines.popFirst() {
            guard let action = TestJSON.parse(Array(actionLine.utf8))?.objectValue, action.count == 1,
                let (verb, metaValue) = action.first, let meta = metaValue.objectValue
            else {
                return badRequest(
                    "Malformed action/metadata line [\(items.count + 1)]", type: "illegal_argument_exception")
            }
            guard ["index", "create", "delete", "update"].contains(verb) else {
                return badRequest("Unknown key for a START_OBJECT in [\(verb)].", type: "illegal_argument_exception")
            }
            var source: JSONValue?
            var sourceText = ""
            if verb != "delete" {
                guard let line = lines.popFirst() else {
                    return badRequest(
                        "Validation Failed: 1: no requests added;", type: "action_request_validation_exception")
                }
                sourceText = line
                source = TestJSON.parse(Array(line.utf8))
            }
            let index = meta["_index"]?.stringValue ?? defaultIndex ?? ""
            let item = state.withLock { state -> (Int, JSONValue) in
                Self.bulkItem(
                    &state, verb: verb, index: index, id: meta["_id"]?.stringValue, source: source,
                    sourceText: sourceText, immediate: immediate, rejectedType: rejectedType)
            }
            if item.0 >= 300 { errors = true }
            items.append(.obj((verb, item.1)))
        }
        return reply(.obj(("took", .int(1)), ("errors", .bool(errors)), ("items", .array(items))))
    }

    static func bulkItem(
        _ state: inout State, verb: String, index: String, id: String?, source: JSONValue?, sourceText: String,
        immediate: Bool, rejectedType: String
    ) -> (Int, JSONValue) {
        func failure(_ status: Int, _ type: String, _ reason: String, id: String?) -> (Int, JSONValue) {
            var error: [String: JSONValue] = ["type": .string(type), "reason": .string(reason)]
            if !index.isEmpty { error["index"] = .string(index) }
            var item: [String: JSONValue] = ["_index": .string(index), "status": .int(status), "error": .object(error)]
            if let id { item["_id"] = .string(id) }
            return (status, .object(item))
        }
        if let reason = invalidIndexName(index) {
            state.counters["bulk.invalid", default: 0] += 1
            return failure(400, "invalid_index_name_exception", "Invalid index name [\(index)], \(reason)", id: id)
        }
        if state.bulkItemRejections > 0 {
            state.bulkItemRejections -= 1
            state.counters["bulk.rejected", default: 0] += 1
            return failure(
                429, rejectedType,
                "rejected execution of coordinating operation [shard_detail=[\(index)][0][P]]", id: id)
        }
        if verb == "delete" {
            guard let id else { return failure(400, "action_request_validation_exception", "id is missing", id: nil) }
            let existed = state.indices[index]?.removeValue(forKey: id) != nil
            let status = existed ? 200 : 404
            return (
                status,
                .obj(
                    ("_index", .string(index)), ("_id", .string(id)), ("status", .int(status)),
                    ("result", .string(existed ? "deleted" : "not_found")))
            )
        }
        guard let source, source.objectValue != nil else {
            state.counters["bulk.malformed", default: 0] += 1
            return failure(
                400, "document_parsing_exception",
                "failed to parse: source is not a JSON object [\(sourceText.prefix(40))]", id: id)
        }
        if verb == "update" {
            return failure(400, "illegal_argument_exception", "update is not supported by the test server", id: id)
        }
        let documentID = id ?? generateID(&state)
        let existing = state.indices[index]?[documentID]
        if verb == "create", existing != nil {
            state.counters["bulk.conflict", default: 0] += 1
            return failure(
                409, "version_conflict_engine_exception",
                "[\(documentID)]: version conflict, document already exists (current version [1])", id: documentID)
        }
        store(
            &state, index: index, id: documentID, source: source,
            visibleAfter: immediate ? .zero : state.refreshInterval)
        state.counters[existing == nil ? "bulk.created" : "bulk.updated", default: 0] += 1
        let status = existing == nil ? 201 : 200
        return (
            status,
            .obj(
                ("_index", .string(index)), ("_id", .string(documentID)), ("_version", .int(1)),
                ("result", .string(existing == nil ? "created" : "updated")), ("status", .int(status)),
                ("_shards", .obj(("total", .int(1)), ("successful", .int(1)), ("failed", .int(0)))))
        )
    }
}
