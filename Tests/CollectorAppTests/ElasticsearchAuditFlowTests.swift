import AlertSinks
import AuditPipeline
import Elasticsearch
import EventModel
import Foundation
import Logging
import RuleEngine
import Store
import TestSupport
import Testing

@testable import CollectorApp

/// Audit documents in Elasticsearch → the static source → the ingest loop (rules, store, outbox) → the
/// Elasticsearch sink, all against the ES test server on loopback.
@Suite struct ElasticsearchAuditFlowTests {
    static let rules = """
        - rule:
            id: A1
            name: Secrets listed cluster-wide
            severity: high
            events: [audit]
            condition: 'ka.verb = list and ka.uri startswith /api/v1/secrets'
            output: "secrets listed by %ka.user.name"
        """

    static func audit(_ time: String, verb: String, uri: String, id: String) -> JSONValue {
        .object([
            "@timestamp": .string(time), "verb": .string(verb), "requestURI": .string(uri), "auditID": .string(id),
            "user": .object(["username": .string("mallory")]), "responseStatus": .object(["code": .number(200)]),
        ])
    }

    @Test func auditDocumentsBecomeAlertsWrittenOnceEvenWhenRerun() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        // Defect 1's form (limit=500), at 23:59:59.999 (defect 7) and exactly at midnight (defect 6).
        server.add(
            Self.audit("2024-03-01T23:59:59.999Z", verb: "list", uri: "/api/v1/secrets?limit=500", id: "a1"),
            index: "logstash-2024.03.01", id: "d1")
        server.add(
            Self.audit("2024-03-02T00:00:00.000Z", verb: "list", uri: "/api/v1/secrets", id: "a2"),
            index: "logstash-2024.03.02", id: "d2")
        server.add(
            Self.audit("2024-03-02T01:00:00.000Z", verb: "get", uri: "/api/v1/namespaces/default/pods", id: "a3"),
            index: "logstash-2024.03.02", id: "d3")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let ruleSet = try RuleSet.load(yaml: Self.rules, fileName: "audit.yaml")
        let logger = Logger(label: "test")
        let ingest = IngestService(store: store, ruleSet: ruleSet, signal: OutboxSignal(), logger: logger)
        let client = ElasticsearchClient(endpoint: try .parse(server.hostPort))
        let march1: UInt64 = 1_709_251_200 * 1_000_000_000
        let configuration = ElasticsearchAuditSource.Configuration(
            indexPrefix: "logstash", start: march1, end: march1 + 2 * 86_400 * 1_000_000_000, pageSize: 2)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await ingest.run() }
            // Run the same range twice, as an operator re-running K8sCop would.
            for _ in 0..<2 {
                let feed = AuditFeed(ingest: ingest, sourceName: "logstash")
                let source = ElasticsearchAuditSource(client: client, configuration: configuration, logger: logger)
                let summary = try await source.run { records in try await feed.submit(records) }
                #expect(summary.documents == 3)
            }
            group.cancelAll()
        }
        let entries = try await store.outbox(after: 0, limit: 100)
        #expect(entries.count == 4)  // two alerts per run
        #expect(Set(entries.map(\.alert.id)).count == 2)
        #expect(entries.first?.alert.time == march1 + 86_399_999_000_000)

        let sink = ElasticsearchSink(client: client, configuration: .init(indexPrefix: "alerts"), logger: logger)
        try await sink.deliver(entries.map(\.alert))
        // Dated by the event: one alert on each side of midnight, each written once (defect 9), with @timestamp (11).
        let first = server.documents(in: "alerts-2024.03.01")
        let second = server.documents(in: "alerts-2024.03.02")
        #expect(first.count == 1 && second.count == 1)
        #expect(first.first?.source["@timestamp"]?.stringValue == "2024-03-01T23:59:59.999000Z")
        #expect(first.first?.source["message"]?.stringValue == "secrets listed by mallory")
        await store.close()
    }

    @Test func auditTimestampsParse() {
        #expect(AuditFeed.nanoseconds(.string("2024-03-01T00:00:00Z")) == 1_709_251_200 * 1_000_000_000)
        #expect(
            AuditFeed.nanoseconds(.string("2024-03-01T01:00:00.5+01:00")) == 1_709_251_200 * 1_000_000_000 + 500_000_000
        )
        #expect(AuditFeed.nanoseconds(.string("2024-03-01T23:59:59.999999999Z")) == 1_709_337_599_999_999_999)
        #expect(AuditFeed.nanoseconds(.number(1_709_251_200_000)) == 1_709_251_200 * 1_000_000_000)
        #expect(AuditFeed.nanoseconds(.string("yesterday")) == 0)
    }
}
