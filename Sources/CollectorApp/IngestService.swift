import AlertSinks
import Basics
import Bindings
import EventModel
import Logging
import Metrics
import Profiles
import RuleEngine
import ServiceLifecycle
import Store
import Transport

/// Takes decoded batches from the RPC handler, drops duplicates, evaluates rules and commits each group of
/// batches to the store in one transaction. A batch's ack is released only after that commit, so an acked
/// batch is never lost and a retried one is never counted twice.
///
/// Batches are processed by this service's single loop, in arrival order; that keeps the de-duplication
/// state and the rule evaluator's sequence state free of races without locks.
public final class IngestService: Service, Sendable {
    struct Pending: Sendable {
        /// nil: a cooldown tick, which only closes expired de-duplication windows.
        let batch: EventBatch?
        let reply: CheckedContinuation<Result<BatchAck, IngestRejection>, Never>?
    }

    /// Why a batch was not accepted; the sensor keeps it and retries later.
    public enum IngestRejection: Error, Sendable {
        case overloaded
        case shuttingDown
        case storeFailed(String)
    }

    private let queue: BoundedBuffer<Pending>
    private let store: Store
    private let ruleSet: RuleSet
    private let signal: OutboxSignal
    private let logger: Logger
    private let metrics = IngestMetrics()
    private let initialCooldown: AlertCooldown
    /// Application profiles: every container event is learned from or judged before the rules see it.
    private let profiles: ProfileRegistry?
    /// Which rules apply to which pods; without it every rule applies to every event.
    private let bindings: BindingsController?
    /// ReplicaSet → Deployment and Job → CronJob for events whose sensor could not follow them (cache only).
    private let owners: KubernetesOwners?

    /// - Parameter cooldownDefault: the collector-wide alert de-duplication; a rule's own `dedup:` wins.
    public init(
        store: Store, ruleSet: RuleSet, signal: OutboxSignal, queueCapacity: Int = 64,
        cooldownDefault: AlertCooldown.Policy = .off, profiles: ProfileRegistry? = nil,
        bindings: BindingsController? = nil, owners: KubernetesOwners? = nil, logger: Logger
    ) {
        self.owners = owners
        self.profiles = profiles
        self.bindings = bindings
        self.store = store
        self.ruleSet = ruleSet
        self.signal = signal
        self.logger = logger
        self.queue = BoundedBuffer(capacity: queueCapacity)
        var rules: [String: AlertCooldown.Policy] = [:]
        for rule in ruleSet.rules {
            if let dedup = rule.dedup {
                rules[rule.id] = AlertCooldown.Policy(windowNanoseconds: dedup.windowNanoseconds, key: dedup.key)
            }
        }
        self.initialCooldown = AlertCooldown(default: cooldownDefault, rules: rules)
    }

    /// Hands a batch to the ingest loop and waits until it is durably committed (or refused).
    public func submit(_ batch: EventBatch) async -> Result<BatchAck, IngestRejection> {
        await withCheckedContinuation { continuation in
            if !queue.offer(Pending(batch: batch, reply: continuation)) {
                metrics.rejected.increment()
                continuation.resume(returning: .failure(.overloaded))
            }
        }
    }

