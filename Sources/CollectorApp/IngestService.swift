import AlertSinks
import Basics
import EventModel
import Logging
import Metrics
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
        let batch: EventBatch
        let reply: CheckedContinuation<Result<BatchAck, IngestRejection>, Never>
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

    public init(store: Store, ruleSet: RuleSet, signal: OutboxSignal, queueCapacity: Int = 64, logger: Logger) {
        self.store = store
        self.ruleSet = ruleSet
        self.signal = signal
        self.logger = logger
        self.queue = BoundedBuffer(capacity: queueCapacity)
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
        var evaluator = RuleEvaluator(ruleSet: ruleSet)
        try await withGracefulShutdownHandler {
            while let group = await queue.drain(limit: 32) {
                await process(group, ledger: &ledger, evaluator: &evaluator)
            }
        } onGracefulShutdown: { [queue] in
            // Batches already queued are still committed; new ones are refused and stay with their sensor.
            queue.finish()
        }
        // Anything offered after finish() was refused by offer(); nothing is left waiting.
    }

    private func process(_ group: [Pending], ledger: inout BatchDeduplicator, evaluator: inout RuleEvaluator) async {
        var accepted: [Pending] = []
        var duplicates: [Pending] = []
        var alerts: [Alert] = []
        var eventCount: UInt64 = 0
        var kindCounts: [IngestMetrics.Series: UInt64] = [:]
        var staged = ledger
        for pending in group {
            let batch = pending.batch
            guard staged.record(sensorID: batch.sensorID, bootID: batch.bootID, sequence: batch.sequence) else {
                duplicates.append(pending)
                continue
            }
            accepted.append(pending)
            for event in batch.events {
                kindCounts[IngestMetrics.Series(sensor: batch.sensorID, kind: event.kind), default: 0] += UInt64(event.count)
                alerts += evaluator.evaluate(event)
            }
            eventCount += UInt64(batch.events.count)
        }
        if !accepted.isEmpty {
            var deltas: [String: UInt64] = ["events_ingested": eventCount, "batches_ingested": UInt64(accepted.count)]
            deltas["alerts_raised"] = UInt64(alerts.count)
            let touched = Set(
                accepted.map { BatchDeduplicator.StreamKey(sensorID: $0.batch.sensorID, bootID: $0.batch.bootID) })
            do {
                try await store.commit(
                    IngestCommit(progress: touched.map { Self.progress(staged, $0) }, counterDeltas: deltas, alerts: alerts))
            } catch {
                metrics.storeFailures.increment()
                logger.error("cannot commit batches to the store; sensors will retry", metadata: ["error": "\(error)"])
                for pending in group { pending.reply.resume(returning: .failure(.storeFailed(error.message))) }
                return
            }
            ledger = staged
            metrics.record(events: eventCount, batches: accepted.count, alerts: alerts, kinds: kindCounts)
            if !alerts.isEmpty { signal.notify() }
        }
        metrics.duplicates.increment(by: duplicates.count)
        for pending in accepted + duplicates {
            let batch = pending.batch
            pending.reply.resume(
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
