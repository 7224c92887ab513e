import AlertSinks
import EventModel
import Foundation
import Logging
import RuleEngine
import Store
import TestSupport
import Testing

@testable import CollectorApp

/// Alert de-duplication through the collector's ingest path: events in → rules → cooldown → outbox.
@Suite struct AlertCooldownTests {
    static let rules = """
        - rule:
            id: C1
            name: Shell in container
            severity: medium
            events: [exec]
            condition: 'proc.exe = /bin/sh'
            output: "shell %proc.exe"
            dedup: {window: 60s, key: [exe]}
        - rule:
            id: C2
            name: Curl in container
            severity: low
            events: [exec]
            condition: 'proc.exe = /usr/bin/curl'
            output: "curl %proc.exe"
        """

    static let start: UInt64 = 1_764_000_000_000_000_000
    static let second: UInt64 = 1_000_000_000

    static func exec(_ path: String, at offset: UInt64, pod: String = "web-1") -> Event {
        Event(
            time: start + offset, node: "node-1",
            process: ProcessInfo(pid: 7, ppid: 1, tid: 7, uid: 0, gid: 0, comm: "sh", exe: path, cwd: "/"),
            container: ContainerRef(
                runtime: "runc", containerID: "c-\(pod)", podUID: "u-\(pod)", podName: pod, namespace: "default",
                containerName: "app", image: "busybox"),
            payload: .exec(Exec(path: path)))
    }

