import EventModel
import Foundation

extension ElasticsearchTestServer {
    struct QueryError: Error {
        var reason: String
    }

    struct MissingIndex: Error {
        var name: String
    }

    struct SortField {
        var field: String
        var ascending: Bool
    }

    /// Resolves a comma-separated index expression with wildcards, as `ignore_unavailable` and
    /// `allow_no_indices` say; the error is the 404 a real server gives.
    static func resolve(
        _ expression: String?, state: State, ignoreUnavailable: Bool, allowNoIndices: Bool
    ) -> Result<[String], MissingIndex> {
        let parts = (expression ?? "_all").split(separator: ",").map(String.init)
        var names: [String] = []
        for part in parts {
            if part == "_all" || part.contains("*") {
                let pattern = part == "_all" ? "*" : part
                let matched = state.indices.keys.filter { wildcard(pattern, matches: $0) }.sorted()
                if matched.isEmpty && !allowNoIndices { return .failure(MissingIndex(name: part)) }
                names += matched
            } else if state.indices[part] != nil {
                names.append(part)
            } else if !ignoreUnavailable {
                return .failure(MissingIndex(name: part))
            }
        }
        if names.isEmpty && !allowNoIndices, let first = parts.first {
            return .failure(MissingIndex(name: first))
        }
        return .success(Array(Set(names)).sorted())
    }

    static func flag(_ request: HTTPTestServer.Request, _ name: String, default value: Bool) -> Bool {
        guard let text = request.queryItem(name) else { return value }
        return text.isEmpty || text == "true"
    }

    func search(_ request: HTTPTestServer.Request, indexExpression: String?) -> HTTPTestServer.Response {
        let body: JSONValue
        if request.body.isEmpty {
            body = .object([:])
        } else if let parsed = TestJSON.parse(request.body), parsed.objectValue != nil {
            body = parsed
        } else {
            return badRequest("request body is not valid JSON")
        }
        let size = body["size"]?.intValue ?? request.queryItem("size").flatMap { Int($0) } ?? 10
        let from = body["from"]?.intValue ?? 0
        let scroll = request.queryItem("scroll")
        if scroll == nil, from + size > 10_000 {
            return errorReply(
                400, type: "illegal_argument_exception",
                reason:
                    "Result window is too large, from + size must be less than or equal to: [10000] but was [\(from + size)]."
            )
        }
        var sortFields: [SortField]
        do { sortFields = try Self.parseSort(body["sort"]) } catch { return badRequest(error.reason) }
        let pit = body["pit"]
        if pit != nil, indexExpression != nil {
            return errorReply(
                400, type: "action_request_validation_exception",
                reason:
                    "Validation Failed: 1: [indices] cannot be used with point in time. Do not specify any index with point in time.;"
            )
        }
        if pit != nil, scroll != nil {
            return errorReply(
                400, type: "action_request_validation_exception",
                reason: "Validation Failed: 1: using [point in time] is not allowed in a scroll context;")
        }

        // Candidate documents: the PIT's snapshot, or what is visible now in the resolved indices.
        var candidates: [Document]
        var newPIT: String?
        if let pit {
            guard let id = pit["id"]?.stringValue else { return badRequest("[pit] requires [id]") }
            let outcome = state.withLock { state -> (PointInTime, String)? in
                guard let context = state.pitAliases[id], let snapshot = state.pits[context] else { return nil }
                if state.pitLatest[context] != id { state.counters["pit.stale", default: 0] += 1 }
                // Every reply carries a fresh id, so clients must follow the latest one.
                state.nextID += 1
                let fresh = "\(context)~\(state.nextID)"
                state.pitAliases[fresh] = context
                state.pitLatest[context] = fresh
                state.counters["search", default: 0] += 1
                return (snapshot, fresh)
            }
            guard let (snapshot, fresh) = outcome else {
                return errorReply(
                    404, type: "search_context_missing_exception", reason: "No search context found for id [\(id)]")
            }
            candidates = snapshot.documents
            newPIT = fresh
            if !sortFields.contains(where: { $0.field == "_shard_doc" }) {
                sortFields.append(SortField(field: "_shard_doc", ascending: true))
            }
        } else {
            let ignoreUnavailable = Self.flag(request, "ignore_unavailable", default: false)
            let allowNoIndices = Self.flag(request, "allow_no_indices", default: true)
            let outcome = state.withLock { state -> Result<[Document], MissingIndex> in
                state.counters["search", default: 0] += 1
                return Self.resolve(
                    indexExpression, state: state, ignoreUnavailable: ignoreUnavailable, allowNoIndices: allowNoIndices
                ).map { names in Self.visible(state, in: names) }
            }
            switch outcome {
            case .success(let documents): candidates = documents
            case .failure(let missing): return indexNotFound(missing.name)
            }
        }

        var matched: [(Document, [SortKey])] = []
        do {
            for document in candidates where try Self.matches(body["query"], document.source) {
                matched.append((document, Self.sortKeys(document, sortFields)))
            }
        } catch { return badRequest(error.reason) }
        matched.sort { Self.before($0.1, $1.1, sortFields) || ($0.1 == $1.1 && $0.0.sequence < $1.0.sequence) }

        if let after = body["search_after"] {
            guard !sortFields.isEmpty else {
                return badRequest("Cannot use [search_after] without a [sort]", type: "illegal_argument_exception")
            }
            guard let values = after.arrayValue, values.count == sortFields.count else {
                return badRequest(
                    "search_after has \(after.arrayValue?.count ?? 0) value(s) but sort has \(sortFields.count).",
                    type: "illegal_argument_exception")
            }
            let afterKeys = values.map { SortKey(json: $0) ?? .missing }
            matched.removeAll { !Self.before(afterKeys, $0.1, sortFields) }
        }
        let total = matched.count
        let page = Array(matched.dropFirst(from).prefix(max(0, size)))
        var reply: [String: JSONValue] = [
            "took": .int(1), "timed_out": .bool(false),
            "_shards": .obj(("total", .int(1)), ("successful", .int(1)), ("skipped", .int(0)), ("failed", .int(0))),
        ]
        if let newPIT { reply["pit_id"] = .string(newPIT) }
        if let scroll, !scroll.isEmpty {
            let scrollID = state.withLock { state -> String in
                state.nextID += 1
                let id = "scroll-\(state.nextID)"
                state.scrolls[id] = Scroll(remaining: Array(matched.dropFirst(from + page.count)), size: size)
                return id
            }
            reply["_scroll_id"] = .string(scrollID)
        }
        reply["hits"] = hitsObject(page, total: total, body: body, showSort: !sortFields.isEmpty)
        return self.reply(.object(reply))
    }