    public func run() async throws {
        var ledger = BatchDeduplicator()
        for saved in try await store.sensorProgress() {
            ledger.restore(
                .init(highestContiguous: saved.contiguous, above: Set(saved.above)), sensorID: saved.sensorID,
                bootID: saved.bootID)
        }
        var applied = bindings?.current
        var evaluator = BoundEvaluator(
            ruleSet: ruleSet, bindings: applied?.bindings ?? [],
            defaultBindings: bindings?.defaultBindings ?? [Binding.everyRule(in: ruleSet)])
        var cooldown = initialCooldown
        try await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { tasks in
                if cooldown.isEnabled {
                    // Windows also close by the wall clock, so a summary comes out even when the events stop.
                    tasks.addTask { [queue] in
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(1))
                            _ = queue.offer(Pending(batch: nil, reply: nil))
                        }
                    }
                }
                while let group = await queue.drain(limit: 32) {
                    // A binding change is taken whole between groups, never in the middle of one.
                    if let bindings, let change = bindings.change(after: applied?.generation ?? 0) {
                        evaluator.replaceAll(change.bindings)
                        applied = change
                    }
                    await process(group, ledger: &ledger, evaluator: &evaluator, cooldown: &cooldown)
                    bindings?.recordEvaluator(evaluators: evaluator.evaluatorCount, cachedPods: evaluator.cachedPods)
                }
                tasks.cancelAll()
            }
        } onGracefulShutdown: { [queue] in
            // Batches already queued are still committed; new ones are refused and stay with their sensor.
            queue.finish()
        }
        // Anything offered after finish() was refused by offer(); nothing is left waiting.
        // Open cooldown windows end with the process: their summaries are committed now rather than lost.
        if !(await commitSummaries(cooldown.closeAll())) {
            logger.error("cannot commit cooldown summaries at shutdown; their counts are lost")
        }
    }

    /// Commits cooldown summaries that no batch carries (a tick closed their windows, or shutdown did).
    private func commitSummaries(_ summaries: [Alert]) async -> Bool {
        guard !summaries.isEmpty else { return true }
        let commit = IngestCommit(
            progress: [], counterDeltas: ["alerts_raised": UInt64(summaries.count)], alerts: summaries)
        do {
            try await store.commit(commit)
        } catch {
            metrics.storeFailures.increment()
            logger.error("cannot commit cooldown summaries", metadata: ["error": "\(error)"])
            return false
        }
        metrics.record(events: 0, batches: 0, alerts: summaries, kinds: [:])
        signal.notify()
        return true
    }

    private func process(
        _ group: [Pending], ledger: inout BatchDeduplicator, evaluator: inout BoundEvaluator,
        cooldown: inout AlertCooldown
    ) async {
        var accepted: [Pending] = []
        var duplicates: [Pending] = []
        var alerts: [Alert] = []
        var eventCount: UInt64 = 0
        var kindCounts: [IngestMetrics.Series: UInt64] = [:]
        var staged = ledger
        var stagedCooldown = cooldown
        var ticked = false
        var judged: [(containerID: String, verdict: ProfileVerdict)] = []
        for pending in group {
            guard let batch = pending.batch else {
                ticked = true
                continue
            }
            guard staged.record(sensorID: batch.sensorID, bootID: batch.bootID, sequence: batch.sequence) else {
                duplicates.append(pending)
                continue
            }
            accepted.append(pending)
            for original in batch.events {
                // The workload as profiles and rules must see it: resolved before either looks at the event.
                var event = original
                owners?.resolve(&event)
                kindCounts[IngestMetrics.Series(sensor: batch.sensorID, kind: event.kind), default: 0] += UInt64(event.count)
                // A container the sensor found already running starts a `partial` profile (its start-up is missing).
                if let profiles,
                    let verdict = profiles.observe(
                        event, startedBeforeObservation: event.container?.runningAtSensorStart ?? false)
                {
                    if verdict.isAnomalous, let container = event.container {
                        judged.append((container.containerID, verdict))
                    }
                    alerts += evaluator.evaluate(event, profile: verdict.judgement)
                } else {
                    alerts += evaluator.evaluate(event)
                }
            }
            eventCount += UInt64(batch.events.count)
        }
        let raised = alerts
        let now = WallClock.now()
        alerts = stagedCooldown.admit(alerts, now: now)
        if ticked { alerts += stagedCooldown.expire(now: now) }
        // Only a tick closed windows: their summaries are committed on their own, and the windows are let go
        // once that worked (if the store refuses, the next tick tries again).
        if accepted.isEmpty, await commitSummaries(alerts) { cooldown = stagedCooldown }
        if !accepted.isEmpty {
            var deltas: [String: UInt64] = ["events_ingested": eventCount, "batches_ingested": UInt64(accepted.count)]
            deltas["alerts_raised"] = UInt64(alerts.count)
            let touched = Set(
                accepted.map { BatchDeduplicator.StreamKey(sensorID: $0.batch!.sensorID, bootID: $0.batch!.bootID) })
            do {
                try await store.commit(
                    IngestCommit(progress: touched.map { Self.progress(staged, $0) }, counterDeltas: deltas, alerts: alerts))
            } catch {
                metrics.storeFailures.increment()
                logger.error("cannot commit batches to the store; sensors will retry", metadata: ["error": "\(error)"])
                profiles?.unreport(judged)  // the resent events must alert again
                for pending in group { pending.reply?.resume(returning: .failure(.storeFailed(error.message))) }
                return
            }
            ledger = staged
            cooldown = stagedCooldown
            if cooldown.isEnabled { metrics.recordSuppressed(raised: raised, written: alerts) }
            metrics.record(events: eventCount, batches: accepted.count, alerts: alerts, kinds: kindCounts)
            if !alerts.isEmpty { signal.notify() }
        }
        metrics.duplicates.increment(by: duplicates.count)
        for pending in accepted + duplicates {
            guard let batch = pending.batch else { continue }
            pending.reply?.resume(
                returning: .success(
                    BatchAck(
                        bootID: batch.bootID,
                        highestContiguousSequence: ledger.highestContiguous(sensorID: batch.sensorID, bootID: batch.bootID))))
        }
    }

    private static func progress(_ ledger: BatchDeduplicator, _ key: BatchDeduplicator.StreamKey) -> SensorProgress {
        let state = ledger.state(sensorID: key.sensorID, bootID: key.bootID) ?? .init()
        return SensorProgress(
            sensorID: key.sensorID, bootID: key.bootID, contiguous: state.highestContiguous, above: state.above.sorted())
    }
}

/// The ingest loop's metrics, created once (labelled series are looked up per kind and rule).
struct IngestMetrics: Sendable {
    let batches = Counter(label: "patrol_ingest_batches_total")
    let duplicates = Counter(label: "patrol_ingest_duplicate_batches_total")
    let rejected = Counter(label: "patrol_ingest_rejected_batches_total")
    let storeFailures = Counter(label: "patrol_ingest_store_failures_total")

    /// One `patrol_events_total` series: events of one kind from one sensor.
    struct Series: Hashable {
        var sensor: String
        var kind: EventKind
    }

    /// `patrol_alerts_suppressed_total`: alerts the cooldown folded into a window instead of writing.
    func recordSuppressed(raised: [Alert], written: [Alert]) {
        var byRule: [String: Int] = [:]
        for alert in raised { byRule[alert.ruleID, default: 0] += 1 }
        for alert in written where alert.firstSeen == nil { byRule[alert.ruleID, default: 0] -= 1 }
        for (rule, count) in byRule where count > 0 {
            Counter(label: "patrol_alerts_suppressed_total", dimensions: [("rule_id", rule)]).increment(by: count)
        }
    }

    func record(events: UInt64, batches count: Int, alerts: [Alert], kinds: [Series: UInt64]) {
        batches.increment(by: count)
        for (series, n) in kinds {
            Counter(
                label: "patrol_events_total",
                dimensions: [("kind", series.kind.rawValue), ("source", "sensor"), ("sensor", series.sensor)]
            ).increment(by: Int(n))
        }
        for alert in alerts {
            Counter(
                label: "patrol_alerts_total",
                dimensions: [("rule_id", alert.ruleID), ("severity", alert.severity.rawValue)]
            ).increment()
        }
    }
}
