import CoreMetrics
import Metrics
public import Prometheus
import Synchronization

/// A process's metrics registry plus what its status endpoint reports.
///
/// Counters and gauges are created through swift-metrics (`Counter(label:dimensions:)`) anywhere in the
/// process; `bootstrap()` points swift-metrics at this registry once per process. Some numbers live in
/// other components' snapshots (the RPC server's TLS refusals, the live capture's drop counters): those are
/// copied into metrics by closures registered with `onScrape`, which run just before each render, so a
/// scrape always shows current values without a polling task.
///
/// Readiness is a set of named checks; `/readyz` answers 200 only when every registered check is ready.
public final class Telemetry: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let refreshers = Mutex<[@Sendable () -> Void]>([])
    private let checks = Mutex<[String: @Sendable () -> Bool]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// Bootstraps swift-metrics with a Prometheus factory over a fresh registry. swift-metrics allows this
    /// once per process, so only executables call it (tests that run services in-process do not).
    public static func bootstrap() -> Telemetry {
        let telemetry = Telemetry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: telemetry.registry))
        return telemetry
    }

    /// Runs `refresh` before every render (it copies a component's snapshot into metrics). It runs on the
    /// status server's thread, so it must be cheap and must not block on async work.
    public func onScrape(_ refresh: @escaping @Sendable () -> Void) {
        refreshers.withLock { $0.append(refresh) }
    }

    /// Registers (or replaces) a named readiness check, asked at every `/readyz`. It runs on the status
    /// server's thread, so it must be cheap and must not block.
    public func addReadinessCheck(_ name: String, _ check: @escaping @Sendable () -> Bool) {
        checks.withLock { $0[name] = check }
    }

    /// Sets a readiness check to a fixed answer.
    public func setReady(_ name: String, _ ready: Bool) {
        addReadinessCheck(name) { ready }
    }

    /// Every check and whether it is ready; ready overall when there is no failing check.
    public var readiness: (ready: Bool, checks: [String: Bool]) {
        let current = checks.withLock { $0 }.mapValues { $0() }
        return (current.values.allSatisfy { $0 }, current)
    }

    /// The Prometheus text exposition of every metric, after running the scrape refreshers.
    public func render() -> [UInt8] {
        for refresh in refreshers.withLock({ $0 }) { refresh() }
        return registry.emitToBuffer()
    }
}

/// Mirrors a cumulative count kept elsewhere (a component's stats snapshot) into a swift-metrics counter,
/// adding only the growth since the last look. A source that restarts from zero (a new sensor boot) starts
/// a new baseline instead of making the counter go backwards.
public final class CounterMirror: Sendable {
    private let increment: @Sendable (Int) -> Void
    private let last = Mutex<UInt64>(0)

    public init(label: String, dimensions: [(String, String)] = []) {
        let counter = CoreMetrics.Counter(label: label, dimensions: dimensions)
        increment = { counter.increment(by: $0) }
    }

    init(increment: @escaping @Sendable (Int) -> Void) {
        self.increment = increment
    }

    public func update(to value: UInt64) {
        let delta = last.withLock { last -> UInt64 in
            let delta = value >= last ? value - last : value
            last = value
            return delta
        }
        if delta > 0 { increment(Int(clamping: delta)) }
    }
}

/// A readiness answer one component sets and a readiness check reads.
public final class ReadyFlag: Sendable {
    private let value = Atomic<Bool>(false)

    public init(_ initial: Bool = false) {
        value.store(initial, ordering: .relaxed)
    }

    public var isSet: Bool { value.load(ordering: .relaxed) }

    public func set(_ ready: Bool) { value.store(ready, ordering: .relaxed) }
}
