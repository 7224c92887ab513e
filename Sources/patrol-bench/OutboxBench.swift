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

    @Flag(help: "Also print what the slowest 1 % of commits had in common (WAL growth, a checkpoint running).")
    var explain = false

    @Flag(help: "Alert times cycle through 1000 values instead of increasing (the fixture before 2026-11-26 16:30).")
    var cycledTimes = false

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
        // The store's writer thread ("store-0") and checkpoint thread, found by name: their own CPU clocks split
        // the process CPU into the write path proper and the checkpointer beside it.
        let writerThread = Self.threadID(named: "store-0")
        let writerClock = writerThread.map(Self.cpuClock)
        let checkpointClock = Self.threadID(named: "store-checkpoin").map(Self.cpuClock)
        let writerSchedstat = writerThread.map { "/proc/self/task/\($0)/schedstat" } ?? ""
        var writerPerAlert: [Double] = []
        writerPerAlert.reserveCapacity(alerts / commitSize + 1)
        var pathPerAlert: [Double] = []
        pathPerAlert.reserveCapacity(alerts / commitSize + 1)
        var samples: [CommitSample] = []
        if explain { samples.reserveCapacity(alerts / commitSize + 1) }
        let walPath = directory.file("patrol.db") + "-wal"
        var checkpointTotal: Int64 = 0
        var written = 0
        let writeStart = clock.now
        while written < alerts {
            let count = min(commitSize, alerts - written)
            var batch: [Alert] = []
            batch.reserveCapacity(count)
            for offset in 0..<count {
                var alert = sample[(written + offset) % sample.count]
                alert.id = "alert-\(written + offset)"
                // Increasing, as a live collector's alerts are (event time, one every millisecond), so the time
                // index grows at its end; cycled times insert into its middle, as a replay of old audit logs can.
                if !cycledTimes { alert.time = 1_700_000_000_000_000_000 + UInt64(written + offset) * 1_000_000 }
                batch.append(alert)
            }
            let walBefore = explain ? Self.fileSize(walPath) : 0
            let waitBefore = explain ? Self.runQueueWait(writerSchedstat) : 0
            let checkpointStart = Self.cpuNanoseconds(checkpointClock)
            let writerStart = Self.cpuNanoseconds(writerClock)
            let cpuStart = Self.processCPUNanoseconds()
            let start = clock.now
            try await store.commit(IngestCommit(progress: [], counterDeltas: ["events": UInt64(count)], alerts: batch))
            let wall = Self.microseconds(clock.now - start) / Double(count)
            perAlert.append(wall)
            cpuPerAlert.append(Double(Self.processCPUNanoseconds() - cpuStart) / 1000 / Double(count))
            let writer = Double(Self.cpuNanoseconds(writerClock) - writerStart) / 1000 / Double(count)
            writerPerAlert.append(writer)
            let checkpoint = Self.cpuNanoseconds(checkpointClock) - checkpointStart
            checkpointTotal += checkpoint
            pathPerAlert.append(cpuPerAlert[cpuPerAlert.count - 1] - Double(checkpoint) / 1000 / Double(count))
            if explain {
                samples.append(
                    CommitSample(
                        wall: wall, writer: writer,
                        runQueue: Double(Self.runQueueWait(writerSchedstat) - waitBefore) / 1000 / Double(count),
                        checkpointing: checkpoint > 0, walBefore: walBefore,
                        walAfter: Self.fileSize(walPath)))
            }
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
        // Process CPU less the checkpoint thread's is the write path: encoding the alerts (on the calling thread)
        // plus binding, inserting and committing them (on the store thread).
        print(
            "outbox write: write path CPU per alert (process CPU less the checkpoint thread's) "
                + "p50 \(Self.format(Self.percentile(pathPerAlert, 0.5))) µs, "
                + "p99 \(Self.format(Self.percentile(pathPerAlert, 0.99))) µs; "
                + "store thread alone (insert and commit) "
                + "p50 \(Self.format(Self.percentile(writerPerAlert, 0.5))) µs, "
                + "p99 \(Self.format(Self.percentile(writerPerAlert, 0.99))) µs; "
                + "checkpoint thread \(Self.format(Double(checkpointTotal) / 1e9)) CPU s in all "
                + "(\(Self.format(Double(checkpointTotal) / 1000 / Double(alerts))) µs per alert)"
                + (writerClock == nil || checkpointClock == nil ? " [store threads not found by name]" : ""))
        // The tail past p99: a commit that runs the WAL catch-up (one per `Store.walLimitBytes` of WAL) lands here.
        print(
            "outbox write: tail per alert p99.9 \(Self.format(Self.percentile(perAlert, 0.999))) µs, "
                + "max \(Self.format(perAlert.max() ?? 0)) µs "
                + "(slowest commit \(Self.format((perAlert.max() ?? 0) * Double(commitSize) / 1000)) ms)")
        if explain { Self.explain(samples) }
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

    struct CommitSample {
        var wall: Double
        var writer: Double
        /// Time the store thread was runnable but waiting for a core, per alert.
        var runQueue: Double
        var checkpointing: Bool
        var walBefore: Int
        var walAfter: Int
    }

    /// The slowest 1 % of commits (by wall time and by the committing thread's CPU) against the rest: how often
    /// a checkpoint ran beside them and how often the commit made the WAL file longer (pwrite past its end).
    static func explain(_ samples: [CommitSample]) {
        func describe(_ label: String, _ group: ArraySlice<CommitSample>) -> String {
            let count = Double(max(1, group.count))
            let checkpointing = Double(group.filter(\.checkpointing).count) / count * 100
            let extending = Double(group.filter { $0.walAfter > $0.walBefore }.count) / count * 100
            let wall = group.map(\.wall).reduce(0, +) / count
            let writer = group.map(\.writer).reduce(0, +) / count
            let runQueue = group.map(\.runQueue).reduce(0, +) / count
            let wal = Double(group.map(\.walAfter).reduce(0, +)) / count / 1e6
            return "\(label): \(group.count) commits, mean wall \(format(wall)) µs/alert, writer CPU "
                + "\(format(writer)) µs/alert, store thread waiting for a core \(format(runQueue)) µs/alert, "
                + "checkpoint running \(format(checkpointing)) %, WAL file grew "
                + "\(format(extending)) %, mean WAL file \(format(wal)) MB"
        }
        let tail = max(1, samples.count / 100)
        for (name, key) in [("wall", \CommitSample.wall), ("writer CPU", \CommitSample.writer)] {
            let sorted = samples.sorted { $0[keyPath: key] > $1[keyPath: key] }
            print("explain, by \(name): " + describe("slowest 1 %", sorted.prefix(tail)) + "; "
                + describe("the rest", sorted.dropFirst(tail)))
        }
        let maxWAL = samples.map(\.walAfter).max() ?? 0
        print("explain: WAL file largest \(format(Double(maxWAL) / 1e6)) MB")
    }

    static func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    /// Nanoseconds the thread has spent runnable but not running (the second field of its schedstat).
    static func runQueueWait(_ path: String) -> Int64 {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? Int64(fields[1]) ?? 0 : 0
    }

    /// Linux's per-thread CPU clock id (what pthread_getcpuclockid returns): ~tid << 3 | CPUCLOCK_PERTHREAD |
    /// CPUCLOCK_SCHED. Any thread of the same process may read it.
    static func cpuClock(_ tid: Int32) -> clockid_t { (~tid) << 3 | 6 }

    /// The id of this process's thread named `name` (its `comm`), or nil when there is none.
    static func threadID(named name: String) -> Int32? {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return nil }
        for task in tasks {
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                comm.trimmingCharacters(in: .whitespacesAndNewlines) == name, let tid = Int32(task)
            else { continue }
            return tid
        }
        return nil
    }

    static func cpuNanoseconds(_ clock: clockid_t?) -> Int64 {
        guard let clock else { return 0 }
        var spec = timespec()
        guard clock_gettime(clock, &spec) == 0 else { return 0 }
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

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
