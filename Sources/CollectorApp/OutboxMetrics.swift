import Logging
import Metrics
import ServiceLifecycle
import Store

/// Exports how far each sink is behind the outbox (REFERENCE §8: lag by sink, outbox depth), read from the
/// store every few seconds. The delivery loop sets the same `patrol_sink_backlog` gauge after every batch; this
/// service keeps it current while a sink is stuck in a long retry and the loop is asleep.
///
/// Positions only grow and are handed out one per alert, so `head - cursor` is the number of alerts a sink
/// has not delivered yet (its cursor only moves over alerts the sink has settled, see `AlertSink.settled`).
struct OutboxMetricsService: Service {
    let store: Store
    let sinks: [String]
    let interval: Duration
    let logger: Logger

    init(store: Store, sinks: [String], interval: Duration = .seconds(5), logger: Logger) {
        self.store = store
        self.sinks = sinks
        self.interval = interval
        self.logger = logger
    }

    func run() async throws {
        let backlog = Dictionary(
            uniqueKeysWithValues: sinks.map { ($0, Gauge(label: "patrol_sink_backlog", dimensions: [("sink", $0)])) })
        let depth = Gauge(label: "patrol_outbox_depth")
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let head = try await store.outboxHead()
                    var slowest = head
                    for sink in sinks {
                        let cursor = try await store.sinkCursor(sink)
                        backlog[sink]?.record(Double(max(0, head - cursor)))
                        slowest = min(slowest, cursor)
                    }
                    depth.record(Double(max(0, head - slowest)))
                } catch {
                    logger.debug("cannot read outbox positions for metrics", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
