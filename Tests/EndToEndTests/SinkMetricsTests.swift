import Foundation
import TestSupport
import Testing

/// Acceptance 4 with a real syslog server: the collector binary sends replayed alerts to CSV and to rsyslog
/// over TCP; both `/metrics` endpoints (collector and sensor) pass `promtool check metrics`, and the counters
/// move by exactly the number of alerts: raised per rule and severity, sent per sink.
@Suite(.serialized) struct SinkMetricsTests {
    let status = StatusEndpointTests()

    @Test(.timeLimit(.minutes(4))) func alertsToCSVAndSyslogMoveTheSinkCounters() async throws {
        guard RsyslogServer.isAvailable else {
            print("skipping alertsToCSVAndSyslogMoveTheSinkCounters: \(RsyslogServer.binary) is not installed")
            return
        }
        let rsyslog = try await offPool { try RsyslogServer() }
        defer { rsyslog.stop() }
        let harness = try Harness("sink-metrics")
        defer { harness.directory.remove() }
        let csv = harness.directory.file("alerts.csv")
        let config = harness.directory.file("collector.yaml")
        try """
        sinks:
          stdout: false
          csv: {path: \(csv)}
          syslog: {address: "127.0.0.1:\(rsyslog.tcpPort)", protocol: tcp, facility: local3}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let (collectorPort, sensorPort) = (Ports.freeTCPPort(), Ports.freeTCPPort())
        let collectorBase = "http://127.0.0.1:\(collectorPort)"
        let sensorBase = "http://127.0.0.1:\(sensorPort)"
        let collector = try harness.collector(["--config", config, "--metrics-listen", "127.0.0.1:\(collectorPort)"])
        defer { collector.signal(SIGKILL) }
        #expect(
            await PatrolProcess.eventually(timeout: .seconds(60)) {
                await status.status(collectorBase + "/readyz") == 200
            },
            "collector log:\n\(collector.standardError.suffix(2000))")

        // The example capture raises three alerts (R1000, R1002, R1007); 10 copies raise 30. The sensor stays up
        // after the replay (no --exit-when-done) so its own /metrics can be scraped too.
        let sensor = try PatrolProcess(
            "patrol-sensor",
            [
                "--collector", harness.address, "--replay", Harness.repositoryPath("docs/examples/capture.jsonl"),
                "--repeat", "10", "--sensor-id", "metrics-a", "--spool-dir", harness.directory.file("spool"),
                "--metrics-listen", "127.0.0.1:\(sensorPort)", "--status-interval", "1",
            ],
            logDirectory: harness.directory.path, name: "metrics-a")
        defer { sensor.signal(SIGKILL) }

        func sent(_ sink: String, _ metrics: [StatusEndpointTests.Sample]) -> Double? {
            metrics.first { $0.name == "patrol_sink_alerts_sent_total" && $0.labels == ["sink": sink] }?.value
        }
        var metrics: [StatusEndpointTests.Sample] = []
        let delivered = await PatrolProcess.eventually(timeout: .seconds(90)) {
            metrics = (try? await status.scrape(collectorBase + "/metrics")) ?? []
            return sent("csv", metrics) == 30 && sent("syslog", metrics) == 30
        }
        let progress =
            "csv \(String(describing: sent("csv", metrics))), syslog \(String(describing: sent("syslog", metrics)))"
        #expect(delivered, "sent: \(progress); collector log:\n\(collector.standardError.suffix(2000))")

        // REFERENCE §8's series, with their labels.
        let alerts = metrics.filter { $0.name == "patrol_alerts_total" }
        #expect(alerts.map(\.value).reduce(0, +) == 30)
        #expect(Set(alerts.compactMap { $0.labels["rule_id"] }) == ["R1000", "R1002", "R1007"])
        #expect(alerts.allSatisfy { $0.labels["severity"] != nil && $0.value == 10 })
        for sink in ["csv", "syslog"] {
            #expect(metrics.contains { $0.name == "patrol_sink_failures_total" && $0.labels == ["sink": sink] })
        }
        #expect(metrics.contains { $0.name == "patrol_events_total" && $0.labels["sensor"] == "metrics-a" })
        #expect(metrics.contains { $0.name == "patrol_sensor_last_seen_seconds" && $0.labels["sensor"] == "metrics-a" })
        try status.checkWithPromtool(metrics: try await status.body(collectorBase + "/metrics"))

        // The same 30 alerts reached rsyslog, local3 (19) with each rule's severity, MSGID the rule id.
        let records = await rsyslog.waitForRecords(30)
        #expect(records.count == 30)
        #expect(
            Dictionary(grouping: records, by: \.msgID).mapValues(\.count) == ["R1000": 10, "R1002": 10, "R1007": 10])
        #expect(records.allSatisfy { (Int($0.pri) ?? 0) / 8 == 19 && $0.appName == "patrol" })

        let sensorMetrics = try await status.scrape(sensorBase + "/metrics")
        #expect(
            sensorMetrics.contains {
                $0.name == "patrol_sensor_events_acked_total" && $0.labels["sensor"] == "metrics-a"
            })
        try status.checkWithPromtool(metrics: try await status.body(sensorBase + "/metrics"))

        sensor.signal(SIGTERM)
        #expect(await sensor.waitForExit(timeout: .seconds(60)) == 0)
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(60)) == 0)
    }

    /// A syslog server that is down delays only the syslog sink: its backlog and failures show on /metrics while
    /// CSV keeps up, and once rsyslog listens on the configured port every held alert arrives.
    @Test(.timeLimit(.minutes(4))) func aSyslogOutageShowsAsBacklogAndDrainsWhenTheServerComes() async throws {
        guard RsyslogServer.isAvailable else {
            print("skipping aSyslogOutageShowsAsBacklogAndDrainsWhenTheServerComes: rsyslogd is not installed")
            return
        }
        let harness = try Harness("sink-backlog")
        defer { harness.directory.remove() }
        let ports = (udp: Ports.freeTCPPort(), tcp: Ports.freeTCPPort(), tls: Ports.freeTCPPort())
        let config = harness.directory.file("collector.yaml")
        try """
        sinks:
          stdout: false
          csv: {path: \(harness.directory.file("alerts.csv"))}
          syslog: {address: "127.0.0.1:\(ports.tcp)", protocol: tcp}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let port = Ports.freeTCPPort()
        let base = "http://127.0.0.1:\(port)"
        let collector = try harness.collector(["--config", config, "--metrics-listen", "127.0.0.1:\(port)"])
        defer { collector.signal(SIGKILL) }
        let sensor = try harness.sensor(replay: Harness.repositoryPath("docs/examples/capture.jsonl"), repeatCount: 10)
        #expect(await sensor.waitForExit(timeout: .seconds(120)) == 0, "sensor log:\n\(sensor.standardError.suffix(2000))")

        func value(_ name: String, _ labels: [String: String], _ metrics: [StatusEndpointTests.Sample]) -> Double? {
            metrics.first { $0.name == name && $0.labels == labels }?.value
        }
        var metrics: [StatusEndpointTests.Sample] = []
        // The delivery loops set the backlog after each batch, the outbox depth comes from the store every 5 s:
        // both are waited for.
        let held = await PatrolProcess.eventually(timeout: .seconds(60)) {
            metrics = (try? await status.scrape(base + "/metrics")) ?? []
            return value("patrol_sink_backlog", ["sink": "syslog"], metrics) == 30
                && value("patrol_sink_backlog", ["sink": "csv"], metrics) == 0
                && value("patrol_outbox_depth", [:], metrics) == 30
        }
        #expect(held, "metrics: \(metrics.filter { $0.name.hasPrefix("patrol_sink") || $0.name.hasPrefix("patrol_outbox") })")
        #expect(value("patrol_outbox_depth", [:], metrics) == 30)
        #expect((value("patrol_sink_failures_total", ["sink": "syslog"], metrics) ?? 0) > 0)
        #expect(value("patrol_sink_alerts_sent_total", ["sink": "csv"], metrics) == 30)

        let rsyslog = try await offPool { try RsyslogServer(ports: ports) }
        defer { rsyslog.stop() }
        // The sink retries with backoff (at most 30 s apart), so this can take a while.
        let drained = await PatrolProcess.eventually(timeout: .seconds(90)) {
            metrics = (try? await status.scrape(base + "/metrics")) ?? []
            return value("patrol_sink_backlog", ["sink": "syslog"], metrics) == 0
                && value("patrol_outbox_depth", [:], metrics) == 0
        }
        #expect(drained, "collector log:\n\(collector.standardError.suffix(2000))")
        #expect(value("patrol_outbox_depth", [:], metrics) == 0)
        #expect(value("patrol_sink_alerts_sent_total", ["sink": "syslog"], metrics) == 30)
        #expect(await rsyslog.waitForRecords(30).count == 30)
        try status.checkWithPromtool(metrics: try await status.body(base + "/metrics"))
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(60)) == 0)
    }
}
