import Basics
public import Elasticsearch
import EventModel
public import Logging
import Metrics
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Writes alerts into Elasticsearch with `_bulk`, into `<prefix>-YYYY.MM.DD` dated by the event's UTC day.
///
/// Each alert is a `create` with the alert id as `_id`, so delivering a batch again (the outbox is at
/// least once) or re-running over the same logs writes nothing twice: the server's 409 for an id that
/// exists means "already written". Items rejected with 429 or a 5xx are sent again with backoff; other
/// item failures (400: a mapping or index-name problem) are final, logged with the item's `_id` and
/// counted, because sending them again cannot succeed. The index template is installed before the
/// first write.
public final class ElasticsearchSink: AlertSink {
    public struct Configuration: Sendable {
        /// Alert index prefix (K8sCop's `-i`, default `alerts`).
        public var indexPrefix: String
        /// The index template's name; its pattern is `<prefix>-*`.
        public var templateName: String
        /// Rounds of item retries inside one delivery before it gives the batch back to the outbox.
        public var maxAttempts: Int
        public var initialBackoff: Duration
        public var maxBackoff: Duration

        public init(
            indexPrefix: String = "alerts", templateName: String? = nil, maxAttempts: Int = 5,
            initialBackoff: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(10)
        ) {
            self.indexPrefix = indexPrefix
            self.templateName = templateName ?? "patrol-\(indexPrefix)"
            self.maxAttempts = max(1, maxAttempts)
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
        }
    }

    public let name = "elasticsearch"
    public let configuration: Configuration
    private let client: ElasticsearchClient
    private let logger: Logger
    private let templateInstalled = Atomic<Bool>(false)
    private let rejectedTotal = Atomic<Int>(0)
    private let retriedTotal = Atomic<Int>(0)
    private let duplicateTotal = Atomic<Int>(0)
    private let rejected: Counter
    private let retried: Counter
    private let duplicates: Counter

