import Basics
import EventModel
import Logging
import Metrics
import ServiceLifecycle
import Store
import Synchronization

/// Wakes outbox readers when new alerts were committed, so they don't have to poll tightly.
public final class OutboxSignal: Sendable {
    // A broadcast, not a stream: every sink's delivery loop waits on the same signal, and each must see every
    // notification. (An AsyncStream gives each value to one iterator only, and cancelling the iterator of a
    // wait that timed out finishes the stream for good, after which every wait returned at once and each
    // delivery loop queried the store about a thousand times a second on an idle collector.)
    private struct State {
        /// Notifications so far. A loop reads it before looking at the outbox, so a notification that comes
        /// between its look and its wait still wakes it.
        var generation: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waits whose timer (or cancellation) came before they registered: they return at once.
        var expired: Set<UInt64> = []
    }
    private let state = Mutex(State())

    public init() {}

    /// Wakes every delivery loop that waits; one that does not wait yet returns from its next wait at once.
    public func notify() {
        let waiting = state.withLock { state in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for continuation in waiting { continuation.resume() }
    }

    /// The notifications so far, for `wait(after:timeout:)`.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// Waits until there has been a notification since `generation` was read (returns at once if there has),
    /// until `timeout` has passed, or until the task is cancelled.
    func wait(after generation: UInt64, timeout: Duration) async {
        let id = state.withLock { state in
            state.nextWaiter &+= 1
            return state.nextWaiter
        }
        let timer = Task { [self] in
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            expire(id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.generation != generation || state.expired.remove(id) != nil { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            expire(id)
        }
        timer.cancel()
        _ = await timer.value
        // A timer or cancellation that raced a notification may have left the id behind.
        _ = state.withLock { $0.expired.remove(id) }
    }

    private func expire(_ id: UInt64) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let continuation = state.waiters.removeValue(forKey: id) { return continuation }
            state.expired.insert(id)
            return nil
        }
        continuation?.resume()
    }
}

/// Delivers the outbox to one sink: reads after the sink's cursor, delivers a batch, then advances the
/// cursor. A failing sink retries with exponential backoff and jitter and delays only itself.
///
/// Per sink (`Policy`): the batch size; the backoff; a bound on the backlog (alerts behind the outbox head)
/// with what to do past it (`dropOldest` advances the cursor and counts the skipped alerts, `keep` never
/// drops and lets the store grow); and a rate limit (alerts/s with a burst), where what exceeds it waits.
///
/// On graceful shutdown it keeps delivering until it has caught up with everything committed so far, or
/// until `shutdownGrace` has passed.
public struct OutboxDelivery: Service {
    /// What a sink does when its backlog passes `Policy.maxBacklog`.
    public enum Overflow: String, Sendable, CaseIterable {
        /// Skip the oldest undelivered alerts (advance the cursor), counting them as dropped.
        case dropOldest
        /// Drop nothing: the sink falls further behind and the store keeps the alerts.
        case keep
    }

    /// A token bucket: `perSecond` alerts on average, up to `burst` at once.
    public struct RateLimit: Sendable, Equatable {
        public var perSecond: Double
        public var burst: Int

        public init(perSecond: Double, burst: Int? = nil) {
            precondition(perSecond > 0, "a rate limit must be positive")
            self.perSecond = perSecond
            self.burst = max(1, burst ?? Int(perSecond.rounded(.up)))
        }
    }

    public struct Policy: Sendable, Equatable {
        public var batchSize: Int
        public var initialBackoff: Duration
        public var maxBackoff: Duration
        /// How long to keep delivering after shutdown was requested.
        public var shutdownGrace: Duration
        /// Alerts the sink may fall behind the outbox head; 0 is unbounded.
        public var maxBacklog: Int
        public var overflow: Overflow
        public var rateLimit: RateLimit?

        public init(
            batchSize: Int = 500, initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(30),
            shutdownGrace: Duration = .seconds(10), maxBacklog: Int = 0, overflow: Overflow = .keep,
            rateLimit: RateLimit? = nil
        ) {
            self.batchSize = max(1, batchSize)
            self.initialBackoff = initialBackoff
            self.maxBackoff = max(initialBackoff, maxBackoff)
            self.shutdownGrace = shutdownGrace
            self.maxBacklog = maxBacklog
            self.overflow = overflow
            self.rateLimit = rateLimit
        }
    }

    /// Counts since start, the same numbers as the sink's metrics, for tests and `patrolctl`.
    public final class Statistics: Sendable {
        let deliveredCount = Atomic<Int>(0)
        let failedCount = Atomic<Int>(0)
        let retriedCount = Atomic<Int>(0)
        let droppedCount = Atomic<Int>(0)
        let redeliveredCount = Atomic<Int>(0)
        let batchCount = Atomic<Int>(0)
        let largestBatchCount = Atomic<Int>(0)
        let backlogValue = Atomic<Int>(0)

