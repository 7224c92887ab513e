import AlertSinks
import ArgumentParser
import AuditPipeline
import Basics
import Elasticsearch
import EventModel
import Foundation
import Logging
import OutboundHTTP
import RuleEngine
import ServiceLifecycle
import Store

#if canImport(Glibc)
import Glibc
#endif

/// `patrol-collector audit`: K8sCop's command line, kept working. Reads Kubernetes audit documents for a
/// time range out of Elasticsearch, evaluates the audit rules and writes alerts into dated alert indices.
public struct AuditCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Evaluate Kubernetes audit logs stored in Elasticsearch (K8sCop-compatible flags).",
        discussion: """
            Times are UTC, in K8sCop's Y-M-D-h-m-s form (2019-2-1-0-0-0) or ISO 8601 (2019-02-01T00:00:00Z). \
            The range is half-open: --start is included, --end is not.

            Example:
              patrol-collector audit -E 10.0.0.5:9200 -I logstash -i alerts -s 2019-2-1-0-0-0 -e 2019-2-3-0-0-0 -A static
            """)

    @Option(
        name: [.customShort("E"), .customLong("elastic")],
        help: ArgumentHelp("Elasticsearch: host:port or http(s)://host:port.", valueName: "address"))
    var elastic: String

    @Option(
        name: [.customShort("I"), .customLong("pages")],
        help: ArgumentHelp("Log index prefix: <prefix>-YYYY.MM.DD.", valueName: "prefix"))
    var pages: String

    @Option(
        name: [.customShort("i"), .customLong("alerts")], help: ArgumentHelp("Alert index prefix.", valueName: "prefix")
    )
    var alerts = "alerts"

    @Option(
        name: [.customShort("s"), .customLong("start")], help: ArgumentHelp("Start time (included).", valueName: "time")
    )
    var start: String

    @Option(
        name: [.customShort("e"), .customLong("end")],
        help: ArgumentHelp("End time (excluded). Default: now.", valueName: "time"))
    var end: String?

    @Option(
        name: [.customShort("A"), .customLong("analysis")],
        help: ArgumentHelp("static or streaming.", valueName: "mode"))
    var analysis = "static"

    @Option(
        name: [.customShort("d"), .customLong("fetch-delay")],
        help: ArgumentHelp(
            "Streaming: stay this many seconds behind now (refresh latency margin).", valueName: "seconds"))
    var fetchDelay = 10

    @Option(name: .long, help: ArgumentHelp("Timestamp field of the audit documents.", valueName: "field"))
    var timestampField = "@timestamp"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "How the shipper stored the audit events: fluentd (top level, stringified objects; K8sCop's layout), "
                + "elastic-agent (kubernetes.audit.*, dedotted annotations) or raw.", valueName: "layout"))
    var layout = "fluentd"

    @Option(
        name: .long, parsing: .singleValue,
        help: ArgumentHelp("Rule file or directory (repeatable). Default ./rules.", valueName: "path"))
    var rules: [String] = []

    @Option(
        name: .long, help: ArgumentHelp("SQLite store for the alert outbox. Default ./patrol.db.", valueName: "path"))
    var store = "patrol.db"

    @Option(name: .long, help: ArgumentHelp("Basic auth user (password from $PATROL_ES_PASSWORD).", valueName: "name"))
    var username: String?

    @Option(name: .long, help: ArgumentHelp("Read an Elasticsearch API key from this file.", valueName: "file"))
    var apiKeyFile: String?

    @Option(name: .long, help: ArgumentHelp("Read a bearer token from this file.", valueName: "file"))
    var bearerTokenFile: String?

    @Option(name: .long, help: ArgumentHelp("CA bundle (PEM) to verify an https Elasticsearch.", valueName: "file"))
    var caFile: String?

    @Option(name: .long, help: ArgumentHelp("Log level.", valueName: "level"))
    var logLevel: Logger.Level = .info

    /// `patrol-collector` declares `--rules`, `--store` and `--log-level` too, and ArgumentParser hands an option
    /// both commands declare to the parent, even after `audit`: without reading them from there, the audit
    /// command silently ran with ./rules and ./patrol.db whatever was given. (@ParentCommand: argument-parser 1.7.)
    @ParentCommand var parent: CollectorCommand

    /// `--rules` as given (to either command), else ./rules.
    var rulePaths: [String] { !rules.isEmpty ? rules : (!parent.rules.isEmpty ? parent.rules : ["rules"]) }
    var storePath: String { parent.store ?? store }
    var level: Logger.Level { parent.logLevel != .info ? parent.logLevel : logLevel }

    public init() {}

    public func validate() throws {
        guard analysis == "static" || analysis == "streaming" else {
            throw ValidationError("--analysis must be static or streaming")
        }
        _ = try Self.parseTime(start)
        if let end { _ = try Self.parseTime(end) }
    }

    /// K8sCop's `Y-M-D-h-m-s` (fields unpadded), a date `Y-M-D`, or ISO 8601 with a zone.
    static func parseTime(_ text: String) throws -> EpochNanoseconds {
        if text.contains("T") {
            let value = AuditFeed.nanoseconds(.string(text))
            guard value > 0, text.hasSuffix("Z") || text.dropFirst(19).contains(where: { $0 == "+" || $0 == "-" })
            else { throw ValidationError("'\(text)' is not an ISO 8601 time with a zone (e.g. 2019-02-01T00:00:00Z)") }
            return value
        }
        let fields = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        guard fields.count == 6 || fields.count == 3, fields.allSatisfy({ $0 != nil }) else {
            throw ValidationError("'\(text)' is neither Y-M-D-h-m-s (2019-2-1-0-0-0) nor ISO 8601")
        }
        let v = fields.map { $0! } + [0, 0, 0]
        guard (1...12).contains(v[1]), (1...31).contains(v[2]), (0...23).contains(v[3]), (0...59).contains(v[4]),
            (0...60).contains(v[5]), v[0] >= 1970
        else { throw ValidationError("'\(text)' is out of range") }
        var parts = tm()
        parts.tm_year = Int32(v[0] - 1900)
        parts.tm_mon = Int32(v[1] - 1)
        parts.tm_mday = Int32(v[2])
        parts.tm_hour = Int32(v[3])
        parts.tm_min = Int32(v[4])
        parts.tm_sec = Int32(v[5])
        return UInt64(timegm(&parts)) * 1_000_000_000
    }

    func endpoint() throws -> ElasticsearchEndpoint {
        func read(_ path: String) throws -> String {
            try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var auth = HTTPAuth.none
        if let username {
            auth = .basic(username: username, password: ProcessInfo.processInfo.environment["PATROL_ES_PASSWORD"] ?? "")
        }
        if let apiKeyFile { auth = .apiKey(try read(apiKeyFile)) }
        if let bearerTokenFile { auth = .bearer(token: try read(bearerTokenFile)) }
        return try ElasticsearchEndpoint.parse(elastic, auth: auth, tls: TLSOptions(caFile: caFile))
    }

    public func run() async throws {
        // Static runs on a terminal draw a progress line on stderr; log lines (also stderr) first clear it.
        let progress = analysis == "static" ? TerminalProgress.onTerminal() : nil
        let level = self.level
        if let progress {
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return ProgressClearingLogHandler(inner: handler, progress: progress)
            }
        } else {
            PatrolLogging.bootstrap(level: level)
        }
        let logger = Logger(label: "patrol.audit")
        let startTime = try Self.parseTime(start)
        guard let preset = AuditMapping.Preset(rawValue: layout) else {
            throw ValidationError(
                "--layout \(layout): expected one of \(AuditMapping.Preset.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let mapping = AuditMapping(preset: preset)
        if analysis == "streaming" {
            try await Self.runStreaming(
                endpoint: try endpoint(), logIndexPrefix: pages, alertIndexPrefix: alerts, start: startTime,
                lag: .seconds(max(1, fetchDelay)), timestampField: timestampField,
                rulePaths: rulePaths, storePath: storePath, logger: logger, mapping: mapping)
            return
        }
        let endTime = try end.map(Self.parseTime) ?? WallClock.now()
        let summary = try await Self.runStatic(
            endpoint: try endpoint(), logIndexPrefix: pages, alertIndexPrefix: alerts, start: startTime, end: endTime,
            timestampField: timestampField, rulePaths: rulePaths, storePath: storePath,
            logger: logger, mapping: mapping, progress: progress)
        print(summary.text)
    }

    /// Follows new documents until SIGTERM/SIGINT: the stream (checkpointed in the store), the ingest loop
    /// and the outbox's delivery to the Elasticsearch sink, under one service group.
    static func runStreaming(
        endpoint: ElasticsearchEndpoint, logIndexPrefix: String, alertIndexPrefix: String, start: EpochNanoseconds,
        lag: Duration, timestampField: String, rulePaths: [String], storePath: String, logger: Logger,
        sinkConfiguration: ElasticsearchSink.Configuration? = nil, pollInterval: Duration = .seconds(2),
        pageSize: Int = 1000, handleSignals: Bool = true, mapping: AuditMapping = .fluentd
    ) async throws {
        let ruleSet = try RuleSet.load(files: try RuleFiles.expand(rulePaths))
        let store = try await Store.open(path: storePath)
        let client = ElasticsearchClient(endpoint: endpoint, logger: logger)
        let sink = ElasticsearchSink(
            client: client, configuration: sinkConfiguration ?? .init(indexPrefix: alertIndexPrefix), logger: logger)
        let signal = OutboxSignal()
        let ingest = IngestService(store: store, ruleSet: ruleSet, signal: signal, logger: logger)
        let feed = AuditFeed(ingest: ingest, sourceName: logIndexPrefix, timestampField: timestampField)
        let stream = ElasticsearchAuditStream(
            client: client, store: store,
            configuration: .init(
                indexPrefix: logIndexPrefix, timestampField: timestampField, start: start, lag: lag,
                pollInterval: pollInterval, pageSize: pageSize, mapping: mapping),
            logger: logger
        ) { records in try await feed.submit(records) }
        let delivery = OutboxDelivery(sink: sink, store: store, signal: signal, logger: logger)
        // Shut down in reverse: the stream stops reading, delivery drains the outbox, then ingest ends.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: ingest), .init(service: delivery), .init(service: stream)],
                gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [], logger: logger))
        do {
            try await group.run()
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }

    /// What a static run did, printed at the end.
    struct Summary: Sendable {
        var source: ElasticsearchAuditSource.Summary
        var alertsByRule: [String: Int]
        var alertsByCategory: [String: Int]
        var seconds: Double

        var text: String {
            var lines = [
                String(
                    format: "read %d documents (%d malformed, skipped) from %d days (%d missing) in %.1f s",
                    source.documents, source.malformed, source.daysRead, source.daysMissing, seconds),
                "alerts: \(alertsByRule.values.reduce(0, +))",
            ]
            for (category, count) in alertsByCategory.sorted(by: { $0.key < $1.key }) {
                lines.append("  category \(category): \(count)")
            }
            for (rule, count) in alertsByRule.sorted(by: { $0.key < $1.key }) {
                lines.append("  rule \(rule): \(count)")
            }
            return lines.joined(separator: "\n")
        }
    }

    /// `<prefix>-YYYY.MM.DD` of the day a record belongs to (the index it was read from).
    static func dayIndex(_ prefix: String, _ record: AuditRecord, timestampField: String) -> String {
        let time = AuditFeed.nanoseconds(record.document[timestampField] ?? record.document["requestReceivedTimestamp"])
        return prefix + "-" + time.iso8601.prefix(10).replacingOccurrences(of: "-", with: ".")
    }

    /// Reads the range, evaluates rules through the ingest loop, and delivers every alert it raised to the
    /// Elasticsearch sink before returning.
    static func runStatic(
        endpoint: ElasticsearchEndpoint, logIndexPrefix: String, alertIndexPrefix: String, start: EpochNanoseconds,
        end: EpochNanoseconds, timestampField: String, rulePaths: [String], storePath: String, logger: Logger,
        sinkConfiguration: ElasticsearchSink.Configuration? = nil,
        sourceTuning: ((inout ElasticsearchAuditSource.Configuration) -> Void)? = nil, mapping: AuditMapping = .fluentd,
        progress: TerminalProgress? = nil
    ) async throws -> Summary {
        let began = ContinuousClock.now
        let ruleSet = try RuleSet.load(files: try RuleFiles.expand(rulePaths))
        let store = try await Store.open(path: storePath)
        let client = ElasticsearchClient(endpoint: endpoint, logger: logger)
        let sink = ElasticsearchSink(
            client: client, configuration: sinkConfiguration ?? .init(indexPrefix: alertIndexPrefix), logger: logger)
        let firstNew = try await store.outboxHead()
        var sourceConfiguration = ElasticsearchAuditSource.Configuration(
            indexPrefix: logIndexPrefix, timestampField: timestampField, start: start, end: end, mapping: mapping)
        sourceTuning?(&sourceConfiguration)
        let indexPattern = sourceConfiguration.indexPattern
        let source = ElasticsearchAuditSource(client: client, configuration: sourceConfiguration, logger: logger)
        let ingest = IngestService(store: store, ruleSet: ruleSet, signal: OutboxSignal(), logger: logger)
        let feed = AuditFeed(ingest: ingest, sourceName: logIndexPrefix, timestampField: timestampField)

        let read: ElasticsearchAuditSource.Summary
        do {
            read = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await ingest.run() }
                defer { group.cancelAll() }
                return try await source.run { records in
                    try await feed.submit(records)
                    // Committed, so the outbox head counts this page's alerts too.
                    if let progress, progress.add(documents: records.count) {
                        let alerts = try await store.outboxHead() - firstNew
                        let index = indexPattern
                            ?? records.last.map { Self.dayIndex(logIndexPrefix, $0, timestampField: timestampField) } ?? ""
                        progress.draw(index: index, alerts: alerts)
                    }
                }
            }
        } catch {
            progress?.finish()
            await store.close()
            throw error
        }
        progress?.finish()

        // Deliver what this run raised, from the outbox, in batches; the sink retries 429/5xx itself.
        var alertsByRule: [String: Int] = [:]
        var alertsByCategory: [String: Int] = [:]
        var cursor = firstNew
        var pause = Duration.milliseconds(200)
        while true {
            let entries = try await store.outbox(after: cursor, limit: 500)
            guard let last = entries.last else { break }
            do {
                try await sink.deliver(entries.map(\.alert))
            } catch {
                logger.warning("alert delivery failed; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(30))
                continue
            }
            pause = .milliseconds(200)
            for entry in entries {
                alertsByRule["\(entry.alert.ruleID) \(entry.alert.ruleName)", default: 0] += 1
                if let category = entry.alert.fields["category"] { alertsByCategory[category, default: 0] += 1 }
            }
            cursor = last.position
            logger.info("alerts delivered", metadata: ["through": "\(cursor)"])
        }
        await store.close()
        let elapsed = ContinuousClock.now - began
        let (seconds, attoseconds) = elapsed.components
        return Summary(
            source: read, alertsByRule: alertsByRule, alertsByCategory: alertsByCategory,
            seconds: Double(seconds) + Double(attoseconds) / 1e18)
    }
}
