public import Basics
public import Elasticsearch
public import EventModel
public import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Errors from audit sources.
public struct AuditPipelineError: PatrolError {
    public enum Code: String, Sendable {
        case configuration = "configuration"
        case source = "source"
        case cancelled = "cancelled"
    }
    public let code: Code
    public let message: String
    public let cause: Cause?

    public init(_ code: Code, _ message: String, cause: Cause? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }
}

/// Reads Kubernetes audit documents for a time range out of Elasticsearch dated indices
/// `<prefix>-YYYY.MM.DD`, one UTC day at a time, and hands them on in pages.
///
/// Each day is read with a point in time and `search_after` (OpenSearch's PIT endpoints on OpenSearch,
/// scroll on servers without PIT) over the half-open window `[max(start, day), min(end, next day))` on
/// the timestamp field: an event exactly on a boundary belongs to one window only, and the last
/// millisecond of a day (23:59:59.999) is inside its day. Days whose index does not exist are skipped.
/// A request that fails with 429, 5xx or no reply is retried with backoff; a PIT page is addressed by
/// its `search_after` values, so a retry reads exactly the page that failed.
public struct ElasticsearchAuditSource: Sendable {
    public struct Configuration: Sendable {
        /// Log index prefix (K8sCop's `-I`): days are `<prefix>-YYYY.MM.DD`.
        public var indexPrefix: String
        /// Instead of dated indices, one pattern or data stream name covering the whole range.
        public var indexPattern: String?
        public var timestampField: String
        /// Inclusive start and exclusive end, nanoseconds since the epoch.
        public var start: EpochNanoseconds
        public var end: EpochNanoseconds
        public var pageSize: Int
        public var keepAlive: String
        /// Extra `term` filters (K8sCop matched `origin: audit`).
        public var terms: [String: String]
        public var maxAttempts: Int
        public var initialBackoff: Duration
        public var maxBackoff: Duration
        /// How the shipper laid the audit event out in `_source` (Fluentd/Fluent Bit by default, as K8sCop
        /// read it; Elastic Agent's `kubernetes.audit.*`; raw). Documents it cannot map are malformed.
        public var mapping: AuditMapping

        public init(
            indexPrefix: String, indexPattern: String? = nil, timestampField: String = "@timestamp",
            start: EpochNanoseconds, end: EpochNanoseconds, pageSize: Int = 1000, keepAlive: String = "1m",
            terms: [String: String] = [:], maxAttempts: Int = 8, initialBackoff: Duration = .milliseconds(200),
            maxBackoff: Duration = .seconds(15), mapping: AuditMapping = .fluentd
        ) {
            self.indexPrefix = indexPrefix
            self.indexPattern = indexPattern
            self.timestampField = timestampField
            self.start = start
            self.end = end
            self.pageSize = pageSize
            self.keepAlive = keepAlive
            self.terms = terms
            self.maxAttempts = max(1, maxAttempts)
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
            self.mapping = mapping
        }
    }

    public struct Summary: Sendable, Equatable {
        public var documents = 0
        public var malformed = 0
        public var daysRead = 0
        public var daysMissing = 0
        public var retries = 0
    }

    public typealias Sink = @Sendable ([AuditRecord]) async throws -> Void
    /// Receives each page's records with the checkpoint reached after them (to save once they are handed on).
    public typealias PageSink = @Sendable ([AuditRecord], AuditCheckpoint) async throws -> Void

    let client: ElasticsearchClient
    var configuration: Configuration
    let logger: Logger

