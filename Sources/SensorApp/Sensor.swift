import Basics
import EventModel
import Logging
import ServiceLifecycle
import Transport
import WireFormat

/// The sensor as a Service: produces events (a replay now; live eBPF capture with the sensor issue),
/// batches them and hands the batches to the `BatchSender`, which delivers, retries and spools.
public struct Sensor: Service {
    public let configuration: SensorConfiguration
    private let sender: BatchSender
    private let logger: Logger

    public init(configuration: SensorConfiguration, logger: Logger) throws {
        self.configuration = configuration
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
                    sender.close()
                }
            }
        }
    }

    private func produce() async throws {
        guard let path = configuration.replayPath else {
            logger.notice("no event source configured; live capture is not available in this build")
            return
        }
        let source = ReplaySource(path: path, repeatCount: configuration.replayRepeat)
        let node = configuration.node
        try await source.forEachChunk(chunkSize: configuration.batchSize) { chunk in
            var events = chunk
            for index in events.indices where events[index].node.isEmpty { events[index].node = node }
            await sender.submit(events: events)
        }
        logger.info("replay queued", metadata: ["path": "\(path)", "repeat": "\(configuration.replayRepeat)"])
    }
}
