import AlertSinks
import ArgumentParser
import AuditPipeline
import Basics
import Elasticsearch
import EventModel
import Foundation
import Logging
import TestSupport
import Testing

@testable import CollectorApp

@Suite struct AuditCommandTests {
    @Test func k8sCopCommandLineParses() throws {
        // As it is run: `patrol-collector audit ...` (the audit command reads some options from its parent).
        let command = try #require(
            try CollectorCommand.parseAsRoot([
                "audit", "-E", "10.0.0.5:9200", "-I", "logstash", "-i", "alerts", "-s", "2019-2-1-0-0-0", "-e",
                "2019-2-3-0-0-0", "-A", "static", "-d", "5",
            ]) as? AuditCommand)
        #expect(command.elastic == "10.0.0.5:9200")
        #expect(command.pages == "logstash")
        #expect(command.fetchDelay == 5)
        #expect(try AuditCommand.parseTime(command.start) == 1_548_979_200 * 1_000_000_000)
        #expect(throws: (any Error).self) {
            try CollectorCommand.parseAsRoot(["audit", "-E", "x", "-I", "l", "-s", "2019-2-1-0-0-0", "-A", "batch"])
        }
        // The collector's own flags still work without the subcommand.
        #expect(throws: Never.self) { _ = try CollectorCommand.parseAsRoot(["--no-stdout"]) }
        let parsed = try CollectorCommand.parseAsRoot(["audit", "-E", "h:1", "-I", "l", "-s", "2019-2-1-0-0-0"])
        #expect(parsed is AuditCommand)
        #expect((parsed as? AuditCommand)?.rulePaths == ["rules"])
        #expect((parsed as? AuditCommand)?.storePath == "patrol.db")
    }

    @Test func rulesStoreAndLogLevelAfterTheSubcommandAreUsed() throws {
        // The collector declares these options too; they must still reach the audit run.
        let parsed = try CollectorCommand.parseAsRoot([
            "audit", "-E", "h:1", "-I", "l", "-s", "2019-2-1-0-0-0", "--rules", "a.yaml", "--rules", "b.yaml",
            "--store", "/tmp/s.db", "--log-level", "debug",
        ])
        let command = try #require(parsed as? AuditCommand)
        #expect(command.rulePaths == ["a.yaml", "b.yaml"])
        #expect(command.storePath == "/tmp/s.db")
        #expect(command.level == .debug)
    }

    @Test func timesInBothForms() throws {
        let day: UInt64 = 1_548_979_200 * 1_000_000_000  // 2019-02-01T00:00:00Z
        #expect(try AuditCommand.parseTime("2019-2-1-0-0-0") == day)
        #expect(try AuditCommand.parseTime("2019-02-01") == day)
        #expect(try AuditCommand.parseTime("2019-02-01T00:00:00Z") == day)
        #expect(try AuditCommand.parseTime("2019-02-01T01:00:00+01:00") == day)
        #expect(try AuditCommand.parseTime("2019-2-1-23-59-59") == day + 86_399 * 1_000_000_000)
        #expect(throws: (any Error).self) { try AuditCommand.parseTime("2019-13-1-0-0-0") }
        #expect(throws: (any Error).self) { try AuditCommand.parseTime("2019-02-01T00:00:00") }
        #expect(throws: (any Error).self) { try AuditCommand.parseTime("yesterday") }
    }

    @Test func staticRunThroughFaultsWritesEveryAlertOnce() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try """
        - rule:
            id: A2
            name: Pod exec
            severity: high
            events: [audit]
            condition: 'ka.uri contains /exec?'
            output: "exec into %ka.target.name"
        """.write(toFile: directory.file("audit.yaml"), atomically: true, encoding: .utf8)
        // 40 exec events over two days, one every 72 minutes, the first exactly at the range start.
        let start: UInt64 = 1_709_251_200 * 1_000_000_000
        for n in 0..<40 {
            let time = start + UInt64(n) * 72 * 60 * 1_000_000_000
            let seconds = time / 1_000_000_000
            var parts = tm()
            var t = time_t(seconds)
            gmtime_r(&t, &parts)
            let day = String(format: "%04d.%02d.%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday)
            let iso = String(
                format: "%04d-%02d-%02dT%02d:%02d:%02d.000Z", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                parts.tm_hour, parts.tm_min, parts.tm_sec)
            server.add(
                .object([
                    "@timestamp": .string(iso), "verb": .string("create"), "auditID": .string("audit-\(n)"),
                    "requestURI": .string("/api/v1/namespaces/shop/pods/web-\(n)/exec?command=sh&container=app"),
                    "objectRef": .object(["name": .string("web-\(n)"), "namespace": .string("shop")]),
                ]), index: "logstash-\(day)", id: "doc-\(n)")
        }
        server.inject(.status(429), count: 2, pathContains: "_search")
        server.inject(.drop, count: 2, pathContains: "_search")
        server.inject(.status(503, plainStringError: true), pathContains: "_bulk")
        server.rejectBulkItems(5)
        let fast = ElasticsearchSink.Configuration(
            indexPrefix: "alerts", maxAttempts: 6, initialBackoff: .milliseconds(2), maxBackoff: .milliseconds(10))
        let summary = try await AuditCommand.runStatic(
            endpoint: try .parse(server.hostPort), logIndexPrefix: "logstash", alertIndexPrefix: "alerts", start: start,
            end: start + 2 * 86_400 * 1_000_000_000, timestampField: "@timestamp",
            rulePaths: [directory.file("audit.yaml")], storePath: directory.file("patrol.db"),
            logger: Logger(label: "test"), sinkConfiguration: fast
        ) { configuration in
            configuration.pageSize = 7
            configuration.initialBackoff = .milliseconds(2)
            configuration.maxBackoff = .milliseconds(10)
        }
        #expect(summary.source.documents == 40)
        #expect(summary.alertsByRule["A2 Pod exec"] == 40)
        let written = server.allDocuments.filter { $0.index.hasPrefix("alerts-") }
        #expect(written.count == 40)
        #expect(Set(written.compactMap { $0.source["message"]?.stringValue }).count == 40)
        #expect(summary.text.contains("read 40 documents"))
    }
}