        init() {}

        /// Alerts the sink accepted.
        public var delivered: Int { deliveredCount.load(ordering: .relaxed) }
        /// Delivery attempts that failed.
        public var failedAttempts: Int { failedCount.load(ordering: .relaxed) }
        /// Attempts that repeated a failed one.
        public var retries: Int { retriedCount.load(ordering: .relaxed) }
        /// Alerts skipped by the `dropOldest` overflow policy.
        public var dropped: Int { droppedCount.load(ordering: .relaxed) }
        /// Alerts sent again although an earlier attempt may have reached the sink (possible duplicates).
        public var redelivered: Int { redeliveredCount.load(ordering: .relaxed) }
        /// Successful deliveries (batches), and the largest one.
        public var batches: Int { batchCount.load(ordering: .relaxed) }
        public var largestBatch: Int { largestBatchCount.load(ordering: .relaxed) }
        /// Alerts behind the outbox head at the last look.
        public var backlog: Int { backlogValue.load(ordering: .relaxed) }
    }

    private let sink: any AlertSink
    private let store: Store
    private let signal: OutboxSignal
    public let policy: Policy
    public let statistics = Statistics()
    private let logger: Logger
    private let throttle = LogThrottle(limit: 5, per: .seconds(30))
    private let delivered: Counter
    private let failures: Counter
    private let retries: Counter
    private let dropped: Counter
    private let redelivered: Counter
    private let backlog: Gauge

    public init(sink: any AlertSink, store: Store, signal: OutboxSignal, policy: Policy = Policy(), logger: Logger) {
        self.sink = sink
        self.store = store
        self.signal = signal
        self.policy = policy
        var logger = logger
        logger[metadataKey: "sink"] = "\(sink.name)"
        self.logger = logger
        let label = [("sink", sink.name)]
        self.delivered = Counter(label: "patrol_sink_alerts_sent_total", dimensions: label)
        self.failures = Counter(label: "patrol_sink_failures_total", dimensions: label)
        self.retries = Counter(label: "patrol_sink_retries_total", dimensions: label)
        self.dropped = Counter(
            label: "patrol_sink_alerts_dropped_total", dimensions: label + [("reason", "overflow")])
        self.redelivered = Counter(label: "patrol_sink_alerts_redelivered_total", dimensions: label)
        self.backlog = Gauge(label: "patrol_sink_backlog", dimensions: label)
    }

    public var sinkName: String { sink.name }