    public init(client: ElasticsearchClient, configuration: Configuration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    static let nanosPerDay: UInt64 = 86_400 * 1_000_000_000

    /// The UTC days overlapping `[start, end)` as (index suffix, window start, window end).
    static func days(start: EpochNanoseconds, end: EpochNanoseconds) -> [(day: String, from: UInt64, to: UInt64)] {
        guard start < end else { return [] }
        var result: [(String, UInt64, UInt64)] = []
        var dayStart = start - start % nanosPerDay
        while dayStart < end {
            let next = dayStart + nanosPerDay
            result.append((dayName(dayStart), max(start, dayStart), min(end, next)))
            dayStart = next
        }
        return result
    }

    static func dayName(_ time: EpochNanoseconds) -> String {
        var seconds = time_t(time / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900).\(pad(parts.tm_mon + 1)).\(pad(parts.tm_mday))"
    }

    /// RFC 3339 in milliseconds, the precision of Elasticsearch's `date` type. Bounds are truncated the
    /// same way on both sides of a shared edge, so adjacent windows neither overlap nor leave a gap.
    static func timestamp(_ time: EpochNanoseconds) -> String {
        let iso = time.iso8601  // ...ss.uuuuuuZ
        return String(iso.dropLast(4)) + "Z"
    }

    /// Reads the whole range, handing each page of records to `sink` in timestamp order.
    public func run(into sink: Sink) async throws(AuditPipelineError) -> Summary {
        let info = try await retrying("GET /") { () async throws(ElasticsearchError) in try await client.info() }
        var summary = Summary()
        let windows: [(index: String, from: UInt64, to: UInt64)]
        if let pattern = configuration.indexPattern {
            windows = [(pattern, configuration.start, configuration.end)]
        } else {
            windows = Self.days(start: configuration.start, end: configuration.end).map {
                ("\(configuration.indexPrefix)-\($0.day)", $0.from, $0.to)
            }
        }
        for window in windows {
            try checkCancelled()
            let exists = try await retrying("HEAD /\(window.index)") { () async throws(ElasticsearchError) in
                window.index.contains("*") ? true : try await client.indexExists(window.index)
            }
            guard exists else {
                summary.daysMissing += 1
                logger.info("index missing; day skipped", metadata: ["index": "\(window.index)"])
                continue
            }
            summary.daysRead += 1
            let query = queryBody(from: window.from, to: window.to)
            var progress: AuditCheckpoint?
            let pages: PageSink = { records, _ in try await sink(records) }
            if info.supportsPointInTime {
                try await readWithPIT(
                    window.index, query: query, distribution: info.distribution, summary: &summary,
                    progress: &progress, pages)
            } else {
                try await readWithScroll(window.index, query: query, summary: &summary, progress: &progress, pages)
            }
            logger.info(
                "audit window read",
                metadata: [
                    "index": "\(window.index)", "documents": "\(summary.documents)",
                    "malformed": "\(summary.malformed)",
                ])
        }
        return summary
    }

    func queryBody(from: UInt64, to: UInt64) -> [String: JSONValue] {
        queryBody(gte: .string(Self.timestamp(from)), lt: .string(Self.timestamp(to)))
    }

    func queryBody(gte: JSONValue, lt: JSONValue) -> [String: JSONValue] {
        var filters: [JSONValue] = [
            .object([
                "range": .object([
                    configuration.timestampField: .object([
                        "gte": gte, "lt": lt,
                        "format": .string("strict_date_optional_time"),
                    ])
                ])
            ])
        ]
        for key in configuration.terms.keys.sorted() {
            filters.append(.object(["term": .object([key: .string(configuration.terms[key]!)])]))
        }
        return [
            "size": .number(Double(configuration.pageSize)),
            "track_total_hits": .bool(false),
            "query": .object(["bool": .object(["filter": .array(filters)])]),
            "sort": .array([.object([configuration.timestampField: .string("asc")])]),
        ]
    }

    func readWithPIT(
        _ index: String, query: [String: JSONValue], distribution: ElasticsearchClient.Distribution,
        summary: inout Summary, progress: inout AuditCheckpoint?, _ sink: PageSink
    ) async throws(AuditPipelineError) {
        var pit = try await retrying("open PIT \(index)") { () async throws(ElasticsearchError) in
            try await client.openPointInTime(
                indices: index, keepAlive: configuration.keepAlive, distribution: distribution)
        }
        var after: [JSONValue]?
        var failure: AuditPipelineError?
        while failure == nil {
            do throws(AuditPipelineError) {
                try checkCancelled()
                var body = query
                body["pit"] = .object(["id": .string(pit), "keep_alive": .string(configuration.keepAlive)])
                if let after { body["search_after"] = .array(after) }
                let request = JSONValue.object(body)
                let page = try await retrying("search \(index)") { () async throws(ElasticsearchError) in
                    try await client.search(indices: nil, body: request)
                }
                if let renewed = page.pitID { pit = renewed }
                guard let last = page.hits.last else { break }
                try await hand(page.hits, summary: &summary, progress: &progress, sink)
                after = last.sort
                if page.hits.count < configuration.pageSize { break }
            } catch { failure = error }
        }
        // Best effort, also after a failure: an unclosed PIT only lingers until keep_alive runs out.
        do { try await client.closePointInTime(id: pit, distribution: distribution) } catch {
            logger.debug("closing the point in time failed", metadata: ["error": "\(error)"])
        }
        if let failure { throw failure }
    }

    func readWithScroll(
        _ index: String, query: [String: JSONValue], summary: inout Summary, progress: inout AuditCheckpoint?,
        _ sink: PageSink
    ) async throws(AuditPipelineError) {
        let request = JSONValue.object(query)
        var page = try await retrying("search \(index)") { () async throws(ElasticsearchError) in
            try await client.search(indices: index, body: request, scroll: configuration.keepAlive)
        }
        let scrollID = page.scrollID
        var failure: AuditPipelineError?
        do throws(AuditPipelineError) {
            while !page.hits.isEmpty {
                try await hand(page.hits, summary: &summary, progress: &progress, sink)
                guard let id = page.scrollID ?? scrollID else { break }
                try checkCancelled()
                page = try await retrying("scroll \(index)") { () async throws(ElasticsearchError) in
                    try await client.scroll(id: id, keepAlive: configuration.keepAlive)
                }
            }
        } catch { failure = error }
        if let scrollID {
            do { try await client.clearScroll(id: scrollID) } catch {
                logger.debug("clearing the scroll failed", metadata: ["error": "\(error)"])
            }
        }
        if let failure { throw failure }
    }

    func hand(_ hits: [SearchHit], summary: inout Summary, progress: inout AuditCheckpoint?, _ sink: PageSink)
        async throws(AuditPipelineError)
    {
        var records: [AuditRecord] = []
        records.reserveCapacity(hits.count)
        var next = progress ?? AuditCheckpoint(millis: Int64.min, ids: [])
        var skipped = 0
        for hit in hits {
            // The first sort value is the timestamp in epoch milliseconds (the sort is on it).
            let millis = hit.sort.first?.numberValue.map { Int64($0) } ?? next.millis
            if millis == next.millis, next.ids.contains(hit.id) {  // handed on before the checkpoint
                skipped += 1
                continue
            }
            if millis > next.millis {
                next = AuditCheckpoint(millis: millis, ids: [hit.id])
            } else {
                next.ids.append(hit.id)
            }
            switch Self.record(hit.source, sourceID: "\(hit.index)/\(hit.id)", mapping: configuration.mapping) {
            case .success(let record):
                records.append(record)
            case .failure(let problem):
                summary.malformed += 1
                logger.warning(
                    "malformed audit document skipped",
                    metadata: ["_id": "\(hit.id)", "_index": "\(hit.index)", "reason": "\(problem.message)"])
            }
        }
        summary.documents += hits.count - skipped
        do { try await sink(records, next) } catch {
            throw AuditPipelineError(.source, "the audit record consumer failed", cause: .error(error))
        }
        progress = next
    }

    /// Why a hit's `_source` is not an audit event in the configured layout.
    struct MalformedDocument: Error {
        let message: String
    }

    /// The audit record of a hit's `_source` in the configured layout (stringified request objects parsed back,
    /// dedotted annotation keys restored), or why it is not an audit event.
    static func record(
        _ source: JSONValue?, sourceID: String, mapping: AuditMapping
    ) -> Result<AuditRecord, MalformedDocument> {
        guard let source else { return .failure(MalformedDocument(message: "the hit has no _source")) }
        do {
            let event = try mapping.event(from: source, sourceID: sourceID)
            guard case .audit(let record) = event.payload else {
                return .failure(MalformedDocument(message: "not an audit event"))
            }
            return .success(record)
        } catch {
            return .failure(MalformedDocument(message: error.message))
        }
    }

    func checkCancelled() throws(AuditPipelineError) {
        if Task.isCancelled { throw AuditPipelineError(.cancelled, "audit read cancelled") }
    }

    /// Runs `operation`, retrying 429, 5xx and transport failures with exponential backoff.
    func retrying<T>(_ what: String, _ operation: () async throws(ElasticsearchError) -> T)
        async throws(AuditPipelineError) -> T
    {
        var backoff = configuration.initialBackoff
        var attempt = 1
        while true {
            do {
                return try await operation()
            } catch {
                guard error.isRetryable, attempt < configuration.maxAttempts else {
                    throw AuditPipelineError(.source, "\(what) failed", cause: .error(error))
                }
                logger.warning(
                    "Elasticsearch request failed; retrying",
                    metadata: ["request": "\(what)", "attempt": "\(attempt)", "error": "\(error)"])
                attempt += 1
                do { try await Task.sleep(for: backoff * Double.random(in: 0.5...1.0)) } catch {
                    throw AuditPipelineError(.cancelled, "audit read cancelled")
                }
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }
}

/// Where a reader is: the timestamp (epoch milliseconds) of the last document handed on, and the `_id`s of
/// every document at exactly that millisecond. A reader resumes with `gte` that millisecond and skips those
/// ids, so ties on the timestamp are neither lost nor read twice, without needing a tiebreaker field that
/// is stable across searches (`_shard_doc` is not: it only holds within one point in time).
public struct AuditCheckpoint: Sendable, Equatable, Codable {
    public var millis: Int64
    public var ids: [String]

    public init(millis: Int64, ids: [String]) {
        self.millis = millis
        self.ids = ids
    }
}