    /// Runs the ingest loop over `batches` (one per element), stops it gracefully, returns the outbox.
    static func ingest(_ batches: [[Event]], defaultPolicy: AlertCooldown.Policy = .off) async throws -> [Alert] {
        let directory = try TemporaryDirectory(prefix: "cooldown")
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let ruleSet = try RuleSet.load(yaml: rules, fileName: "cooldown.yaml")
        let ingest = IngestService(
            store: store, ruleSet: ruleSet, signal: OutboxSignal(), cooldownDefault: defaultPolicy,
            logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await ingest.run() }
            for (index, events) in batches.enumerated() {
                let result = await ingest.submit(
                    EventBatch(sensorID: "s1", bootID: "b1", sequence: UInt64(index + 1), events: events))
                guard case .success = result else {
                    Issue.record("batch \(index + 1) refused: \(result)")
                    break
                }
            }
            group.cancelAll()
        }
        let alerts = try await store.outbox(after: 0, limit: 1000).map(\.alert)
        await store.close()
        return alerts
    }

    @Test func repeatsInsideTheWindowBecomeOneSummaryWithCountAndTimes() async throws {
        let alerts = try await Self.ingest([
            [Self.exec("/bin/sh", at: 0), Self.exec("/bin/sh", at: 1 * Self.second)],
            [Self.exec("/bin/sh", at: 2 * Self.second), Self.exec("/usr/bin/curl", at: 3 * Self.second)],
            [Self.exec("/usr/bin/curl", at: 4 * Self.second)],
            // Past the 60 s window: closes it (summary) and opens a new one (a first alert again).
            [Self.exec("/bin/sh", at: 70 * Self.second)],
        ])
        let shells = alerts.filter { $0.ruleID == "C1" }
        #expect(shells.count == 3)
        #expect(shells[0].count == 1 && shells[0].firstSeen == nil)
        #expect(shells[0].time == Self.start)
        let summary = shells[1]
        #expect(summary.count == 3)
        #expect(summary.firstSeen == Self.start)
        #expect(summary.lastSeen == Self.start + 2 * Self.second)
        #expect(summary.id == shells[0].id + "-summary")
        #expect(shells[2].time == Self.start + 70 * Self.second && shells[2].count == 1)
        // C2 has no dedup and there is no collector default: every occurrence is its own alert.
        #expect(alerts.filter { $0.ruleID == "C2" }.count == 2)
    }

    @Test func differentWorkloadsAndKeysAreSeparateAndShutdownFlushesOpenWindows() async throws {
        let alerts = try await Self.ingest(
            [
                [Self.exec("/bin/sh", at: 0, pod: "web-1"), Self.exec("/bin/sh", at: 1, pod: "db-1")],
                [
                    Self.exec("/bin/sh", at: 2, pod: "web-1"), Self.exec("/usr/bin/curl", at: 3),
                    Self.exec("/usr/bin/curl", at: 4),
                ],
            ],
            defaultPolicy: AlertCooldown.Policy(windowNanoseconds: 30 * Self.second))
        // web-1 and db-1 are different workloads: two firsts. web-1 repeated: its summary comes at shutdown.
        let shells = alerts.filter { $0.ruleID == "C1" }
        #expect(shells.count == 3)
        #expect(Set(shells.prefix(2).compactMap { $0.container?.podName }) == ["web-1", "db-1"])
        #expect(shells.last?.count == 2 && shells.last?.container?.podName == "web-1")
        // C2 now falls under the collector default: one first, one summary of 2.
        let curls = alerts.filter { $0.ruleID == "C2" }
        #expect(curls.map(\.count) == [1, 2])
        #expect(curls.last?.firstSeen == Self.start + 3 && curls.last?.lastSeen == Self.start + 4)
    }

    /// With no later event and no shutdown, the wall clock still closes a window: the summary reaches the outbox
    /// while the collector keeps running (the ingest loop checks every second).
    @Test func theWallClockClosesAWindowWhenTheEventsStop() async throws {
        let directory = try TemporaryDirectory(prefix: "cooldown")
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let ingest = IngestService(
            store: store, ruleSet: try RuleSet.load(yaml: Self.rules, fileName: "cooldown.yaml"), signal: OutboxSignal(),
            cooldownDefault: AlertCooldown.Policy(windowNanoseconds: Self.second), logger: Logger(label: "test"))
        var outbox: [Alert] = []
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await ingest.run() }
            let events = (0..<3).map { Self.exec("/usr/bin/curl", at: UInt64($0) * 1_000_000) }
            _ = await ingest.submit(EventBatch(sensorID: "s1", bootID: "b1", sequence: 1, events: events))
            _ = await PatrolProcess.eventually(timeout: .seconds(20)) {
                outbox = (try? await store.outbox(after: 0, limit: 10).map(\.alert)) ?? []
                return outbox.count >= 2
            }
            group.cancelAll()
        }
        await store.close()
        #expect(outbox.map(\.count) == [1, 3])
        #expect(outbox.last?.lastSeen == Self.start + 2_000_000)
    }

    @Test func summariesCarryCountAndTimesInEverySinkFormat() {
        var alert = AlertFixtures.alert()
        alert.count = 5
        alert.firstSeen = alert.time - 10 * Self.second
        alert.lastSeen = alert.time
        let json = AlertDocument.json(alert)
        #expect(json.contains("\"count\":5"))
        #expect(json.contains("\"first_seen\":\"\((alert.time - 10 * Self.second).iso8601)\""))
        let syslog = String(decoding: SyslogFormat().message(alert), as: UTF8.self)
        #expect(syslog.contains("count=\"5\" first_seen=\"\((alert.time - 10 * Self.second).iso8601)\""))
        let row = CSVSink.row(alert)
        #expect(row.contains(",5,\((alert.time - 10 * Self.second).iso8601),\(alert.time.iso8601),"))
    }

    @Test func ruleFilesValidateDedup() throws {
        let bad = """
            - rule:
                id: X
                name: x
                severity: low
                events: [exec]
                condition: 'proc.exe = /bin/sh'
                output: x
                dedup: {windw: 60s}
            """
        #expect(throws: RuleEngineError.self) { _ = try RuleSet.load(yaml: bad, fileName: "bad.yaml") }
        let ruleSet = try RuleSet.load(yaml: Self.rules, fileName: "ok.yaml")
        let dedup = ruleSet.rules.first { $0.id == "C1" }?.dedup
        #expect(dedup == RuleDedup(windowNanoseconds: 60 * Self.second, key: ["exe"]))
    }

    @Test func collectorConfigurationReadsTheDefault() throws {
        let config = try CollectorConfiguration.parse(yaml: "dedup: {window: 5m, key: [exe, path]}", source: "t.yaml")
        #expect(config.dedup == AlertCooldown.Policy(windowNanoseconds: 300 * Self.second, key: ["exe", "path"]))
        #expect(throws: (any Error).self) {
            _ = try CollectorConfiguration.parse(yaml: "dedup: {window: soon}", source: "t")
        }
    }
}