    func hitsObject(_ page: [(Document, [SortKey])], total: Int, body: JSONValue?, showSort: Bool) -> JSONValue {
        var hits: [String: JSONValue] = [
            "max_score": .null,
            "hits": .array(
                page.map { document, keys in
                    var hit: [String: JSONValue] = [
                        "_index": .string(document.index), "_id": .string(document.id), "_score": .null,
                        "_source": document.source,
                    ]
                    if showSort { hit["sort"] = .array(keys.map(\.json)) }
                    return .object(hit)
                }),
        ]
        if body?["track_total_hits"] != .bool(false) {
            hits["total"] = .obj(("value", .int(total)), ("relation", .string("eq")))
        }
        return .object(hits)
    }

    static func visible(_ state: State, in names: [String]) -> [Document] {
        let now = ContinuousClock.now
        return names.flatMap { state.indices[$0].map { Array($0.values) } ?? [] }.filter { $0.visibleAt <= now }
    }

    // MARK: - point in time

    func openPIT(_ request: HTTPTestServer.Request, indexExpression: String, idKey: String) -> HTTPTestServer.Response {
        guard request.method == "POST" else { return methodNotAllowed(request) }
        guard request.queryItem("keep_alive") != nil else {
            return errorReply(
                400, type: "action_request_validation_exception",
                reason: "Validation Failed: 1: [keep_alive] is not set;")
        }
        let ignoreUnavailable = Self.flag(request, "ignore_unavailable", default: false)
        let outcome = state.withLock { state -> Result<String, MissingIndex> in
            Self.resolve(indexExpression, state: state, ignoreUnavailable: ignoreUnavailable, allowNoIndices: true)
                .map { names in
                    state.nextID += 1
                    let id = "pit-\(state.nextID)"
                    state.pits[id] = PointInTime(documents: Self.visible(state, in: names), indices: names)
                    state.pitAliases[id] = id
                    state.pitLatest[id] = id
                    return id
                }
        }
        switch outcome {
        case .failure(let missing): return indexNotFound(missing.name)
        case .success(let id):
            if isOpenSearch {
                return reply(
                    .obj(
                        ("pit_id", .string(id)), ("creation_time", .int(Int(Date().timeIntervalSince1970 * 1000))),
                        ("_shards", .obj(("total", .int(1)), ("successful", .int(1)), ("failed", .int(0))))))
            }
            return reply(.obj((idKey, .string(id))))
        }
    }

