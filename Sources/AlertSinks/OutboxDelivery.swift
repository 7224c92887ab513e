import Basics
import EventModel
import Logging
import Metrics
import ServiceLifecycle
import Store

/// Wakes outbox readers when new alerts were committed, so they don't have to poll tightly.
public final class OutboxSignal: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func notify() { continuation.yield() }

    /// Waits for a notification or `timeout`, whichever comes first.
    func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [stream] in
                var iterator = stream.makeAsyncIterator()
                _ = await iterator.next()
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }
}

/// Delivers the outbox to one sink: reads after the sink's cursor, delivers a batch, then advances the
/// cursor. A failing sink retries with exponential backoff and jitter and delays only itself.
///
/// On graceful shutdown it keeps delivering until it has caught up with everything committed so far.
public struct OutboxDelivery: Service {
    public struct Policy: Sendable {
        public var batchSize: Int
        public var initialBackoff: Duration
        public var maxBackoff: Duration
        /// How long to keep retrying a failing sink after shutdown was requested.
        public var shutdownGrace: Duration

        public init(
            batchSize: Int = 500, initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(30),
            shutdownGrace: Duration = .seconds(10)
        ) {
            self.batchSize = batchSize
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
            self.shutdownGrace = shutdownGrace
        }
    }

    private let sink: any AlertSink
    private let store: Store
    private let signal: OutboxSignal
    private let policy: Policy
    private let logger: Logger
    private let delivered: Counter
    private let failures: Counter

    public init(sink: any AlertSink, store: Store, signal: OutboxSignal, policy: Policy = Policy(), logger: Logger) {
        self.sink = sink
        self.store = store
        self.signal = signal
        self.policy = policy
        var logger = logger
        logger[metadataKey: "sink"] = "\(sink.name)"
        self.logger = logger
        self.delivered = Counter(label: "patrol_sink_alerts_sent_total", dimensions: [("sink", sink.name)])
        self.failures = Counter(label: "patrol_sink_failures_total", dimensions: [("sink", sink.name)])
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await deliverLoop()
        } onGracefulShutdown: {
            signal.notify()
        }
    }

    private func deliverLoop() async {
        var cursor: Int64 = (try? await store.sinkCursor(sink.name)) ?? 0
        var backoff = policy.initialBackoff
        var shutdownDeadline: ContinuousClock.Instant?
        while !Task.isCancelled {
            if Task.isShuttingDownGracefully, shutdownDeadline == nil {
                shutdownDeadline = .now + policy.shutdownGrace
            }
            do {
                let entries = try await store.outbox(after: cursor, limit: policy.batchSize)
                if entries.isEmpty {
                    if shutdownDeadline != nil {
                        try? await sink.flush()
                        return
                    }
                    await signal.wait(timeout: .milliseconds(250))
                    continue
                }
                try await sink.deliver(entries.map(\.alert))
                cursor = entries.last!.position
                try await store.setSinkCursor(sink.name, to: cursor)
                delivered.increment(by: entries.count)
                backoff = policy.initialBackoff
            } catch {
                failures.increment()
                logger.warning("sink delivery failed; will retry", metadata: ["error": "\(error)", "cursor": "\(cursor)"])
                if let deadline = shutdownDeadline, ContinuousClock.now >= deadline {
                    logger.error("sink still failing at shutdown; undelivered alerts stay in the outbox for next start")
                    return
                }
                let jitter = Double.random(in: 0.5...1.0)
                try? await Task.sleep(for: backoff * jitter)
                backoff = min(backoff * 2, policy.maxBackoff)
            }
        }
    }
}
