import AlertSinks
import AuditPipeline
import Basics
import EventModel
import Foundation
import Logging
import OutboundHTTP
import RuleEngine
import Store
import Synchronization
import TestSupport
import Testing

@testable import CollectorApp

#if canImport(Glibc)
    import Glibc
#endif

/// kube-apiserver's own outputs (its audit webhook and its audit log file) → the ingest loop with the shipped
/// audit rules → alerts in the store's outbox, as the collector daemon wires them.
@Suite struct AuditSourcesFlowTests {
    /// Two labelled attacks from the shared k8s-audit dataset (events.ndjson lines 1 and 2, real events from
    /// falcosecurity/falco's trace files), copied here so the test needs nothing outside the repository.
    static let anonymousCreatesNamespace = #"""
        {"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"841d3e6d-90d2-43df-8da4-684738bee3d5","stage":"ResponseComplete","requestURI":"/api/v1/namespaces","verb":"create","user":{"username":"system:anonymous","groups":["system:masters","system:authenticated"]},"sourceIPs":["192.168.99.1"],"objectRef":{"resource":"namespaces","name":"foo","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"foo","creationTimestamp":null},"spec":{},"status":{"phase":"Active"}},"requestReceivedTimestamp":"2018-10-25T13:58:49.730588Z","stageTimestamp":"2018-10-25T13:58:49.736141Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}
        """#
    static let bindingToClusterAdmin = #"""
        {"kind":"Event","apiVersion":"audit.k8s.io/v1","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""},"auditID":"c97244c7-4aec-4714-946a-8204d00ecdca","level":"RequestResponse","objectRef":{"apiGroup":"rbac.authorization.k8s.io","apiVersion":"v1","name":"some-reader-binding","resource":"clusterrolebindings"},"requestObject":{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"annotations":{"rbac.authorization.kubernetes.io/autoupdate":"true"},"creationTimestamp":"2018-10-02T20:09:26Z","labels":{"kubernetes.io/bootstrapping":"rbac-defaults"},"name":"some-reader-binding"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cluster-admin"},"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"minikube"}]},"requestReceivedTimestamp":"2018-10-26T14:26:34.238974Z","requestURI":"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings","responseStatus":{"code":201,"metadata":{}},"sourceIPs":["192.168.99.1"],"stage":"ResponseComplete","stageTimestamp":"2018-10-26T14:26:34.242498Z","user":{"groups":["system:masters","system:authenticated"],"username":"minikube-user"},"verb":"create"}
        """#
    /// A harmless read by a node.
    static let benign = #"""
        {"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"0b1c2d3e-0000-4000-8000-000000000001","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/configmaps/app","verb":"get","user":{"username":"system:node:node-1","groups":["system:nodes","system:authenticated"]},"sourceIPs":["10.0.0.2"],"objectRef":{"resource":"configmaps","namespace":"default","name":"app","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2018-10-26T14:30:00.000000Z","stageTimestamp":"2018-10-26T14:30:00.001000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}
        """#

    static func eventList(_ events: [String]) -> [UInt8] {
        Array(
            #"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[\#(events.joined(separator: ","))]}"#
                .utf8)
    }

    /// The repository's shipped audit rules, exactly as the collector loads them.
    static func auditRules() throws -> RuleSet {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        parts.removeLast(3)
        let directory = parts.joined(separator: "/") + "/rules"
        return try RuleSet.load(files: ["audit-k8scop.yaml", "audit-behaviours.yaml"].map { "\(directory)/\($0)" })
    }

    /// Polls until `condition` holds; the bound only stops a broken test from hanging.
    static func eventually(_ condition: () async throws -> Bool) async throws {
        for _ in 0..<3000 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func webhookPostsRaiseAlertsAndABadBodyLosesNothing() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let logger = Logger(label: "test")
        let ingest = IngestService(store: store, ruleSet: try Self.auditRules(), signal: OutboxSignal(), logger: logger)
        let feed = AuditFeed(ingest: ingest, sourceName: "webhook", timestampField: "stageTimestamp")
        let webhook = try WebhookAuditSource(configuration: .init(listen: "127.0.0.1:0"), logger: logger) { records in
            try await feed.submit(records)
        }
        let client = HTTPClient()
        defer { client.shutdown() }
        let url = "http://\(webhook.boundAddress)/audit"
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await ingest.run() }
            group.addTask { try await webhook.run() }
            defer { group.cancelAll() }

            // A bad batch first: refused with 400, and it must not disturb what follows.
            let bad = try await client.send(
                HTTPRequest(method: .post, url: url, body: Array(#"{"kind":"EventList","items":[{"verb":[]}]}"#.utf8)))
            #expect(bad.status == 400)
            let head = try await store.outboxHead()
            #expect(head == 0)

            let response = try await client.send(
                HTTPRequest(
                    method: .post, url: url, headers: ["Content-Type": "application/json"],
                    body: Self.eventList([Self.benign, Self.anonymousCreatesNamespace, Self.bindingToClusterAdmin])))
            // 200 means committed: the alerts are already in the outbox when the apiserver hears back.
            #expect(response.status == 200)
            let alerts = try await store.outbox(after: 0, limit: 100).map(\.alert)
            let rules = Set(alerts.map(\.ruleID))
            #expect(rules.contains("KA002"), "anonymous request allowed: \(rules)")
            #expect(rules.contains("KA030"), "binding to cluster-admin: \(rules)")
            webhook.close()
        }
        await store.close()
    }

    @Test func auditLogLinesRaiseAlerts() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let logger = Logger(label: "test")
        let ingest = IngestService(store: store, ruleSet: try Self.auditRules(), signal: OutboxSignal(), logger: logger)
        let path = directory.file("audit.log")
        try ([Self.benign, Self.bindingToClusterAdmin, "not json"].joined(separator: "\n") + "\n")
            .write(toFile: path, atomically: false, encoding: .utf8)
        let feed = AuditFeed(ingest: ingest, sourceName: "file:\(path)", timestampField: "stageTimestamp")
        let source = FileAuditSource(
            store: store, configuration: .init(path: path, startAt: .beginning, pollInterval: .milliseconds(10)),
            logger: logger
        ) { records in try await feed.submit(records) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await ingest.run() }
            group.addTask { try await source.run() }
            defer { group.cancelAll() }
            try await Self.eventually { source.statistics.documents >= 2 && source.statistics.malformed >= 1 }
            let alerts = try await store.outbox(after: 0, limit: 100).map(\.alert)
            #expect(alerts.map(\.ruleID).contains("KA030"))
            #expect(source.statistics.malformed == 1)
        }
        await store.close()
    }

    @Test func daemonConfigurationReadsFileAndWebhookSources() throws {
        let config = try CollectorConfiguration.parse(
            yaml: """
                audit:
                  file:
                    path: /var/log/kubernetes/audit/audit.log
                    startAt: beginning
                  webhook:
                    listen: 0.0.0.0:8443
                    tlsCertFile: /etc/patrol/webhook.pem
                    tlsKeyFile: /etc/patrol/webhook.key
                    clientCAFile: /etc/kubernetes/pki/ca.crt
                    maxBodyBytes: 1048576
                """, source: "test.yaml")
        #expect(config.auditFile == .init(path: "/var/log/kubernetes/audit/audit.log", startAt: "beginning"))
        #expect(config.auditWebhook?.listen == "0.0.0.0:8443")
        #expect(config.auditWebhook?.path == "/audit")
        #expect(config.auditWebhook?.clientCAFile == "/etc/kubernetes/pki/ca.crt")
        #expect(config.auditWebhook?.maxBodyBytes == 1_048_576)
        #expect(config.audit == nil)

        #expect(throws: BasicsError.self) {
            try CollectorConfiguration.parse(
                yaml: "audit:\n  file:\n    path: /a\n    startAt: middle\n", source: "t.yaml")
        }
        #expect(throws: BasicsError.self) {
            try CollectorConfiguration.parse(
                yaml: "audit:\n  webhook:\n    listen: 0.0.0.0:8443\n    tlsCertFile: /a.pem\n", source: "t.yaml")
        }
    }

    @Test func progressLineShowsDocumentsIndexAlertsAndRate() {
        let line = TerminalProgress.line(
            .init(documents: 1200, index: "logstash-2024.03.01", alerts: 7), elapsed: .seconds(4))
        #expect(line == "read 1200 documents · logstash-2024.03.01 · 7 alerts · 300 docs/s · 4 s")
        // Drawn in place, and cleared before the summary.
        let written = WrittenText()
        let progress = TerminalProgress(maxUpdatesPerSecond: 4) { written.append($0) }
        #expect(progress.add(documents: 10))
        progress.draw(index: "logstash-2024.03.01", alerts: 1)
        // A log line first erases the progress line; the next page draws it again at once.
        progress.clear()
        #expect(written.text.components(separatedBy: "\r\u{1B}[K").count - 1 == 2)
        #expect(written.text.hasSuffix("\r\u{1B}[K"))
        #expect(progress.add(documents: 5))
        progress.draw(index: "logstash-2024.03.01", alerts: 2)
        #expect(written.text.contains("read 15 documents"))
        progress.finish()
        let text = written.text
        #expect(text.hasPrefix("\r\u{1B}[Kread 10 documents · logstash-2024.03.01 · 1 alerts"))
        #expect(text.hasSuffix("\r\u{1B}[K"))
    }

    final class WrittenText: Sendable {
        private let value = Mutex("")
        func append(_ text: String) { value.withLock { $0 += text } }
        var text: String { value.withLock { $0 } }
    }
}

// glibc declares the pty calls only under feature macros the Glibc module map does not set; their C ABI is
// plain ints and pointers, so they are bound by symbol name here.
@_silgen_name("posix_openpt") private func c_posix_openpt(_ flags: Int32) -> Int32
@_silgen_name("grantpt") private func c_grantpt(_ fd: Int32) -> Int32
@_silgen_name("unlockpt") private func c_unlockpt(_ fd: Int32) -> Int32
@_silgen_name("ptsname_r") private func c_ptsname_r(_ fd: Int32, _ buffer: UnsafeMutablePointer<CChar>, _ size: Int)
    -> Int32

/// `audit -A static` progress: drawn on a real terminal (a pty), never on a pipe, and fed by the static run.
@Suite struct StaticProgressTests {
    /// A pseudo-terminal: (controller, terminal) descriptors.
    static func openPTY() throws -> (Int32, Int32) {
        let controller = c_posix_openpt(O_RDWR | O_NOCTTY)
        var name = [CChar](repeating: 0, count: 128)
        guard controller >= 0, c_grantpt(controller) == 0, c_unlockpt(controller) == 0,
            c_ptsname_r(controller, &name, name.count) == 0
        else { throw POSIXError(.ENOTTY) }
        let path = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let terminal = open(path, O_RDWR | O_NOCTTY)
        guard terminal >= 0 else { throw POSIXError(.ENOTTY) }
        return (controller, terminal)
    }

    /// Everything written to the terminal so far.
    static func drain(_ controller: Int32) -> String {
        _ = fcntl(controller, F_SETFL, fcntl(controller, F_GETFL) | O_NONBLOCK)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(controller, &chunk, chunk.count)
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func progressOnlyOnATerminal() throws {
        var pipeEnds: [Int32] = [0, 0]
        #expect(pipe(&pipeEnds) == 0)
        defer {
            close(pipeEnds[0])
            close(pipeEnds[1])
        }
        #expect(TerminalProgress.onTerminal(descriptor: pipeEnds[1]) == nil)
        let (controller, terminal) = try Self.openPTY()
        defer {
            close(controller)
            close(terminal)
        }
        #expect(TerminalProgress.onTerminal(descriptor: terminal) != nil)
    }

    @Test func aStaticRunDrawsItsProgressInPlace() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try """
        - rule:
            id: P1
            name: Secrets read
            severity: high
            events: [audit]
            condition: 'ka.uri startswith /api/v1/secrets'
            output: "secret read"
        """.write(toFile: directory.file("audit.yaml"), atomically: true, encoding: .utf8)
        // Two days, 12 documents each, every third one an alerting secrets read.
        for n in 0..<24 {
            let day = n < 12 ? "01" : "02"
            server.add(
                .object([
                    "@timestamp": .string("2024-03-\(day)T10:00:\(n < 10 ? "0" : "")\(n).000Z"), "verb": .string("get"),
                    "requestURI": .string(n % 3 == 0 ? "/api/v1/secrets" : "/api/v1/pods"),
                    "auditID": .string("p-\(n)"),
                ]), index: "logstash-2024.03.\(day)", id: "d\(n)")
        }
        let (controller, terminal) = try Self.openPTY()
        defer {
            close(controller)
            close(terminal)
        }
        // Every page may redraw here (the real command allows 4 a second).
        let progress = try #require(TerminalProgress.onTerminal(descriptor: terminal, maxUpdatesPerSecond: 100_000))
        let start: UInt64 = 1_709_251_200 * 1_000_000_000
        let summary = try await AuditCommand.runStatic(
            endpoint: try .parse(server.hostPort), logIndexPrefix: "logstash", alertIndexPrefix: "alerts", start: start,
            end: start + 2 * 86_400 * 1_000_000_000, timestampField: "@timestamp",
            rulePaths: [directory.file("audit.yaml")], storePath: directory.file("patrol.db"),
            logger: Logger(label: "test"), sourceTuning: { $0.pageSize = 5 }, progress: progress)
        let shown = Self.drain(controller)
        #expect(summary.source.documents == 24)
        #expect(summary.alertsByRule["P1 Secrets read"] == 8)
        #expect(shown.contains("\r\u{1B}[Kread 5 documents · logstash-2024.03.01 · 2 alerts"))
        #expect(shown.contains("logstash-2024.03.02"))
        #expect(shown.contains("read 24 documents · logstash-2024.03.02 · 8 alerts"))
        // Cleared at the end, so the summary (on stdout) starts on a clean line.
        #expect(shown.hasSuffix("\r\u{1B}[K"))
        #expect(summary.text.hasPrefix("read 24 documents (0 malformed, skipped) from 2 days (0 missing)"))
    }
}
