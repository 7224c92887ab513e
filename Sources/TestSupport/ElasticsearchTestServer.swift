import EventModel
import Foundation
import Synchronization

/// An Elasticsearch (or OpenSearch) REST API on loopback, for tests: the parts Patrol uses, with
/// the semantics of a real cluster where they matter to a client.
///
/// - `GET /` cluster info in either flavour (`X-Elastic-Product` header for Elasticsearch,
///   `version.distribution: opensearch` for OpenSearch).
/// - `_bulk` NDJSON (`index`/`create`/`delete`), per-item results in request order, HTTP 200 with
///   `errors:true` when items failed; `create` of an existing `_id` is 409; injected per-item 429s.
/// - `_search` with `bool` (`filter`/`must`/`must_not`) of `range`/`term`/`terms`/`match`/`exists`,
///   `sort`, `search_after`, `size`, `from` (from+size capped at 10,000), `track_total_hits`.
/// - Point in time: Elasticsearch `_pit` and OpenSearch `_search/point_in_time`; a PIT sees the
///   documents visible when it was opened; an implicit `_shard_doc` tiebreaker is appended to `sort`
///   and every reply carries a new `pit_id`. Scroll with `scroll_id`.
/// - Dated indices and wildcards, `ignore_unavailable`/`allow_no_indices`, 404 `index_not_found_exception`.
/// - The error envelope, as an object or (for injected faults that ask for it) a plain string.
/// - `_index_template`, `HEAD /<index>`, `_refresh`.
/// - Refresh latency: a written document is searchable only `refreshInterval` after it was written
///   (or at once with `?refresh=true|wait_for`).
/// - Injected faults: statuses (429, 503, ...), slow replies and dropped connections for the next
///   requests that match a path fragment.
public final class ElasticsearchTestServer: Sendable {
    public enum Flavor: Sendable {
        case elasticsearch(version: String = "8.13.0")
        case opensearch(version: String = "2.11.0")
        /// An Elasticsearch before 7.10: no point in time, so clients must fall back to scroll.
        case elasticsearchWithoutPIT(version: String = "7.9.3")
    }

    /// A fault applied to one request instead of (or before) the normal answer.
    public enum Fault: Sendable {
        /// Answer with this status and the error envelope (`error` as a plain string when asked).
        case status(Int, plainStringError: Bool = false)
        /// Close the connection without answering.
        case drop
        /// Answer normally after this delay.
        case slow(Duration)
        /// Do the work (store documents, advance a scroll), then close the connection without answering:
        /// the reply is lost, as when a proxy or the network fails after the server acted.
        case lostReply
    }

    /// A stored document.
    public struct Document: Sendable {
        public var index: String
        public var id: String
        public var source: JSONValue
        /// Global write order; serves as `_shard_doc`.
        public var sequence: Int
        var visibleAt: ContinuousClock.Instant
    }

    struct PointInTime {
        var documents: [Document]
        var indices: [String]
    }

    struct Scroll {
        var remaining: [(Document, [SortKey])]
        var size: Int
    }

    struct PendingFault {
        var fault: Fault
        var pathContains: String?
    }

    struct State {
        var indices: [String: [String: Document]] = [:]
        var templates: [String: JSONValue] = [:]
        /// Which template an index was created with.
        var indexTemplate: [String: String] = [:]
        var pits: [String: PointInTime] = [:]
        /// Every id a PIT has had (each search reply renews it) → the context it names.
        var pitAliases: [String: String] = [:]
        /// The newest id of each context: a search with an older one is counted as `pit.stale`.
        var pitLatest: [String: String] = [:]
        var scrolls: [String: Scroll] = [:]
        var faults: [PendingFault] = []
        var bulkItemRejections = 0
        var nextSequence = 0
        var nextID = 0
        var refreshInterval: Duration = .zero
        var requiredAuthorization: String?
        var counters: [String: Int] = [:]
    }

    let state = Mutex(State())
    public let flavor: Flavor
    /// The HTTP server underneath (for its recorded requests and connection counts).
    public let http: HTTPTestServer
    public var port: Int { http.port }
    /// `http://127.0.0.1:<port>`
    public var baseURL: String { http.baseURL }
    /// `127.0.0.1:<port>`, the form K8sCop's `-E` took.
    public var hostPort: String { "127.0.0.1:\(http.port)" }

    public init(flavor: Flavor = .elasticsearch()) throws {
        self.flavor = flavor
        self.http = try HTTPTestServer()
        http.setHandler { [weak self] request in
            guard let self else { return .init(status: 503) }
            return self.handle(request)
        }
    }

