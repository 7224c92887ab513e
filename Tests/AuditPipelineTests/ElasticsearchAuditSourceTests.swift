import AuditPipeline
import Elasticsearch
import EventModel
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

final class RecordingLogHandler: LogHandler, @unchecked Sendable {
    // `records` is guarded by its Mutex; the LogHandler properties are set only before use.
    let records = Mutex<[(level: Logger.Level, message: String, metadata: Logger.Metadata)]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        records.withLock { $0.append((event.level, event.message.description, event.metadata ?? [:])) }
    }
}

/// Collects what the source hands on.
final class Collected: Sendable {
    let records = Mutex<[AuditRecord]>([])
    var ids: [String] { records.withLock { $0.map { String($0.sourceID.split(separator: "/").last!) } } }
}

@Suite struct ElasticsearchAuditSourceTests {
    static func audit(_ time: String, verb: String = "list", uri: String = "/api/v1/pods") -> JSONValue {
        .object([
            "@timestamp": .string(time), "verb": .string(verb), "requestURI": .string(uri),
            "origin": .string("audit"), "user": .object(["username": .string("alice")]),
        ])
    }

    /// 2024-03-01T00:00:00Z and friends, in nanoseconds.
    static let march1: UInt64 = 1_709_251_200 * 1_000_000_000
    static let day: UInt64 = 86_400 * 1_000_000_000

    /// Three days of documents with events exactly on every midnight, at 23:59:59.999, and on the range edges.
    static func seed(_ server: ElasticsearchTestServer) {
        let events: [(String, String)] = [
            ("logstash-2024.03.01", "2024-03-01T00:00:00.000Z"),  // range start, inclusive
            ("logstash-2024.03.01", "2024-03-01T12:00:00.000Z"),
            ("logstash-2024.03.01", "2024-03-01T23:59:59.000Z"),
            ("logstash-2024.03.01", "2024-03-01T23:59:59.999Z"),  // K8sCop dropped this one
            ("logstash-2024.03.02", "2024-03-02T00:00:00.000Z"),  // on a window edge: read once
            ("logstash-2024.03.02", "2024-03-02T23:59:59.999Z"),
            ("logstash-2024.03.04", "2024-03-04T00:00:00.000Z"),  // 03 is missing
            ("logstash-2024.03.04", "2024-03-04T06:00:00.000Z"),
            ("logstash-2024.03.04", "2024-03-04T12:00:00.000Z"),  // range end, exclusive
        ]
        for (number, (index, time)) in events.enumerated() {
            server.add(audit(time), index: index, id: "e\(number)")
        }
    }

    func run(
        _ server: ElasticsearchTestServer, start: UInt64 = march1,
        end: UInt64 = march1 + 3 * day + 12 * 3_600_000_000_000,
        pageSize: Int = 2, handler: RecordingLogHandler = RecordingLogHandler()
    ) async throws -> (ElasticsearchAuditSource.Summary, [String]) {
        let client = ElasticsearchClient(endpoint: try .parse(server.hostPort))
        let source = ElasticsearchAuditSource(
            client: client,
            configuration: .init(
                indexPrefix: "logstash", start: start, end: end, pageSize: pageSize, terms: ["origin": "audit"],
                initialBackoff: .milliseconds(2), maxBackoff: .milliseconds(10)),
            logger: Logger(label: "test") { _ in handler })
        let collected = Collected()
        let summary = try await source.run { records in collected.records.withLock { $0 += records } }
        return (summary, collected.ids)
    }

    static let expected = ["e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7"]

    @Test(arguments: [
        ElasticsearchTestServer.Flavor.elasticsearch(), .opensearch(), .elasticsearchWithoutPIT(),
    ])
    func multiDayRangeReadsEachDocumentExactlyOnce(flavor: ElasticsearchTestServer.Flavor) async throws {
        let server = try ElasticsearchTestServer(flavor: flavor)
        defer { server.stop() }
        Self.seed(server)
        let (summary, ids) = try await run(server)
        // Defects 6 and 7: the midnight event once, 23:59:59.999 kept, the end excluded.
        #expect(ids == Self.expected)
        #expect(summary.documents == 8)
        #expect(summary.daysRead == 3)
        #expect(summary.daysMissing == 1)
        #expect(server.openContexts.pits == 0)
        #expect(server.openContexts.scrolls == 0)
    }