    func closePIT(_ request: HTTPTestServer.Request, key: String) -> HTTPTestServer.Response {
        guard let body = TestJSON.parse(request.body) else { return badRequest("request body is required") }
        let ids = body[key]?.arrayValue?.compactMap(\.stringValue) ?? body[key]?.stringValue.map { [$0] } ?? []
        guard !ids.isEmpty else {
            return errorReply(
                400, type: "action_request_validation_exception", reason: "Validation Failed: 1: [\(key)] is missing;")
        }
        let freed = state.withLock { state -> [String: Bool] in
            var result: [String: Bool] = [:]
            for id in ids {
                guard let context = state.pitAliases[id], state.pits.removeValue(forKey: context) != nil else {
                    result[id] = false
                    continue
                }
                state.pitAliases = state.pitAliases.filter { $0.value != context }
                state.pitLatest[context] = nil
                result[id] = true
            }
            return result
        }
        if isOpenSearch {
            return reply(
                .obj(
                    (
                        "pits",
                        .array(ids.map { .obj(("pit_id", .string($0)), ("successful", .bool(freed[$0] ?? false))) })
                    )))
        }
        let count = freed.values.filter { $0 }.count
        return reply(.obj(("succeeded", .bool(count == ids.count)), ("num_freed", .int(count))), count == 0 ? 404 : 200)
    }

    // MARK: - scroll

    func continueScroll(_ request: HTTPTestServer.Request) -> HTTPTestServer.Response {
        let body = TestJSON.parse(request.body)
        guard let id = body?["scroll_id"]?.stringValue ?? request.queryItem("scroll_id") else {
            return errorReply(
                400, type: "action_request_validation_exception", reason: "Validation Failed: 1: scrollId is missing;")
        }
        let page = state.withLock { state -> [(Document, [SortKey])]? in
            guard var scroll = state.scrolls[id] else { return nil }
            state.counters["search", default: 0] += 1
            let page = Array(scroll.remaining.prefix(scroll.size))
            scroll.remaining.removeFirst(page.count)
            state.scrolls[id] = scroll
            return page
        }
        guard let page else {
            return errorReply(
                404, type: "search_context_missing_exception", reason: "No search context found for id [\(id)]")
        }
        return reply(
            .obj(
                ("_scroll_id", .string(id)), ("took", .int(1)), ("timed_out", .bool(false)),
                ("hits", hitsObject(page, total: page.count, body: nil, showSort: page.first?.1.isEmpty == false))))
    }

    func clearScroll(_ request: HTTPTestServer.Request) -> HTTPTestServer.Response {
        let body = TestJSON.parse(request.body)
        let ids =
            body?["scroll_id"]?.arrayValue?.compactMap(\.stringValue)
            ?? body?["scroll_id"]?.stringValue.map { [$0] } ?? []
        let freed = state.withLock { state in ids.filter { state.scrolls.removeValue(forKey: $0) != nil }.count }
        return reply(
            .obj(("succeeded", .bool(true)), ("num_freed", .int(freed))), freed == 0 && !ids.isEmpty ? 404 : 200)
    }

    // MARK: - query evaluation

    static func parseSort(_ sort: JSONValue?) throws(QueryError) -> [SortField] {
        guard let sort else { return [] }
        let items = sort.arrayValue ?? [sort]
        var fields: [SortField] = []
        for item in items {
            if let name = item.stringValue {
                fields.append(SortField(field: name, ascending: true))
            } else if let members = item.objectValue, members.count == 1, let (name, spec) = members.first {
                let order = spec.stringValue ?? spec["order"]?.stringValue ?? "asc"
                guard order == "asc" || order == "desc" else {
                    throw QueryError(reason: "Unknown sort order [\(order)]")
                }
                fields.append(SortField(field: name, ascending: order == "asc"))
            } else {
                throw QueryError(reason: "malformed [sort]")
            }
        }
        return fields
    }