    deinit { http.stop() }

    public func stop() { http.stop() }

    // MARK: - test controls

    /// Documents become searchable this long after they are written (a refresh interval).
    public func setRefreshInterval(_ interval: Duration) { state.withLock { $0.refreshInterval = interval } }

    /// Requests must carry exactly this `Authorization` header, or get 401.
    public func requireAuthorization(_ value: String?) { state.withLock { $0.requiredAuthorization = value } }

    /// Applies `fault` to the next `count` requests whose path contains `pathContains` (any when nil).
    public func inject(_ fault: Fault, count: Int = 1, pathContains: String? = nil) {
        state.withLock { state in
            for _ in 0..<count { state.faults.append(PendingFault(fault: fault, pathContains: pathContains)) }
        }
    }

    /// The next `count` bulk items (across requests) fail with 429 `es_rejected_execution_exception`.
    public func rejectBulkItems(_ count: Int) { state.withLock { $0.bulkItemRejections += count } }

    /// Stores a document directly, visible after the refresh interval (or at once when `visible`).
    @discardableResult
    public func add(_ source: JSONValue, index: String, id: String? = nil, visible: Bool = true) -> String {
        state.withLock { state in
            let id = id ?? Self.generateID(&state)
            let delay = visible ? Duration.zero : state.refreshInterval
            Self.store(&state, index: index, id: id, source: source, visibleAfter: delay)
            return id
        }
    }

    /// Creates an empty index (so it exists but holds nothing).
    public func createIndex(_ name: String) {
        state.withLock { state in
            if state.indices[name] == nil { state.indices[name] = [:] }
        }
    }

    /// Every document of `index`, in write order.
    public func documents(in index: String) -> [Document] {
        state.withLock { ($0.indices[index].map { Array($0.values) } ?? []).sorted { $0.sequence < $1.sequence } }
    }

    /// Every document of every index, in write order.
    public var allDocuments: [Document] {
        state.withLock { $0.indices.values.flatMap(\.values).sorted { $0.sequence < $1.sequence } }
    }

    public var indexNames: [String] { state.withLock { $0.indices.keys.sorted() } }

    /// The stored index templates by name (their request bodies).
    public var templates: [String: JSONValue] { state.withLock { $0.templates } }

    /// The template an index was created with, if one matched.
    public func template(ofIndex index: String) -> String? { state.withLock { $0.indexTemplate[index] } }

    /// Open point-in-time and scroll contexts (a client that closes them leaves none).
    public var openContexts: (pits: Int, scrolls: Int) { state.withLock { ($0.pits.count, $0.scrolls.count) } }

    /// Counts of what happened: `bulk.created`, `bulk.conflict`, `bulk.rejected`, `search`, `fault`, ...
    public func count(_ name: String) -> Int { state.withLock { $0.counters[name, default: 0] } }

    // MARK: - dispatch

    func handle(_ request: HTTPTestServer.Request) -> HTTPTestServer.Response {
        let (fault, required) = state.withLock { state -> (Fault?, String?) in
            var fault: Fault?
            if let index = state.faults.firstIndex(where: { pending in
                pending.pathContains.map { request.path.contains($0) } ?? true
            }) {
                fault = state.faults.remove(at: index).fault
                state.counters["fault", default: 0] += 1
            }
            return (fault, state.requiredAuthorization)
        }
        var delay: Duration?
        switch fault {
        case .drop: return .drop
        case .status(let status, let plain):
            let type = status == 429 ? rejectedType : "unavailable_shards_exception"
            if plain { return reply(.obj(("error", .string("\(type): injected")), ("status", .int(status))), status) }
            return errorReply(status, type: type, reason: "injected fault")
        case .slow(let duration): delay = duration
        case .lostReply:
            _ = route(request)
            return .drop
        case nil: break
        }
        if let required, request.header("Authorization") != required {
            return errorReply(401, type: "security_exception", reason: "missing authentication credentials")
        }
        var response = route(request)
        response.delay = delay
        return response
    }

    var rejectedType: String {
        if case .opensearch = flavor { return "rejected_execution_exception" }
        return "es_rejected_execution_exception"
    }

    var isOpenSearch: Bool {
        if case .opensearch = flavor { return true }
        return false
    }

