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
}
