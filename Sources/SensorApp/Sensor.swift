import Basics
import EventModel
import Logging
import ServiceLifecycle
import Transport
import WireFormat
import Synchronization

/// The sensor as a Service: produces events (a replay now; live eBPF capture with the sensor issue),
/// batches them and hands the batches to the `BatchSender`, which delivers, retries and spools.
public struct Sensor: Service {
    public let configuration: SensorConfiguration
    private let sender: BatchSender
    private let logger: Logger
    private let containerResolver: any ContainerResolving
    private let capture = CaptureSlot()

    /// - Parameter containerResolver: maps cgroup ids of live events to containers (default: the node's runtimes).
    public init(
        configuration: SensorConfiguration, logger: Logger,
        containerResolver: any ContainerResolving = ContainerResolver()
    ) throws {
        self.configuration = configuration
        self.containerResolver = containerResolver
        var logger = logger
        logger[metadataKey: "sensor"] = "\(configuration.sensorID)"
        self.logger = logger
        let tls = configuration.tls.map {
            TLSConfiguration(certificateFile: $0.certificate, privateKeyFile: $0.key, caFile: $0.ca)
        }
        sender = try BatchSender(
            configuration: BatchSenderConfiguration(
                client: RPCClientConfiguration(address: configuration.collector, tls: tls),
                sensorID: configuration.sensorID, bootID: configuration.bootID,
                memoryQueueLimit: configuration.memoryQueueBatches, spoolDirectory: configuration.spoolDirectory,
                spoolMaxBytes: configuration.spoolMaxBytes),
            logger: logger)
    }

    public var stats: BatchSenderStats { sender.stats }

    /// The live capture once it is running (nil with --replay, --no-capture, or when BPF could not load).
    public var liveCapture: LiveCapture? { capture.value }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await sender.run() }
            group.addTask {
                try await produce()
                if configuration.exitWhenDone {
                    while !(await sender.flush(timeout: .seconds(5))) {
                        logger.info("waiting for the collector to ack the rest", metadata: ["pending": "\(sender.pendingBatches)"])
                    }
                    let stats = sender.stats
                    logger.info(
                        "replay delivered",
                        metadata: [
                            "events_acked": "\(stats.acknowledgedEvents)", "batches_acked": "\(stats.acknowledgedBatches)",
                            "dropped_events": "\(stats.droppedEvents)",
                        ])
                    sender.close()
                } else {
                    try? await gracefulShutdown()
                    _ = await sender.flush(timeout: .seconds(5))
                    let stats = sender.stats
                    logger.info(
                        "sensor stopped",
                        metadata: [
                            "events_acked": "\(stats.acknowledgedEvents)", "dropped_events": "\(stats.droppedEvents)",
                        ])
                    sender.close()
                }
            }
        }
    }

    private func produce() async throws {
        guard let path = configuration.replayPath else {
            try await captureLive()
            return
        }
        let source = ReplaySource(path: path, repeatCount: configuration.replayRepeat)
        let node = configuration.node
        let spooling = configuration.spoolDirectory != nil
        try await source.forEachChunk(chunkSize: configuration.batchSize) { chunk in
            var events = chunk
            for index in events.indices where events[index].node.isEmpty { events[index].node = node }
            // A replay can wait, unlike live capture: without a spool it waits for room in memory instead of
            // overflowing the queue and dropping batches.
            if !spooling { await sender.waitForMemoryCapacity() }
            await sender.submit(events: events)
        }
        logger.info("replay queued", metadata: ["path": "\(path)", "repeat": "\(configuration.replayRepeat)"])
    }

    /// Live capture until graceful shutdown. A sensor that cannot load BPF at all says why and keeps
    /// running (it still connects and delivers spooled batches); missing hooks are logged by LiveCapture.
    private func captureLive() async throws {
        guard configuration.liveCapture else {
            logger.notice("live capture disabled (--no-capture) and no --replay: no events will be produced")
            return
        }
        let live: LiveCapture
        // Loading runs the verifier over every program (seconds of CPU): keep it off the cooperative pool.
        let loader = BlockingExecutor(name: "bpf-load")
        defer { loader.shutdown() }
        do {
            let (capture, node, resolver, logger) = (configuration.capture, configuration.node, containerResolver, logger)
            live = try await loader.run {
                try LiveCapture(configuration: capture, node: node, resolver: resolver, logger: logger)
            }
        } catch {
            logger.error("live capture unavailable", metadata: ["error": "\(error)"])
            return
        }
        capture.value = live
        let sender = self.sender
        await cancelWhenGracefulShutdown {
            await live.run(batchSize: configuration.batchSize) { events in await sender.submit(events: events) }
        }
        logger.info(
            "live capture stopped",
            metadata: [
                "received": "\(live.receivedCount)", "queued": "\(live.queueDepth)",
                "delivered": "\(live.deliveredCount)", "folded": "\(live.foldedCount)",
                "drops": "\(live.drops.map { "\($0.key.rawValue)=\($0.value)" }.sorted())",
            ])
    }
}

/// Holds the running capture for status reporting (Sensor is a struct shared with the service group).
final class CaptureSlot: Sendable {
    private let slot = Mutex<LiveCapture?>(nil)
    var value: LiveCapture? {
        get { slot.withLock { $0 } }
        set { slot.withLock { $0 = newValue } }
    }
}