    func route(_ request: HTTPTestServer.Request) -> HTTPTestServer.Response {
        let parts = request.path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        let method = request.method
        switch (method, parts.count) {
        case ("GET", 0), ("HEAD", 0): return info()
        default: break
        }
        if parts.first == "_bulk" || (parts.count == 2 && parts[1] == "_bulk") {
            guard method == "POST" || method == "PUT" else { return methodNotAllowed(request) }
            return bulk(request, defaultIndex: parts.count == 2 ? parts[0] : nil)
        }
        if parts.first == "_index_template", parts.count == 2 { return indexTemplate(request, name: parts[1]) }
        if parts == ["_pit"] {
            guard !isOpenSearch, case .elasticsearch = flavor else { return noHandler(request) }
            guard method == "DELETE" else { return methodNotAllowed(request) }
            return closePIT(request, key: "id")
        }
        if parts == ["_search", "point_in_time"] {
            guard isOpenSearch else { return noHandler(request) }
            guard method == "DELETE" else { return methodNotAllowed(request) }
            return closePIT(request, key: "pit_id")
        }
        if parts == ["_search", "scroll"] {
            if method == "DELETE" { return clearScroll(request) }
            return continueScroll(request)
        }
        if parts == ["_search"] { return search(request, indexExpression: nil) }
        if parts.count == 2, parts[1] == "_search" { return search(request, indexExpression: parts[0]) }
        if parts.count == 2, parts[1] == "_pit" {
            guard !isOpenSearch, case .elasticsearch = flavor else { return noHandler(request) }
            return openPIT(request, indexExpression: parts[0], idKey: "id")
        }
        if parts.count == 3, parts[1] == "_search", parts[2] == "point_in_time" {
            guard isOpenSearch else { return noHandler(request) }
            return openPIT(request, indexExpression: parts[0], idKey: "pit_id")
        }
        if parts.count == 2, parts[1] == "_refresh" {
            state.withLock { state in
                let now = ContinuousClock.now
                for name in state.indices.keys {
                    for id in state.indices[name]!.keys where state.indices[name]![id]!.visibleAt > now {
                        state.indices[name]![id]!.visibleAt = now
                    }
                }
            }
            return reply(.obj(("_shards", .obj(("total", .int(1)), ("successful", .int(1)), ("failed", .int(0))))))
        }
        if parts.count == 1, method == "HEAD" || method == "GET" {
            let exists = state.withLock { $0.indices[parts[0]] != nil }
            if exists { return reply(.obj((parts[0], .obj(("settings", .obj()))))) }
            return indexNotFound(parts[0])
        }
        return noHandler(request)
    }

    // MARK: - replies

    func reply(_ body: JSONValue, _ status: Int = 200) -> HTTPTestServer.Response {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if case .elasticsearch = flavor { headers.append(("X-Elastic-Product", "Elasticsearch")) }
        return HTTPTestServer.Response(status: status, headers: headers, body: Array(TestJSON.render(body).utf8))
    }

    func errorObject(type: String, reason: String, extra: [(String, JSONValue)] = []) -> JSONValue {
        var cause: [String: JSONValue] = ["type": .string(type), "reason": .string(reason)]
        for (key, value) in extra { cause[key] = value }
        var error = cause
        error["root_cause"] = .array([.object(cause)])
        return .object(error)
    }

    func errorReply(_ status: Int, type: String, reason: String, extra: [(String, JSONValue)] = [])
        -> HTTPTestServer.Response
    {
        reply(.obj(("error", errorObject(type: type, reason: reason, extra: extra)), ("status", .int(status))), status)
    }

    func indexNotFound(_ name: String) -> HTTPTestServer.Response {
        errorReply(
            404, type: "index_not_found_exception", reason: "no such index [\(name)]",
            extra: [
                ("index", .string(name)), ("resource.type", .string("index_or_alias")), ("resource.id", .string(name)),
            ])
    }

    func badRequest(_ reason: String, type: String = "parsing_exception") -> HTTPTestServer.Response {
        errorReply(400, type: type, reason: reason)
    }

    func noHandler(_ request: HTTPTestServer.Request) -> HTTPTestServer.Response {
        // What a real server says for an endpoint it does not have: a plain-string error.
        reply(
            .obj(
                ("error", .string("no handler found for uri [\(request.path)] and method [\(request.method)]")),
                ("status", .int(400))), 400)
    }

    func methodNotAllowed(_ request: HTTPTestServer.Request) -> HTTPTestServer.Response {
        reply(
            .obj(
                ("error", .string("Incorrect HTTP method for uri [\(request.path)] and method [\(request.method)]")),
                ("status", .int(405))), 405)
    }