    public init(client: ElasticsearchClient, configuration: Configuration = Configuration(), logger: Logger) {
        self.client = client
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "sink"] = "elasticsearch"
        self.logger = logger
        self.rejected = Counter(label: "patrol_sink_items_rejected_total", dimensions: [("sink", "elasticsearch")])
        self.retried = Counter(label: "patrol_sink_items_retried_total", dimensions: [("sink", "elasticsearch")])
        self.duplicates = Counter(label: "patrol_sink_duplicates_total", dimensions: [("sink", "elasticsearch")])
    }

    /// Items that failed for good (400 and other non-retryable statuses but 409) since start.
    public var rejectedItems: Int { rejectedTotal.load(ordering: .relaxed) }
    /// Items sent again after a 429 or 5xx since start.
    public var retriedItems: Int { retriedTotal.load(ordering: .relaxed) }
    /// Items the server already had (409 on `create`): duplicate deliveries, written once.
    public var duplicateItems: Int { duplicateTotal.load(ordering: .relaxed) }

    /// The index an alert goes to: the prefix and the UTC day of the event.
    public func index(for alert: Alert) -> String {
        "\(configuration.indexPrefix)-\(Self.day(alert.time))"
    }

    static func day(_ time: EpochNanoseconds) -> String {
        var seconds = time_t(time / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900).\(pad(parts.tm_mon + 1)).\(pad(parts.tm_mday))"
    }

    /// The alert document: the shared JSON rendering plus `@timestamp` (the event time), which
    /// Kibana and ILM key on and K8sCop's documents lacked.
    static func document(_ alert: Alert) -> String {
        var json = AlertDocument.json(alert)
        json.removeFirst()  // "{"
        return "{\"@timestamp\":\"\(alert.time.iso8601)\"," + json
    }

    /// The template: `@timestamp` as a date, identifiers as keywords, so range queries and
    /// aggregations work without dynamic-mapping guesses.
    var templateBody: JSONValue {
        func type(_ name: String) -> JSONValue { .object(["type": .string(name)]) }
        return .object([
            "index_patterns": .array([.string("\(configuration.indexPrefix)-*")]),
            "priority": .number(100),
            "template": .object([
                "settings": .object(["number_of_shards": .number(1)]),
                "mappings": .object([
                    "properties": .object([
                        "@timestamp": type("date"), "time": type("date"), "id": type("keyword"),
                        "rule_id": type("keyword"), "rule_name": type("keyword"), "severity": type("keyword"),
                        "tags": type("keyword"), "event_kind": type("keyword"), "node": type("keyword"),
                        "message": type("text"), "fix": type("text"),
                    ])
                ]),
            ]),
            "_meta": .object(["managed_by": .string("patrol")]),
        ])
    }

    /// Installs the index template (idempotent: PUT replaces it). Called before the first delivery.
    public func installTemplate() async throws(AlertSinksError) {
        do {
            try await client.putIndexTemplate(name: configuration.templateName, body: templateBody)
            templateInstalled.store(true, ordering: .relaxed)
            logger.info("index template installed", metadata: ["template": "\(configuration.templateName)"])
        } catch {
            throw AlertSinksError(
                error.isRetryable ? .unavailable : .rejected,
                "cannot install index template \(configuration.templateName)", cause: .error(error))
        }
    }

    public func deliver(_ alerts: [Alert]) async throws(AlertSinksError) {
        guard !alerts.isEmpty else { return }
        if !templateInstalled.load(ordering: .relaxed) { try await installTemplate() }
        var pending = alerts.map {
            BulkOperation(.create, index: index(for: $0), id: $0.id, source: Self.document($0))
        }
        var backoff = configuration.initialBackoff
        var lastProblem = ""
        for attempt in 1...configuration.maxAttempts {
            if attempt > 1 {
                let jitter = Double.random(in: 0.5...1.0)
                do { try await Task.sleep(for: backoff * jitter) } catch {
                    throw AlertSinksError(.unavailable, "delivery cancelled with \(pending.count) alerts unsent")
                }
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
            let results: [BulkItemResult]
            do {
                results = try await client.bulk(pending)
            } catch {
                guard error.isRetryable else {
                    throw AlertSinksError(.rejected, "bulk request refused", cause: .error(error))
                }
                lastProblem = error.description
                logger.warning(
                    "bulk request failed; retrying",
                    metadata: ["attempt": "\(attempt)", "items": "\(pending.count)", "error": "\(error)"])
                continue
            }
            var again: [BulkOperation] = []
            for (operation, result) in zip(pending, results) {
                if result.succeeded { continue }
                if result.status == 409 {
                    duplicateTotal.add(1, ordering: .relaxed)
                    duplicates.increment()
                    continue
                }
                if result.isRetryable {
                    again.append(operation)
                    lastProblem = "\(result.status) \(result.errorType ?? "")"
                    continue
                }
                rejectedTotal.add(1, ordering: .relaxed)
                rejected.increment()
                logger.error(
                    "alert rejected by Elasticsearch; not retried",
                    metadata: [
                        "_id": "\(operation.id ?? "")", "index": "\(operation.index)", "status": "\(result.status)",
                        "type": "\(result.errorType ?? "")", "reason": "\(result.errorReason ?? "")",
                    ])
            }
            if again.isEmpty { return }
            retriedTotal.add(again.count, ordering: .relaxed)
            retried.increment(by: again.count)
            logger.warning(
                "bulk items rejected for now; retrying them",
                metadata: ["attempt": "\(attempt)", "items": "\(again.count)", "status": "\(lastProblem)"])
            pending = again
        }
        // The outbox keeps the batch and delivers it again later; items already written answer 409 then.
        throw AlertSinksError(
            .unavailable,
            "\(pending.count) alerts still unwritten after \(configuration.maxAttempts) attempts: \(lastProblem)")
    }
}