    /// The store key of the sink's in-flight mark: the last position of the batch being attempted, written
    /// before the attempt, so alerts re-sent after a crash are known to be possible duplicates.
    var inFlightKey: String { "\(sink.name)#in_flight" }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await deliverLoop()
        } onGracefulShutdown: {
            signal.notify()
        }
    }

    private func deliverLoop() async {
        // `cursor` (in the store) is where the sink has settled: everything through it is delivered. `sent` runs
        // ahead of it for a sink that vouches for alerts only some time after writing them (`settled`), and
        // falls back to `cursor` when such a sink reports that what it wrote may be lost.
        var cursor: Int64 = (try? await store.sinkCursor(sink.name)) ?? 0
        var sent = cursor
        // Everything up to here may have reached the sink already (an attempt whose outcome is unknown).
        var maybeDelivered: Int64 = max(cursor, (try? await store.sinkCursor(inFlightKey)) ?? 0)
        var markedInFlight = maybeDelivered
        var backoff = policy.initialBackoff
        var failing = false
        var bucket = policy.rateLimit.map { TokenBucket($0) }
        var shutdownDeadline: ContinuousClock.Instant?
        while !Task.isCancelled {
            if Task.isShuttingDownGracefully, shutdownDeadline == nil {
                shutdownDeadline = .now + policy.shutdownGrace
            }
            if let deadline = shutdownDeadline, ContinuousClock.now >= deadline {
                logger.error(
                    "sink not caught up at shutdown; undelivered alerts stay in the outbox for next start",
                    metadata: ["cursor": "\(cursor)", "sent": "\(sent)"])
                return
            }
            do {
                let head = try await store.outboxHead()
                if policy.maxBacklog > 0, policy.overflow == .dropOldest, head - sent > Int64(policy.maxBacklog) {
                    let keepFrom = head - Int64(policy.maxBacklog)
                    let skipped = try await store.outboxCount(after: sent, through: keepFrom)
                    try await store.setSinkCursor(sink.name, to: max(cursor, keepFrom))
                    cursor = max(cursor, keepFrom)
                    sent = keepFrom
                    maybeDelivered = max(maybeDelivered, sent)
                    statistics.droppedCount.add(skipped, ordering: .relaxed)
                    dropped.increment(by: skipped)
                    if let suppressed = throttle.admit() {
                        logger.error(
                            "sink backlog over its bound; oldest alerts dropped",
                            metadata: [
                                "dropped": "\(skipped)", "max_backlog": "\(policy.maxBacklog)",
                                "suppressed_lines": "\(suppressed)",
                            ])
                    }
                }
                let behind = Int(max(0, head - cursor))
                statistics.backlogValue.store(behind, ordering: .relaxed)
                backlog.record(behind)

                var limit = policy.batchSize
                if var current = bucket {
                    let (granted, wait) = current.available(upTo: limit, now: .now)
                    bucket = current
                    if granted == 0 {
                        // Over the rate: wait for tokens (shutdown still wakes us through cancellation).
                        try? await Task.sleep(for: wait)
                        continue
                    }
                    limit = granted
                }
                let seen = signal.generation
                let entries = try await store.outbox(after: sent, limit: limit)
                if entries.isEmpty {
                    if sent > cursor {
                        // Written but not yet vouched for: ask again, and keep asking until it settles.
                        do {
                            cursor = try await settle(sent: sent, cursor: cursor)
                        } catch {
                            maybeDelivered = max(maybeDelivered, sent)
                            sent = cursor
                            throw error
                        }
                    }
                    if shutdownDeadline != nil {
                        if sent > cursor {
                            try? await Task.sleep(for: .milliseconds(100))
                            continue
                        }
                        try? await sink.flush()
                        return
                    }
                    await signal.wait(after: seen, timeout: .milliseconds(sent > cursor ? 100 : 250))
                    continue
                }
                let last = entries.last!.position
                if last > markedInFlight {
                    try await store.setSinkCursor(inFlightKey, to: last)
                    markedInFlight = last
                }
                if failing {
                    statistics.retriedCount.add(1, ordering: .relaxed)
                    retries.increment()
                }
                let again = entries.reduce(0) { $0 + ($1.position <= maybeDelivered ? 1 : 0) }
                if var current = bucket {
                    current.take(entries.count)
                    bucket = current
                }
                do {
                    try await sink.deliver(entries.map(\.alert))
                    sent = last
                    cursor = try await settle(sent: sent, cursor: cursor)
                } catch {
                    // Whatever was written since the last settled position may or may not have arrived.
                    maybeDelivered = max(maybeDelivered, last)
                    sent = cursor
                    throw error
                }
                statistics.deliveredCount.add(entries.count, ordering: .relaxed)
                statistics.batchCount.add(1, ordering: .relaxed)
                if entries.count > statistics.largestBatch {
                    statistics.largestBatchCount.store(entries.count, ordering: .relaxed)
                }
                delivered.increment(by: entries.count)
                if again > 0 {
                    statistics.redeliveredCount.add(again, ordering: .relaxed)
                    redelivered.increment(by: again)
                }
                if failing {
                    logger.info("sink delivering again", metadata: ["cursor": "\(cursor)"])
                    failing = false
                }
                backoff = policy.initialBackoff
            } catch {
                statistics.failedCount.add(1, ordering: .relaxed)
                failures.increment()
                failing = true
                if let suppressed = throttle.admit() {
                    logger.warning(
                        "sink delivery failed; will retry",
                        metadata: [
                            "error": "\(error)", "cursor": "\(cursor)", "retry_in_ms": "\(backoff.milliseconds)",
                            "suppressed_lines": "\(suppressed)",
                        ])
                }
                let jitter = Double.random(in: 0.5...1.0)
                try? await Task.sleep(for: backoff * jitter)
                backoff = min(backoff * 2, policy.maxBackoff)
            }
        }
    }

    /// Asks the sink how far `sent` has settled and stores the cursor when it moved; returns the new cursor.
    private func settle(sent: Int64, cursor: Int64) async throws -> Int64 {
        let settled = min(sent, try await sink.settled(sentThrough: sent))
        guard settled > cursor else { return cursor }
        try await store.setSinkCursor(sink.name, to: settled)
        return settled
    }
}

/// The rate limiter's state, owned by one delivery loop.
struct TokenBucket {
    let limit: OutboxDelivery.RateLimit
    var tokens: Double
    var updated: ContinuousClock.Instant

    init(_ limit: OutboxDelivery.RateLimit) {
        self.limit = limit
        tokens = Double(limit.burst)
        updated = .now
    }

    /// How many alerts may go now (at most `wanted`), and how long to wait when none may.
    mutating func available(upTo wanted: Int, now: ContinuousClock.Instant) -> (Int, Duration) {
        let elapsed = now - updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(Double(limit.burst), tokens + seconds * limit.perSecond)
        updated = now
        let whole = Int(tokens.rounded(.down))
        if whole >= 1 { return (min(wanted, whole), .zero) }
        return (0, .milliseconds(Int64(((1 - tokens) / limit.perSecond * 1000).rounded(.up)) + 1))
    }

    mutating func take(_ count: Int) { tokens -= Double(count) }
}

extension Duration {
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
