import AuditPipeline
import Basics
import Elasticsearch
import EventModel
import Foundation
import Logging
import Store
import Synchronization
import TestSupport
import Testing

@Suite struct ElasticsearchAuditStreamTests {
    /// Nanoseconds → `2024-03-01T00:00:00.000Z`.
    static func iso(_ time: UInt64) -> String {
        let micros = time.iso8601
        return String(micros.dropLast(4)) + "Z"
    }

    static func day(_ time: UInt64) -> String {
        let text = time.iso8601
        return text.prefix(10).replacingOccurrences(of: "-", with: ".")
    }

    /// Adds `count` documents spaced 10 ms apart from `first`, two at each timestamp (ties on the sort field).
    static func add(_ server: ElasticsearchTestServer, from first: UInt64, count: Int, offset: Int) {
        for n in 0..<count {
            let time = first + UInt64(n / 2) * 10_000_000
            server.add(
                .object([
                    "@timestamp": .string(iso(time)), "verb": .string("get"),
                    "requestURI": .string("/api/v1/namespaces/default/pods/p\(offset + n)"),
                ]), index: "kube-\(day(time))", id: "doc-\(offset + n)")
        }
    }

    /// Polls until `condition` holds; the bound only stops a broken test from hanging.
    static func eventually(_ condition: () -> Bool) async throws {
        for _ in 0..<2000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
    }

    @Test func restartResumesFromTheCheckpointWithNoGapAndNoDuplicate() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let client = ElasticsearchClient(endpoint: try .parse(server.hostPort))
        // Documents from a minute ago; the stream stays 5 s behind now, so all of them are settled.
        let base = WallClock.now() - 60_000_000_000
        Self.add(server, from: base, count: 40, offset: 0)
        let collected = Collected()
        let configuration = ElasticsearchAuditStream.Configuration(
            indexPrefix: "kube", start: base - 1_000_000_000, lag: .seconds(5), pollInterval: .milliseconds(20),
            pageSize: 3, initialBackoff: .milliseconds(2), maxBackoff: .milliseconds(10))
        let stream: @Sendable () -> ElasticsearchAuditStream = {
            ElasticsearchAuditStream(
                client: client, store: store, configuration: configuration, logger: Logger(label: "test")
            ) { records in collected.records.withLock { $0 += records } }
        }

        // First run: stopped once it has read part of the data.
        let first = Task { try await stream().run() }
        try await Self.eventually { collected.records.withLock { $0.count } >= 10 }
        first.cancel()
        _ = await first.result
        let beforeRestart = collected.records.withLock { $0.count }
        #expect(beforeRestart >= 10)

        // More documents arrive while it is down, some at the same millisecond as already-read ones,
        // and the server has a bad moment when it comes back.
        Self.add(server, from: base + 200_000_000, count: 20, offset: 40)
        server.inject(.status(429), count: 2, pathContains: "_search")
        server.inject(.drop, count: 2, pathContains: "_pit")
        let second = Task { try await stream().run() }
        try await Self.eventually { collected.records.withLock { $0.count } >= 60 }
        second.cancel()
        _ = await second.result

        let ids = collected.ids
        // No gap: every document was handed on.
        #expect(Set(ids) == Set((0..<60).map { "doc-\($0)" }))
        // No duplicate beyond the one page a stop can interrupt between handing it on and saving its
        // checkpoint (its alerts keep their ids, so the Elasticsearch sink still writes them once).
        #expect(ids.count - Set(ids).count <= configuration.pageSize)
        let checkpoint = try await stream().savedCheckpoint()
        #expect(checkpoint?.ids.isEmpty == false)
        await store.close()
    }

    @Test func documentsYoungerThanTheLagWaitForTheNextPoll() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let client = ElasticsearchClient(endpoint: try .parse(server.hostPort))
        let now = WallClock.now()
        Self.add(server, from: now - 120_000_000_000, count: 2, offset: 0)  // settled
        Self.add(server, from: now + 3_600_000_000_000, count: 2, offset: 2)  // an hour ahead: inside the lag
        let collected = Collected()
        let stream = ElasticsearchAuditStream(
            client: client, store: store,
            configuration: .init(
                indexPrefix: "kube", start: now - 300_000_000_000, lag: .seconds(30), pollInterval: .milliseconds(20)),
            logger: Logger(label: "test")
        ) { records in collected.records.withLock { $0 += records } }
        let task = Task { try await stream.run() }
        try await Self.eventually { collected.records.withLock { $0.count } >= 2 }
        // Several more polls pass; the young documents stay unread.
        let searches = server.count("search")
        try await Self.eventually { server.count("search") >= searches + 5 }
        task.cancel()
        _ = await task.result
        #expect(collected.records.withLock { $0.count } == 2)
        await store.close()
    }
}