@Suite struct AuditStreamingCommandTests {
    @Test func streamingKilledAndRestartedWritesEachAlertOnce() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try """
        - rule:
            id: A3
            name: Secret read
            severity: medium
            events: [audit]
            condition: 'ka.verb = get and ka.uri startswith /api/v1/namespaces/default/secrets/'
            output: "secret %ka.uri read"
        """.write(toFile: directory.file("audit.yaml"), atomically: true, encoding: .utf8)
        func add(_ range: Range<Int>, around base: UInt64) {
            for n in range {
                let time = base + UInt64(n) * 5_000_000
                let iso = String(time.iso8601.dropLast(4)) + "Z"
                let day = iso.prefix(10).replacingOccurrences(of: "-", with: ".")
                server.add(
                    .object([
                        "@timestamp": .string(iso), "verb": .string("get"), "auditID": .string("a\(n)"),
                        "requestURI": .string("/api/v1/namespaces/default/secrets/s\(n)"),
                    ]), index: "logstash-\(day)", id: "doc-\(n)")
            }
        }
        let base = WallClock.now() - 120_000_000_000
        add(0..<30, around: base)
        let fast = ElasticsearchSink.Configuration(
            indexPrefix: "alerts", maxAttempts: 6, initialBackoff: .milliseconds(2), maxBackoff: .milliseconds(10))
        let run: @Sendable () async throws -> Void = {
            try await AuditCommand.runStreaming(
                endpoint: try .parse(server.hostPort), logIndexPrefix: "logstash", alertIndexPrefix: "alerts",
                start: base - 1_000_000_000, lag: .seconds(5), timestampField: "@timestamp",
                rulePaths: [directory.file("audit.yaml")], storePath: directory.file("patrol.db"),
                logger: Logger(label: "test"), sinkConfiguration: fast, pollInterval: .milliseconds(20), pageSize: 4,
                handleSignals: false)
        }
        func alertsWritten() -> [ElasticsearchTestServer.Document] {
            server.allDocuments.filter { $0.index.hasPrefix("alerts-") }
        }
        func eventually(_ condition: () -> Bool) async throws {
            for _ in 0..<2000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        }

        let first = Task { try await run() }
        try await eventually { alertsWritten().count >= 8 }
        first.cancel()
        _ = await first.result
        // Documents keep arriving while it is down; the server rejects some writes when it is back.
        add(30..<50, around: base)
        server.rejectBulkItems(3)
        server.inject(.status(503), pathContains: "_search")
        let second = Task { try await run() }
        try await eventually { alertsWritten().count >= 50 }
        // Let a few more polls pass to show nothing more is written.
        let searches = server.count("search")
        try await eventually { server.count("search") >= searches + 5 }
        second.cancel()
        _ = await second.result

        let written = alertsWritten()
        #expect(written.count == 50)
        #expect(Set(written.compactMap { $0.source["message"]?.stringValue }).count == 50)
    }
}