    static func sortKeys(_ document: Document, _ fields: [SortField]) -> [SortKey] {
        fields.map { field in
            switch field.field {
            case "_shard_doc", "_doc": return .number(Double(document.sequence))
            case "_id": return .text(document.id)
            default: return document.source.field(field.field).flatMap(TestDates.key) ?? .missing
            }
        }
    }

    /// Whether `a` sorts strictly before `b`.
    static func before(_ a: [SortKey], _ b: [SortKey], _ fields: [SortField]) -> Bool {
        for (index, field) in fields.enumerated() where index < a.count && index < b.count {
            if a[index] == b[index] { continue }
            // Missing values go last in both directions, as ES's default `missing: _last`.
            if a[index] == .missing { return false }
            if b[index] == .missing { return true }
            return field.ascending ? a[index] < b[index] : a[index] > b[index]
        }
        return false
    }

    static func clauses(_ value: JSONValue?) -> [JSONValue] {
        guard let value else { return [] }
        return value.arrayValue ?? [value]
    }

    static func matches(_ query: JSONValue?, _ source: JSONValue) throws(QueryError) -> Bool {
        guard let query else { return true }
        guard let members = query.objectValue, members.count == 1, let (kind, spec) = members.first else {
            throw QueryError(reason: "query malformed, must have exactly one key")
        }
        switch kind {
        case "match_all": return true
        case "match_none": return false
        case "bool":
            for clause in clauses(spec["filter"]) + clauses(spec["must"]) where try !matches(clause, source) {
                return false
            }
            for clause in clauses(spec["must_not"]) where try matches(clause, source) { return false }
            let should = clauses(spec["should"])
            if !should.isEmpty, spec["filter"] == nil, spec["must"] == nil {
                for clause in should where try matches(clause, source) { return true }
                return false
            }
            return true
        case "range":
            guard let (field, bounds) = spec.objectValue?.first, let boundMembers = bounds.objectValue else {
                throw QueryError(reason: "[range] query malformed")
            }
            guard let value = source.field(field), let key = TestDates.key(value) else { return false }
            for (name, bound) in boundMembers {
                guard ["gt", "gte", "lt", "lte"].contains(name) else { continue }
                guard let limit = TestDates.key(bound) else {
                    throw QueryError(reason: "[range] bound [\(name)] malformed")
                }
                switch (key, limit) {
                case (.number, .number), (.text, .text): break
                default: return false
                }
                switch name {
                case "gt": if !(key > limit) { return false }
                case "gte": if !(key >= limit) { return false }
                case "lt": if !(key < limit) { return false }
                default: if !(key <= limit) { return false }
                }
            }
            return true
        case "term", "match":
            guard let (field, wanted) = spec.objectValue?.first else {
                throw QueryError(reason: "[\(kind)] query malformed")
            }
            let target = wanted["value"] ?? wanted["query"] ?? wanted
            return values(source.field(field)).contains { equal($0, target, caseInsensitive: kind == "match") }
        case "terms":
            guard let (field, wanted) = spec.objectValue?.first, let options = wanted.arrayValue else {
                throw QueryError(reason: "[terms] query malformed")
            }
            return values(source.field(field)).contains { value in
                options.contains { equal(value, $0, caseInsensitive: false) }
            }
        case "exists":
            guard let field = spec["field"]?.stringValue else { throw QueryError(reason: "[exists] requires [field]") }
            return source.field(field).map { $0 != .null } ?? false
        default:
            throw QueryError(reason: "unknown query [\(kind)]")
        }
    }

    static func values(_ value: JSONValue?) -> [JSONValue] {
        guard let value else { return [] }
        return value.arrayValue ?? [value]
    }

    static func equal(_ a: JSONValue, _ b: JSONValue, caseInsensitive: Bool) -> Bool {
        if caseInsensitive, let x = a.stringValue, let y = b.stringValue { return x.lowercased() == y.lowercased() }
        if a == b { return true }
        if let x = a.stringValue, let y = b.numberValue { return Double(x) == y }
        if let x = a.numberValue, let y = b.stringValue { return Double(y) == x }
        return false
    }
}
