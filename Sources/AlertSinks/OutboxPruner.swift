import Basics
import Logging
import Metrics
import ServiceLifecycle
import Store

/// Deletes outbox rows every sink has delivered once they fall out of the alert retention (older than
/// `maxAge` by alert time, or beyond the newest `maxAlerts`). Without it the outbox grows forever; with it the
/// outbox doubles as the recent alert history (`patrolctl alerts list` reads it), so rows are not deleted the
/// moment the slowest sink has them.
///
/// A row no sink has delivered is never deleted, whatever its age: delivery comes before retention. Rows go in
/// short transactions of `batchSize` on the store's thread, with a pause between them, so a large prune never
/// holds up an ingest commit by more than one batch.
public struct OutboxPruner: Service {
    public struct Retention: Sendable, Equatable {
        public var maxAge: Duration?
        public var maxAlerts: Int?

        public init(maxAge: Duration?, maxAlerts: Int?) {
            self.maxAge = maxAge
            self.maxAlerts = maxAlerts
        }
    }

    let store: Store
    /// The cursor names of every configured sink.
    let sinks: [String]
    let retention: Retention
    let interval: Duration
    let batchSize: Int
    let logger: Logger
    let pruned = Counter(label: "patrol_outbox_pruned_total")

    public init(
        store: Store, sinks: [String], retention: Retention, interval: Duration = .seconds(30), batchSize: Int = 500,
        logger: Logger
    ) {
        self.store = store
        self.sinks = sinks
        self.retention = retention
        self.interval = interval
        self.batchSize = max(1, batchSize)
        self.logger = logger
    }

    public func run() async throws {
        guard retention.maxAge != nil || retention.maxAlerts != nil else {
            // Nothing to prune; a service that returned early would end the whole service group.
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    _ = try await pruneOnce()
                } catch {
                    logger.warning("cannot prune the outbox; will try again", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One pass: deletes everything currently due, batch by batch; returns how many rows went.
    @discardableResult
    public func pruneOnce(now: EpochNanoseconds = WallClock.now()) async throws(StoreError) -> Int {
        var settled = try await store.outboxHead()
        for sink in sinks { settled = min(settled, try await store.sinkCursor(sink)) }
        let cutoff = retention.maxAge.map { age -> EpochNanoseconds in
            let nanoseconds = UInt64(age.components.seconds) * 1_000_000_000
                + UInt64(age.components.attoseconds / 1_000_000_000)
            return now > nanoseconds ? now - nanoseconds : 0
        }
        var total = 0
        while !Task.isCancelled {
            let deleted = try await store.pruneOutbox(
                settled: settled, olderThan: cutoff, keepNewest: retention.maxAlerts, limit: batchSize)
            total += deleted
            if deleted > 0 { pruned.increment(by: deleted) }
            guard deleted == batchSize else { break }
            // Let waiting ingest commits have the store thread between batches.
            try? await Task.sleep(for: .milliseconds(5))
        }
        if total > 0 {
            logger.debug("outbox pruned", metadata: ["alerts": "\(total)", "settled_through": "\(settled)"])
        }
        return total
    }
}
