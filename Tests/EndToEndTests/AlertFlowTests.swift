import Foundation
import Testing
import TestSupport

/// Alerts from replayed events reach stdout and CSV, and SIGTERM flushes every accepted alert first.
@Suite struct AlertFlowTests {
    @Test(.timeLimit(.minutes(3))) func gracefulShutdownFlushesEveryAcceptedAlert() async throws {
        let harness = try Harness("flow")
        defer { harness.directory.remove() }
        let csv = harness.directory.file("alerts.csv")
        // The example capture raises three alerts; 300 copies of it raise 900.
        let collector = try harness.collector(["--stdout", "--csv", csv])
        let sensor = try harness.sensor(replay: Harness.repositoryPath("docs/examples/capture.jsonl"), repeatCount: 300)
        #expect(await sensor.waitForExit(timeout: .seconds(120)) == 0, "sensor log:\n\(sensor.standardError.suffix(2000))")
        // Stop at once: the sinks may not have caught up yet, and must drain before the process exits.
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(60)) == 0, "collector log:\n\(collector.standardError.suffix(2000))")

        let lines = collector.standardOutput.split(separator: "\n")
        #expect(lines.count == 900)
        let rules = lines.compactMap { line -> String? in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["rule_id"] as? String
        }
        #expect(Dictionary(grouping: rules, by: { $0 }).mapValues(\.count) == ["R1000": 300, "R1007": 300, "R1002": 300])

        let rows = try String(contentsOfFile: csv, encoding: .utf8).components(separatedBy: "\r\n").filter { !$0.isEmpty }
        #expect(rows.first?.hasPrefix("timestamp,rule_id,rule_name,severity,message,fix") == true)
        // Rows whose fix text spans lines are quoted, so count records by their first column instead.
        #expect(rows.filter { $0.hasPrefix("2024-11-26T") }.count == 900)
        #expect(try await harness.counters()["alerts_raised"] == 900)
    }
}
