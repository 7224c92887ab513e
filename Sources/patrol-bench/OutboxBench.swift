import AlertSinks
import ArgumentParser
import Basics
import Elasticsearch
import EventModel
import Foundation
import Logging
import Store
import TestSupport

/// The alert outbox on disk: what committing alerts costs the ingest path (per alert, p50/p99), and how
/// many alerts per second an outbox delivery moves to a CSV file and to the Elasticsearch test server.
struct OutboxBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Outbox write latency per alert and alerts/s through the on-disk outbox to CSV and Elasticsearch.")

    @Option(help: "Alerts committed and delivered per sink.")
    var alerts = 200_000

    @Option(help: "Alerts per commit (one ingest batch's alerts share one transaction).")
    var commitSize = 100

    @Option(help: "Single-alert commits timed as the worst case (one alert per transaction).")
    var singleCommits = 5_000

    @Option(help: "Outbox delivery batch size.")
    var batchSize = 1_000

    @Option(help: "Sinks to measure: csv, elasticsearch (repeatable).")
    var sink: [String] = ["csv", "elasticsearch"]

    mutating func run() async throws {
        precondition(alerts > 0 && commitSize > 0)
        let directory = try TemporaryDirectory(prefix: "patrol-bench-outbox")
        defer { directory.remove() }
        let logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
        let sample = (0..<1000).map { AlertFixtures.alert(index: $0, time: 1_700_000_000_000_000_000) }

        // Write path: commits of `commitSize` alerts, each timed; the per-alert cost is the commit's share.
        let store = try await Store.open(path: directory.file("patrol.db"))
        let clock = ContinuousClock()
        var perAlert: [Double] = []
        perAlert.reserveCapacity(alerts / commitSize + 1)
        // CPU time of the whole process during each commit, per alert: the write path's own cost, without the
        // time spent waiting for a core on a loaded machine (it includes the store's checkpoint thread).
        var cpuPerAlert: [Double] = []
        cpuPerAlert.reserveCapacity(alerts / commitSize + 1)
        var written = 0
        let writeStart = clock.now
        while written < alerts {
            let count = min(commitSize, alerts - written)
            var batch: [Alert] = []
            batch.reserveCapacity(count)
            for offset in 0..<count {
                var alert = sample[(written + offset) % sample.count]
                alert.id = "alert-\(written + offset)"
                batch.append(alert)
            }
            let cpuStart = Self.processCPUNanoseconds()
            let start = clock.now
            try await store.commit(IngestCommit(progress: [], counterDeltas: ["events": UInt64(count)], alerts: batch))
            perAlert.append(Self.microseconds(clock.now - start) / Double(count))
            cpuPerAlert.append(Double(Self.processCPUNanoseconds() - cpuStart) / 1000 / Double(count))
            written += count
        }
        let writeSeconds = Self.seconds(clock.now - writeStart)
        var single: [Double] = []
        let singleStore = try await Store.open(path: directory.file("single.db"))
        for index in 0..<singleCommits {
            var alert = sample[index % sample.count]
            alert.id = "single-\(index)"
            let start = clock.now
            try await singleStore.commit(IngestCommit(progress: [], counterDeltas: [:], alerts: [alert]))
            single.append(Self.microseconds(clock.now - start))
        }
        await singleStore.close()
        print(
            "outbox write: \(alerts) alerts in commits of \(commitSize): "
                + "per alert p50 \(Self.format(Self.percentile(perAlert, 0.5))) µs, "
                + "p99 \(Self.format(Self.percentile(perAlert, 0.99))) µs; "
                + "\(Int(Double(alerts) / writeSeconds)) alerts/s committed; "
                + "process CPU per alert p50 \(Self.format(Self.percentile(cpuPerAlert, 0.5))) µs, "
                + "p99 \(Self.format(Self.percentile(cpuPerAlert, 0.99))) µs")
        if singleCommits > 0 {
            print(
                "outbox write: \(singleCommits) single-alert commits: "
                    + "p50 \(Self.format(Self.percentile(single, 0.5))) µs, p99 \(Self.format(Self.percentile(single, 0.99))) µs"
            )
        }

        // Delivery: a fresh cursor per sink reads the whole outbox.
        let policy = OutboxDelivery.Policy(batchSize: batchSize)
        for name in sink {
            let target: any AlertSink
            var server: ElasticsearchTestServer?
            switch name {
            case "csv":
                target = CSVSink(path: directory.file("alerts.csv"), name: "bench-csv", maxBytes: 0)
            case "elasticsearch":
                let es = try ElasticsearchTestServer()
                server = es
                let client = ElasticsearchClient(endpoint: try .parse(es.hostPort), logger: logger)
                target = ElasticsearchSink(client: client, logger: logger)
            default:
                throw ValidationError("unknown sink '\(name)' (csv, elasticsearch)")
            }
            let delivery = OutboxDelivery(
                sink: target, store: store, signal: OutboxSignal(), policy: policy, logger: logger)
            let total = alerts
            let start = clock.now
            let cpuStart = processCPUSeconds()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await delivery.run() }
                while delivery.statistics.delivered < total { try await Task.sleep(for: .milliseconds(2)) }
                group.cancelAll()
            }
            let elapsed = Self.seconds(clock.now - start)
            let cpu = processCPUSeconds() - cpuStart
            print(
                "outbox → \(name): \(total) alerts in \(Self.format(elapsed)) s: \(Int(Double(total) / elapsed)) alerts/s, "
                    + "\(Self.format(cpu)) CPU s (bench process, incl. test server)")
            server?.stop()
        }
        await store.close()
    }

    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]
    }

    static func microseconds(_ duration: Duration) -> Double { seconds(duration) * 1e6 }

    /// CLOCK_PROCESS_CPUTIME_ID: exact (not tick-sampled like getrusage), so it can time one commit.
    static func processCPUNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func format(_ value: Double) -> String { String(format: "%.2f", value) }
}
