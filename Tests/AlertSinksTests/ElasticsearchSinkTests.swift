import AlertSinks
import Elasticsearch
import EventModel
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

/// Collects log records so tests can check what an operator would read.
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
        var merged = metadata
        merged.merge(event.metadata ?? [:]) { _, new in new }
        records.withLock { $0.append((event.level, event.message.description, merged)) }
    }
}

@Suite struct ElasticsearchSinkTests {
    static let fast = ElasticsearchSink.Configuration(
        indexPrefix: "alerts", maxAttempts: 6, initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(20))

    func makeSink(_ server: ElasticsearchTestServer, _ configuration: ElasticsearchSink.Configuration = fast)
        throws -> (ElasticsearchSink, RecordingLogHandler)
    {
        let handler = RecordingLogHandler()
        let logger = Logger(label: "test") { _ in handler }
        let client = ElasticsearchClient(endpoint: try .parse(server.hostPort))
        return (ElasticsearchSink(client: client, configuration: configuration, logger: logger), handler)
    }

    /// 2023-11-14T22:13:20Z and one just before and after a UTC midnight.
    static let alerts = [
        AlertFixtures.alert(index: 0, time: 1_700_000_000_000_000_000),
        AlertFixtures.alert(index: 1, time: 1_700_006_399_999_000_000),  // 2023-11-14T23:59:59.999Z
        AlertFixtures.alert(index: 2, time: 1_700_006_400_000_000_000),  // 2023-11-15T00:00:00Z
    ]

    @Test func writesDatedIndicesWithTimestampAndTemplate() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let (sink, _) = try makeSink(server)
        try await sink.deliver(Self.alerts)
        #expect(server.templates["patrol-alerts"]?["index_patterns"] == .array([.string("alerts-*")]))
        #expect(server.documents(in: "alerts-2023.11.14").map(\.id) == ["alert-0", "alert-1"])
        #expect(server.documents(in: "alerts-2023.11.15").map(\.id) == ["alert-2"])
        #expect(server.template(ofIndex: "alerts-2023.11.15") == "patrol-alerts")
        let late = try #require(server.documents(in: "alerts-2023.11.14").last)
        #expect(late.source["@timestamp"]?.stringValue == "2023-11-14T23:59:59.999000Z")
        #expect(late.source["rule_id"]?.stringValue == "R1000")
        // Every bulk request asked for create with the alert id.
        let bulk = try #require(server.http.requests.last { $0.path == "/_bulk" })
        #expect(bulk.bodyText.contains("{\"create\":{\"_id\":\"alert-1\",\"_index\":\"alerts-2023.11.14\"}}\n"))
        #expect(bulk.bodyText.hasSuffix("\n"))
    }

    @Test func rerunWritesNothingTwice() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let (sink, _) = try makeSink(server)
        try await sink.deliver(Self.alerts)
        try await sink.deliver(Self.alerts)
        let (secondSink, _) = try makeSink(server)
        try await secondSink.deliver(Self.alerts)
        #expect(server.allDocuments.count == 3)
        #expect(server.count("bulk.conflict") == 6)
        #expect(sink.rejectedItems == 0 && secondSink.rejectedItems == 0)
    }

    @Test func rejectedItemsAndFailedRequestsAreRetriedWithoutLossOrDuplicates() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let (sink, handler) = try makeSink(server)
        let alerts = (0..<20).map { AlertFixtures.alert(index: $0) }
        server.rejectBulkItems(7)
        server.inject(.status(429), pathContains: "_bulk")
        server.inject(.status(503, plainStringError: true), pathContains: "_bulk")
        server.inject(.drop, pathContains: "_bulk")
        try await sink.deliver(alerts)
        #expect(Set(server.allDocuments.map(\.id)) == Set(alerts.map(\.id)))
        #expect(server.allDocuments.count == 20)
        #expect(sink.retriedItems == 7)
        #expect(sink.rejectedItems == 0)
        // Progress is visible in the log.
        #expect(handler.records.withLock { $0.contains { $0.message.contains("retrying") } })
    }

    @Test func aLostBulkReplyWritesNothingTwice() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let (sink, _) = try makeSink(server)
        try await sink.installTemplate()
        // The server stores the batch but the reply never arrives (twice: curl re-sends once by itself).
        server.inject(.lostReply, count: 2, pathContains: "_bulk")
        try await sink.deliver(Self.alerts)
        #expect(server.allDocuments.count == 3)
        #expect(server.count("bulk.created") == 3)
        #expect(server.count("bulk.conflict") == 6)
        #expect(sink.rejectedItems == 0)
    }

    @Test func finalFailuresAreCountedAndLoggedWithTheirId() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        // An upper-case prefix makes every index name invalid: 400, final.
        let (sink, handler) = try makeSink(
            server, .init(indexPrefix: "Alerts", maxAttempts: 2, initialBackoff: .milliseconds(1)))
        try await sink.deliver([Self.alerts[0]])
        #expect(sink.rejectedItems == 1)
        #expect(server.allDocuments.isEmpty)
        let logged = handler.records.withLock { records in
            records.first { $0.level == .error }
        }
        #expect(logged?.metadata["_id"] == "alert-0")
        #expect(logged?.metadata["status"] == "400")
    }

    @Test func aLongOutageGivesTheBatchBackToTheOutbox() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let (sink, _) = try makeSink(server, .init(maxAttempts: 2, initialBackoff: .milliseconds(1)))
        try await sink.installTemplate()
        server.inject(.status(503), count: 2, pathContains: "_bulk")
        await #expect(throws: AlertSinksError.self) { try await sink.deliver(Self.alerts) }
        #expect(server.allDocuments.isEmpty)
        // The outbox delivers the same batch again once the server is back.
        try await sink.deliver(Self.alerts)
        #expect(server.allDocuments.count == 3)
    }
}
