public import Basics
public import Elasticsearch
public import EventModel
import Foundation
public import Logging
public import ServiceLifecycle
public import Store

/// Follows new audit documents in `<prefix>-YYYY.MM.DD` indices as they arrive (K8sCop's streaming mode).
///
/// Each poll reads `[checkpoint, now - lag)`: the lag is a safety margin for refresh latency (a document is
/// searchable only after a refresh), so what a poll reads is settled. The window advances by what was
/// actually read, never by the clock (K8sCop defect 8): the checkpoint is the last timestamp handed on plus
/// the `_id`s at exactly that millisecond, saved in the store after every page has been handed on. A
/// restart resumes from it with no gap; a crash between handing a page on and saving its checkpoint
/// re-reads that one page, whose alerts carry the same deterministic ids (the Elasticsearch sink writes
/// them once).
public struct ElasticsearchAuditStream: Service {
    public struct Configuration: Sendable {
        public var indexPrefix: String
        public var timestampField: String
        /// Where to begin when the store holds no checkpoint yet.
        public var start: EpochNanoseconds
        /// How far behind now to stay (K8sCop's fetch delay, now a margin for refresh latency).
        public var lag: Duration
        public var pollInterval: Duration
        public var pageSize: Int
        public var terms: [String: String]
        public var initialBackoff: Duration
        public var maxBackoff: Duration
        /// The shipper's layout of `_source` (see `ElasticsearchAuditSource.Configuration.mapping`).
        public var mapping: AuditMapping

        public init(
            indexPrefix: String, timestampField: String = "@timestamp", start: EpochNanoseconds,
            lag: Duration = .seconds(10), pollInterval: Duration = .seconds(2), pageSize: Int = 1000,
            terms: [String: String] = [:], initialBackoff: Duration = .milliseconds(200),
            maxBackoff: Duration = .seconds(15), mapping: AuditMapping = .fluentd
        ) {
            self.indexPrefix = indexPrefix
            self.timestampField = timestampField
            self.start = start
            self.lag = lag
            self.pollInterval = pollInterval
            self.pageSize = pageSize
            self.terms = terms
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
            self.mapping = mapping
        }
    }

    public typealias Sink = @Sendable ([AuditRecord]) async throws -> Void

    let client: ElasticsearchClient
    let store: Store
    let configuration: Configuration
    let logger: Logger
    let sink: Sink
    /// Documents handed on and malformed ones skipped, for `/metrics`.
    public let statistics: AuditSourceStatistics
    /// The store key of this stream's checkpoint.
    public var checkpointKey: String { "elasticsearch:\(configuration.indexPrefix)" }

    public init(
        client: ElasticsearchClient, store: Store, configuration: Configuration, logger: Logger,
        statistics: AuditSourceStatistics = .init(), sink: @escaping Sink
    ) {
        self.statistics = statistics
        self.client = client
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.sink = sink
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await follow() }
        } catch let error as AuditPipelineError where error.code == .cancelled {
            // A graceful shutdown (or cancellation) ends the stream; the checkpoint is already saved.
            return
        } catch is CancellationError {
            return
        }
    }

    /// The saved checkpoint, if any.
    public func savedCheckpoint() async throws -> AuditCheckpoint? {
        guard let text = try await store.auditCheckpoint(checkpointKey) else { return nil }
        return try JSONDecoder().decode(AuditCheckpoint.self, from: Data(text.utf8))
    }

    func follow() async throws {
        var reader = ElasticsearchAuditSource(
            client: client,
            configuration: .init(
                indexPrefix: configuration.indexPrefix, timestampField: configuration.timestampField,
                start: configuration.start, end: configuration.start, pageSize: configuration.pageSize,
                terms: configuration.terms, maxAttempts: Int.max, initialBackoff: configuration.initialBackoff,
                maxBackoff: configuration.maxBackoff, mapping: configuration.mapping),
            logger: logger)
        let info = try await reader.retrying("GET /") { () async throws(ElasticsearchError) in try await client.info() }
        var checkpoint = try await savedCheckpoint()
        if let checkpoint {
            logger.info(
                "resuming audit stream",
                metadata: ["checkpoint_ms": "\(checkpoint.millis)", "ids": "\(checkpoint.ids.count)"])
        }
        let (lagSeconds, lagAttoseconds) = configuration.lag.components
        let lagNanos = UInt64(lagSeconds) * 1_000_000_000 + UInt64(lagAttoseconds / 1_000_000_000)
        while !Task.isCancelled {
            let upper = WallClock.now() - lagNanos
            let from = checkpoint.map { UInt64($0.millis) * 1_000_000 } ?? configuration.start
            if upper > from {
                reader.configuration.start = from
                reader.configuration.end = upper
                let indices = ElasticsearchAuditSource.days(start: from, end: upper)
                    .map { "\(configuration.indexPrefix)-\($0.day)" }.joined(separator: ",")
                let query = reader.queryBody(from: from, to: upper)
                var summary = ElasticsearchAuditSource.Summary()
                let key = checkpointKey
                let pages: ElasticsearchAuditSource.PageSink = { [store, sink] records, reached in
                    if !records.isEmpty { try await sink(records) }
                    let text = String(decoding: try JSONEncoder().encode(reached), as: UTF8.self)
                    try await store.setAuditCheckpoint(key, to: text, at: WallClock.now())
                }
                if info.supportsPointInTime {
                    try await reader.readWithPIT(
                        indices, query: query, distribution: info.distribution, summary: &summary,
                        progress: &checkpoint, pages)
                } else {
                    try await reader.readWithScroll(
                        indices, query: query, summary: &summary, progress: &checkpoint, pages)
                }
                statistics.add(documents: summary.documents - summary.malformed, malformed: summary.malformed)
                if summary.documents > 0 {
                    logger.info(
                        "audit stream progress",
                        metadata: [
                            "documents": "\(summary.documents)", "malformed": "\(summary.malformed)",
                            "checkpoint_ms": "\(checkpoint?.millis ?? 0)",
                        ])
                }
            }
            try await Task.sleep(for: configuration.pollInterval)
        }
    }
}