    func info() -> HTTPTestServer.Response {
        let version: JSONValue
        switch flavor {
        case .elasticsearch(let number), .elasticsearchWithoutPIT(let number):
            version = .obj(
                ("number", .string(number)), ("build_flavor", .string("default")),
                ("lucene_version", .string("9.10.0")))
        case .opensearch(let number):
            version = .obj(
                ("distribution", .string("opensearch")), ("number", .string(number)),
                ("lucene_version", .string("9.7.0")))
        }
        var body: [(String, JSONValue)] = [
            ("name", .string("patrol-test")), ("cluster_name", .string("patrol-test")),
            ("cluster_uuid", .string("test-cluster-uuid")), ("version", version),
        ]
        body.append(
            (
                "tagline",
                .string(isOpenSearch ? "The OpenSearch Project: https://opensearch.org/" : "You Know, for Search")
            ))
        return reply(.object(Dictionary(body, uniquingKeysWith: { a, _ in a })))
    }

    // MARK: - storage

    static func generateID(_ state: inout State) -> String {
        state.nextID += 1
        return "auto-\(state.nextID)"
    }

    static func store(_ state: inout State, index: String, id: String, source: JSONValue, visibleAfter: Duration) {
        if state.indices[index] == nil {
            state.indices[index] = [:]
            if let template = matchingTemplate(state, index: index) { state.indexTemplate[index] = template }
        }
        state.nextSequence += 1
        state.indices[index]![id] = Document(
            index: index, id: id, source: source, sequence: state.nextSequence,
            visibleAt: ContinuousClock.now + visibleAfter)
    }

    static func matchingTemplate(_ state: State, index: String) -> String? {
        var best: (name: String, priority: Int)?
        for (name, body) in state.templates {
            let patterns =
                body["index_patterns"]?.arrayValue?.compactMap(\.stringValue)
                ?? body["index_patterns"]?.stringValue.map { [$0] } ?? []
            guard patterns.contains(where: { wildcard($0, matches: index) }) else { continue }
            let priority = body["priority"]?.intValue ?? 0
            if best == nil || priority > best!.priority { best = (name, priority) }
        }
        return best?.name
    }

    /// `*` wildcards as in index expressions.
    static func wildcard(_ pattern: String, matches name: String) -> Bool {
        let pieces = pattern.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
        guard pieces.count > 1 else { return pattern == name }
        var rest = Substring(name)
        guard rest.hasPrefix(pieces[0]) else { return false }
        rest = rest.dropFirst(pieces[0].count)
        for piece in pieces.dropFirst().dropLast() where !piece.isEmpty {
            guard let range = rest.range(of: piece) else { return false }
            rest = rest[range.upperBound...]
        }
        return rest.hasSuffix(pieces.last!)
    }

    /// Index names valid for writing: lowercase, no spaces or reserved characters, not starting with `_-+`.
    static func invalidIndexName(_ name: String) -> String? {
        if name.isEmpty { return "must not be empty" }
        if name != name.lowercased() { return "must be lowercase" }
        if let first = name.first, "_-+".contains(first) { return "must not start with '_', '-', or '+'" }
        if name.contains(where: { " \"*\\<|,>/?#:".contains($0) }) { return "must not contain a reserved character" }
        return nil
    }

    // MARK: - index templates

    func indexTemplate(_ request: HTTPTestServer.Request, name: String) -> HTTPTestServer.Response {
        switch request.method {
        case "PUT", "POST":
            guard let body = TestJSON.parse(request.body), body.objectValue != nil else {
                return badRequest("request body is required and must be a JSON object")
            }
            guard body["index_patterns"] != nil else {
                return errorReply(
                    400, type: "action_request_validation_exception",
                    reason: "Validation Failed: 1: index patterns are missing;")
            }
            state.withLock { $0.templates[name] = body }
            return reply(.obj(("acknowledged", .bool(true))))
        case "GET", "HEAD":
            guard let body = state.withLock({ $0.templates[name] }) else {
                return errorReply(
                    404, type: "resource_not_found_exception", reason: "index template matching [\(name)] not found")
            }
            return reply(
                .obj(("index_templates", .array([.obj(("name", .string(name)), ("index_template", body))]))))
        case "DELETE":
            let removed = state.withLock { $0.templates.removeValue(forKey: name) != nil }
            guard removed else {
                return errorReply(404, type: "resource_not_found_exception", reason: "index_template [\(name)] missing")
            }
            return reply(.obj(("acknowledged", .bool(true))))
        default:
            return methodNotAllowed(request)
        }
    }
}
