import AlertSinks
import ArgumentParser
import AuditPipeline
import Elasticsearch
import EventModel
import Foundation
import Logging
import Testing
import TestSupport

@testable import CollectorApp

@Suite struct AuditCommandTests {
    @Test func k8sCopCommandLineParses() throws {
        let command = try AuditCommand.parse([
            "-E", "10.0.0.5:9200", "-I", "logstash", "-i", "alerts", "-s", "2019-2-1-0-0-0", "-e", "2019-2-3-0-0-0",
            "-A", "static", "-d", "5",
        ])
        #expect(command.elastic == "10.0.0.5:9200")
        #expect(command.pages == "logstash")
        #expect(command.fetchDelay == 5)
        #expect(try AuditCommand.parseTime(command.start) == 1_548_979_200 * 1_000_000_000)
        #expect(throws: (any Error).self) { try AuditCommand.parse(["-E", "x", "-I", "l", "-s", "2019-2-1-0-0-0", "-A", "batch"]) }
        // The collector's own flags still work without the subcommand.
        #expect(throws: Never.self) { _ = try CollectorCommand.parseAsRoot(["--no-stdout"]) }
        let parsed = try CollectorCommand.parseAsRoot(["audit", "-E", "h:1", "-I", "l", "-s", "2019-2-1-0-0-0"])
        #expect(parsed is AuditCommand)
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
