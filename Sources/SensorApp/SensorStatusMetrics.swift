import Basics
import EventModel
import MalwareScanning
import Metrics
import Synchronization

/// Turns `SensorStatus` reports into labelled metrics (docs/metrics.md). The sensor feeds it its own status at
/// each scrape of its `/metrics`; the collector feeds it every status it receives, so the collector's
/// `/metrics` shows every sensor's drops without scraping the nodes.
///
/// A status carries cumulative numbers for one sensor boot. Counters grow by the difference to the previous
/// status of the same boot; a new boot starts again from zero, so no counter ever goes backwards.
public final class SensorStatusMetrics: Sendable {
    private struct Seen {
        var bootID: String
        var values: [String: UInt64]
        /// Programs reported missing last time, to clear their gauge when they load after a restart.
        var failedHooks: Set<String>
    }

    private let seen = Mutex<[String: Seen]>([:])

    public init() {}

    public func record(_ status: SensorStatus) {
        let sensor = status.sensorID
        var current: [String: UInt64] = [:]
        for (stage, count) in status.drops { current["drop:" + stage.rawValue] = count }
        for (name, count) in status.counters { current["counter:" + name] = count }
        let (deltas, cleared) = seen.withLock { seen -> ([String: UInt64], Set<String>) in
            var previous = seen[sensor] ?? Seen(bootID: status.bootID, values: [:], failedHooks: [])
            if previous.bootID != status.bootID { previous.values = [:] }
            var deltas: [String: UInt64] = [:]
            for (key, value) in current {
                let last = previous.values[key] ?? 0
                deltas[key] = value >= last ? value - last : value
            }
            let failed = Set(status.hooksFailed.keys)
            let cleared = previous.failedHooks.subtracting(failed)
            seen[sensor] = Seen(bootID: status.bootID, values: current, failedHooks: failed)
            return (deltas, cleared)
        }
        for (key, delta) in deltas where key != "counter:" + ScannerCounter.health {
            // Create the series even at zero, so a dashboard shows it before the first drop.
            let counter: Counter
            if key.hasPrefix("drop:") {
                counter = Counter(
                    label: "patrol_sensor_dropped_events_total",
                    dimensions: [("sensor", sensor), ("stage", String(key.dropFirst(5)))])
            } else {
                counter = Counter(
                    label: "patrol_sensor_\(Self.metricName(String(key.dropFirst(8))))_total", dimensions: [("sensor", sensor)])
            }
            counter.increment(by: Int(clamping: delta))
        }
        for (queue, depth) in status.queueDepths {
            Gauge(label: "patrol_sensor_queue_depth", dimensions: [("sensor", sensor), ("queue", Self.metricName(queue))])
                .record(Double(depth))
        }
        Gauge(label: "patrol_sensor_hooks", dimensions: [("sensor", sensor), ("state", "loaded")])
            .record(Double(status.hooksLoaded.count))
        Gauge(label: "patrol_sensor_hooks", dimensions: [("sensor", sensor), ("state", "failed")])
            .record(Double(status.hooksFailed.count))
        for program in status.hooksFailed.keys {
            Gauge(label: "patrol_sensor_hook_failed", dimensions: [("sensor", sensor), ("program", program)]).record(1)
        }
        for program in cleared {
            Gauge(label: "patrol_sensor_hook_failed", dimensions: [("sensor", sensor), ("program", program)]).record(0)
        }
        if let health = status.counters[ScannerCounter.health] {
            // A state, not a count: 1 while the scanner has an engine from the current database.
            Gauge(label: "patrol_scanner_healthy", dimensions: [("sensor", sensor)]).record(health == 0 ? 1 : 0)
            Gauge(label: "patrol_scanner_health_state", dimensions: [("sensor", sensor)]).record(Double(health))
        }
        Gauge(label: "patrol_sensor_last_status_seconds", dimensions: [("sensor", sensor)])
            .record(Double(status.time) / 1e9)
    }

    /// A counter or queue name as a metric name part: letters, digits and underscores only.
    static func metricName(_ name: String) -> String {
        String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
    }
}

/// The malware scanner's entries in `SensorStatus.counters` (docs/metrics.md). `scanner_health` is a state, not a
/// count (0 healthy, 1 degraded, 2 unhealthy); it becomes the `patrol_scanner_healthy` gauge, the others counters.
public enum ScannerCounter {
    public static let health = "scanner_health"
    public static let filesScanned = "scanner_files_scanned"
    public static let filesUnchanged = "scanner_files_unchanged"
    public static let filesFailed = "scanner_files_failed"
    public static let findings = "scanner_findings"
    public static let scans = "scanner_scans"
    public static let scansRefused = "scanner_scans_refused"

    static func healthValue(_ health: ScannerHealth) -> UInt64 {
        switch health {
        case .healthy: return 0
        case .degraded: return 1
        case .unhealthy: return 2
        }
    }
}
