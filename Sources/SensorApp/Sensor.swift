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
    private let kubernetes: KubernetesPodWatcher?
    private let capture = CaptureSlot()
    /// The malware scanner, when configured; its findings go out through `sender` like any event.
    public let scanner: MalwareScanService?

    /// - Parameters:
    ///   - containerResolver: maps cgroup ids of live events to containers (default: the node's runtimes).
    ///   - kubernetes: the pod watcher feeding the resolver's labels and owners, whose counters the status reports.
    ///     It runs as its own service; the sensor only reads its counters.
    public init(
        configuration: SensorConfiguration, logger: Logger,
        containerResolver: any ContainerResolving = ContainerResolver(), kubernetes: KubernetesPodWatcher? = nil
    ) throws {
        self.configuration = configuration
        self.containerResolver = containerResolver
        self.kubernetes = kubernetes
        var logger = logger
        logger[metadataKey: "sensor"] = "\(configuration.sensorID)"
        self.logger = logger
        let tls = configuration.tls.map {
            TLSConfiguration(certificateFile: $0.certificate, privateKeyFile: $0.key, caFile: $0.ca)
        }
        let scanner = configuration.malwareScan.map {
            MalwareScanService(configuration: $0, node: configuration.node, pods: kubernetes?.index, logger: logger)
        }
        self.scanner = scanner
        sender = try BatchSender(
            configuration: BatchSenderConfiguration(
                client: RPCClientConfiguration(address: configuration.collector, tls: tls),
                sensorID: configuration.sensorID, bootID: configuration.bootID,
                memoryQueueLimit: configuration.memoryQueueBatches, spoolDirectory: configuration.spoolDirectory,
                spoolMaxBytes: configuration.spoolMaxBytes),
            logger: logger,
            onAck: { ack in
                // Directives ride on acks; the scan ones are the scanner's (the others are not acted on yet).
                for command in ack.commands { scanner?.handle(command) }
            })
    }

    public var stats: BatchSenderStats { sender.stats }

    /// The live capture once it is running (nil with --replay, --no-capture, or when BPF could not load).
    public var liveCapture: LiveCapture? { capture.value }

    /// The status the sensor would report now (drops, counters, queue depths, hooks).
    public var status: SensorStatus { reporter.status() }

    /// Whether live capture has settled (loaded or not asked for) and the collector accepted the hello.
    public var isReady: Bool { capture.hooks != nil && capture.helloAccepted }

    private var reporter: SensorReporter {
        SensorReporter(
            configuration: configuration, sender: sender, capture: capture, kubernetes: kubernetes, scanner: scanner,
            logger: logger)
    }

    public func run() async throws {
        let reporter = self.reporter
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await sender.run() }
            group.addTask { await cancelWhenGracefulShutdown { await reporter.run() } }
            if let scanner {
                // Scanning runs beside capture: a missing database leaves the scanner unhealthy, never the sensor
                // stopped.
                group.addTask { await cancelWhenGracefulShutdown { try? await scanner.run() } }
                group.addTask { [sender] in
                    for await events in scanner.events { await sender.submit(events: events) }
                }
            }
            // The reporter runs until the sensor is done, whichever way that is.
            defer { group.cancelAll() }
            do {
                try await produce()
            } catch {
                // Unblock the sender so the error ends the sensor instead of hanging it.
                sender.close()
                throw error
            }
            if configuration.exitWhenDone {
                while !(await sender.flush(timeout: .seconds(5))) {
                    logger.info("waiting for the collector to ack the rest", metadata: ["pending": "\(sender.pendingBatches)"])
                }
                await reporter.finalReport()
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
                // A last status, so the collector keeps this boot's final counters.
                await reporter.finalReport()
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

    private func produce() async throws {
        guard let path = configuration.replayPath else {
            try await captureLive()
            return
        }
        capture.hooks = HookReport()
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

    /// Live capture until graceful shutdown. Hooks that cannot load or attach are logged by LiveCapture, by
    /// name and with libbpf's reason, and reported in the hello and every status; the rest run. A sensor that
    /// cannot load any hook throws `SensorError.captureUnavailable` unless `requireCapture` is off, in which
    /// case it keeps running (it still connects, reports and delivers spooled batches).
    private func captureLive() async throws {
        guard configuration.liveCapture else {
            capture.hooks = HookReport()
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
            let failure = SensorError(
                .captureUnavailable, "live capture unavailable: no BPF hook could be loaded and attached",
                cause: .error(error))
            logger.error(
                "live capture unavailable", metadata: ["error": "\(error)", "exits": "\(configuration.requireCapture)"])
            // A sensor that captures nothing is blind; by default it stops so the failure is visible (a
            // DaemonSet pod in CrashLoopBackOff) instead of looking healthy while seeing nothing.
            if configuration.requireCapture { throw failure }
            capture.hooks = HookReport(failed: ["*": failure.description])
            return
        }
        capture.value = live
        capture.hooks = HookReport(loaded: live.hooksLoaded, failed: live.hooksFailed)
        let (sender, scanner) = (self.sender, self.scanner)
        await cancelWhenGracefulShutdown {
            await live.run(batchSize: configuration.batchSize) { events in
                // Files a container wrote and then ran get scanned (docs/malware.md).
                scanner?.observe(events)
                await sender.submit(events: events)
            }
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

/// Holds the running capture and what the reporter learned, for status reporting (Sensor is a struct shared
/// with the service group).
final class CaptureSlot: Sendable {
    private struct State {
        var capture: LiveCapture?
        var hooks: HookReport?
        var helloAccepted = false
    }
    private let state = Mutex(State())

    var value: LiveCapture? {
        get { state.withLock { $0.capture } }
        set { state.withLock { $0.capture = newValue } }
    }

    /// Which hooks loaded and which failed; nil until live capture has tried (empty when it was not asked to).
    var hooks: HookReport? {
        get { state.withLock { $0.hooks } }
        set { state.withLock { $0.hooks = newValue } }
    }

    /// Whether the collector has accepted this boot's hello.
    var helloAccepted: Bool {
        get { state.withLock { $0.helloAccepted } }
        set { state.withLock { $0.helloAccepted = newValue } }
    }
}
