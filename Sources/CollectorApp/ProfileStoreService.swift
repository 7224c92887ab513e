import Basics
import Logging
import Metrics
import Profiles
import ServiceLifecycle
import Store

/// Keeps the collector's application profiles in its store: what changed is written every `interval`, and once
/// more at shutdown, so a restart resumes every profile with its state and learning deadline. Each round also
/// exports the profiles' states (`ProfileMetrics`), so the metrics cost the ingest loop nothing.
struct ProfileStoreService: Service {
    let registry: ProfileRegistry
    let store: Store
    let interval: Duration
    let logger: Logger

    func run() async throws {
        let metrics = ProfileMetrics()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                metrics.record(registry.statistics())
                try? await Task.sleep(for: interval)
                await save()
            }
        }
        await save()
        metrics.record(registry.statistics())
    }

    private func save() async {
        do {
            let written = try await registry.save(to: store)
            if written > 0 { logger.debug("profiles saved", metadata: ["containers": "\(written)"]) }
        } catch {
            logger.error("cannot save profiles; they stay marked for the next save", metadata: ["error": "\(error)"])
        }
    }
}

/// `patrol_profiles{state}`, `patrol_profiles_finalized_total` and `patrol_profiles_failed_total{limit}`
/// (docs/metrics.md). The registry counts transitions as they happen; the counters here follow its totals.
final class ProfileMetrics: @unchecked Sendable {
    // Touched only by the store service's loop (and once after it), never concurrently.
    private let states = Dictionary(
        uniqueKeysWithValues: ProfileState.allCases.map {
            ($0, Gauge(label: "patrol_profiles", dimensions: [("state", $0.rawValue)]))
        })
    private let finalized = Counter(label: "patrol_profiles_finalized_total")
    private var finalizedSoFar = 0
    private var failedSoFar: [String: Int] = [:]

    func record(_ statistics: ProfileStatistics) {
        for (state, gauge) in states { gauge.record(Double(statistics.profiles[state] ?? 0)) }
        if statistics.finalized > finalizedSoFar { finalized.increment(by: statistics.finalized - finalizedSoFar) }
        finalizedSoFar = statistics.finalized
        for (limit, total) in statistics.failedByLimit where total > failedSoFar[limit, default: 0] {
            Counter(label: "patrol_profiles_failed_total", dimensions: [("limit", limit)])
                .increment(by: total - failedSoFar[limit, default: 0])
            failedSoFar[limit] = total
        }
    }
}