    @Test func adjacentRangesSplitOnABoundaryShareNothing() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        Self.seed(server)
        let middle = Self.march1 + Self.day  // exactly 2024-03-02T00:00:00Z, where e4 sits
        let (_, first) = try await run(server, end: middle)
        let (_, second) = try await run(server, start: middle)
        #expect(first == ["e0", "e1", "e2", "e3"])
        #expect(second == ["e4", "e5", "e6", "e7"])
    }

    @Test func faultsMidRunLoseAndDuplicateNothing() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        Self.seed(server)
        server.inject(.status(429), count: 2, pathContains: "_search")
        server.inject(.status(503, plainStringError: true), pathContains: "_search")
        server.inject(.drop, count: 2, pathContains: "_search")
        server.inject(.drop, pathContains: "_pit")
        let handler = RecordingLogHandler()
        let (_, ids) = try await run(server, handler: handler)
        #expect(ids == Self.expected)
        #expect(server.count("fault") == 6)
        #expect(handler.records.withLock { $0.contains { $0.message.contains("retrying") } })
    }

    @Test func malformedDocumentsAreCountedAndSkippedWithTheirId() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        Self.seed(server)
        server.add(
            .object(["@timestamp": .string("2024-03-01T01:00:00.000Z"), "origin": .string("audit"), "verb": .number(3)]
            ),
            index: "logstash-2024.03.01", id: "bad-type")
        server.add(
            .object(["@timestamp": .string("2024-03-01T02:00:00.000Z"), "origin": .string("audit")]),
            index: "logstash-2024.03.01", id: "bad-missing")
        let handler = RecordingLogHandler()
        let (summary, ids) = try await run(server, handler: handler)
        #expect(ids == Self.expected)
        #expect(summary.malformed == 2)
        let logged = handler.records.withLock {
            $0.filter { $0.level == .warning }.compactMap { $0.metadata["_id"]?.description }
        }
        #expect(Set(logged) == ["bad-type", "bad-missing"])
    }

    /// Elastic Agent's layout: the audit event under `kubernetes.audit.`, annotation keys dedotted, the request
    /// object as JSON text. With the elastic-agent layout the source hands on the event itself, keys restored;
    /// with the default (Fluentd) layout the same document names no request and is skipped as malformed.
    @Test func elasticAgentDocumentsAreMappedWithTheirLayout() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let document = JSONValue.object([
            "@timestamp": .string("2024-03-01T01:00:00.000Z"),
            "kubernetes": .object([
                "audit": .object([
                    "verb": .string("create"), "requestURI": .string("/api/v1/namespaces/shop/pods"),
                    "user": .object(["username": .string("mallory")]),
                    "annotations": .object(["authorization_k8s_io/decision": .string("allow")]),
                    "requestObject": .string(#"{"kind":"Pod","spec":{"hostPID":true}}"#),
                ])
            ]),
        ])
        server.add(document, index: "logstash-2024.03.01", id: "agent-1")
        for (mapping, expectRecord) in [(AuditMapping.elasticAgent, true), (AuditMapping.fluentd, false)] {
            let collected = Collected()
            let source = ElasticsearchAuditSource(
                client: ElasticsearchClient(endpoint: try .parse(server.hostPort)),
                configuration: .init(
                    indexPrefix: "logstash", start: Self.march1, end: Self.march1 + Self.day, mapping: mapping),
                logger: Logger(label: "test"))
            let summary = try await source.run { records in collected.records.withLock { $0 += records } }
            let records = collected.records.withLock { $0 }
            if expectRecord {
                let record = try #require(records.first)
                #expect(record.document["verb"]?.stringValue == "create")
                #expect(record.document["annotations"]?["authorization.k8s.io/decision"]?.stringValue == "allow")
                #expect(record.document["requestObject"]?["spec"]?["hostPID"] == .bool(true))
                #expect(summary.malformed == 0)
            } else {
                #expect(records.isEmpty)
                #expect(summary.malformed == 1)
            }
        }
    }
}
