import Basics
import EventModel
import Foundation
import Logging
import Synchronization
import Transport
import WireFormat

/// What the sensor knows about its hooks: unknown until live capture has tried to load (or was not asked to).
struct HookReport: Sendable, Equatable {
    var loaded: [String] = []
    var failed: [String: String] = [:]
}

/// Sends the sensor's `Hello` once its hooks are known and again after every reconnect, then a `SensorStatus`
/// every `interval` (DESIGN.md §3): drops per stage, counters and queue depths, and the missing hooks.
///
/// Both are best effort: a collector that is down gets them when it is back (the batches themselves are what
/// is kept and retried, by `BatchSender`). Both replies are `BatchAck`s whose commands are handed on like those of
/// batch acks (scan directives to the scanner), so an idle sensor gets a scan within one status interval.
struct SensorReporter: Sendable {
    let configuration: SensorConfiguration
    let sender: BatchSender
    let capture: CaptureSlot
    /// The Kubernetes API's pod watcher, when one is configured.
    let kubernetes: KubernetesPodWatcher?
    /// The malware scanner, when configured.
    var scanner: MalwareScanService? = nil
    let logger: Logger

    static let callTimeout: Duration = .seconds(5)

    /// Reports until the calling task is cancelled.
    func run() async {
        // Live capture takes seconds to load; the hello waits for it so it can name the missing hooks.
        var hooks = capture.hooks
        while hooks == nil {
            if Task.isCancelled { return }
            try? await Task.sleep(for: .milliseconds(50))
            hooks = capture.hooks
        }
        guard let hooks else { return }
        var helloConnects: UInt64? = nil
        while !Task.isCancelled {
            // nng reconnects underneath; a changed connect count means a new pipe, possibly a restarted collector
            // that should hear who we are again.
            let connects = sender.client.stats.connects
            if helloConnects != connects {
                if await sendHello(hooks) {
                    helloConnects = connects
                    capture.helloAccepted = true
                }
            }
            if helloConnects != nil { _ = await sendStatus() }
            try? await Task.sleep(for: helloConnects == nil ? min(configuration.statusInterval, .seconds(1)) : configuration.statusInterval)
        }
    }

    func hello(_ hooks: HookReport) -> SensorHello {
        SensorHello(
            sensorID: configuration.sensorID, bootID: configuration.bootID, version: PatrolVersion.current,
            kernel: Self.kernelRelease, hooksLoaded: hooks.loaded, hooksFailed: hooks.failed,
            node: configuration.node)
    }

    /// The status now: every drop stage (zeros included, so a dashboard sees the series before the first drop).
    func status() -> SensorStatus {
        let stats = sender.stats
        let live = capture.value
        let hooks = capture.hooks ?? HookReport()
        var drops = Dictionary(uniqueKeysWithValues: DropStage.allCases.map { ($0, UInt64(0)) })
        if let live { for (stage, count) in live.drops { drops[stage] = count } }
        drops[.spool] = stats.droppedEvents
        var counters: [String: UInt64] = [
            SensorStatus.Counter.eventsAcked: stats.acknowledgedEvents,
            SensorStatus.Counter.batchesAcked: stats.acknowledgedBatches,
            SensorStatus.Counter.batchesSpilled: stats.spilledBatches,
            SensorStatus.Counter.batchesRejected: stats.rejectedBatches,
        ]
        var depths: [String: UInt64] = [
            "memory_batches": UInt64(max(0, stats.memoryDepth)), "spool_batches": UInt64(max(0, stats.spoolDepth)),
            "in_flight_batches": UInt64(max(0, stats.inFlight)),
        ]
        if let live {
            counters[SensorStatus.Counter.eventsCaptured] = live.receivedCount
            counters[SensorStatus.Counter.eventsDelivered] = live.deliveredCount
            counters[SensorStatus.Counter.eventsFolded] = live.foldedCount
            depths["user_queue_records"] = UInt64(max(0, live.queueDepth))
        }
        if let kubernetes {
            let api = kubernetes.stats
            counters[SensorStatus.Counter.kubeAPILists] = UInt64(api.lists)
            counters[SensorStatus.Counter.kubeAPIErrors] = UInt64(api.listFailures + api.watchFailures + api.ownerLookupFailures)
        }
        var scans: [ScanReport] = []
        var scannerReason = ""
        if let scanner {
            scans = scanner.scanReports
            scannerReason = scanner.health.reason ?? ""
            let scan = scanner.stats
            counters[ScannerCounter.health] = ScannerCounter.healthValue(scanner.health)
            counters[ScannerCounter.filesScanned] = scan.filesScanned
            counters[ScannerCounter.filesUnchanged] = scan.filesUnchanged
            counters[ScannerCounter.filesFailed] = scan.filesFailed
            counters[ScannerCounter.findings] = scan.findings
            counters[ScannerCounter.scans] = scan.scansFinished
            counters[ScannerCounter.scansRefused] = scan.scansRefused
        }
        return SensorStatus(
            sensorID: configuration.sensorID, bootID: configuration.bootID, time: WallClock.now(), drops: drops,
            queueDepths: depths, hooksLoaded: hooks.loaded, hooksFailed: hooks.failed, counters: counters, scans: scans,
            scannerHealthReason: scannerReason)
    }

    private func sendHello(_ hooks: HookReport) async -> Bool {
        let ok = await call(RPCMethods.sensorHello, WireCodec.encode(hello(hooks)))
        if ok {
            logger.info(
                "collector accepted hello",
                metadata: ["hooks_loaded": "\(hooks.loaded.count)", "hooks_failed": "\(hooks.failed.keys.sorted())"])
        }
        return ok
    }

    /// The last word before the sensor stops: the hello if the collector has not had it yet, then a status,
    /// so the registry and metrics keep this boot's final numbers.
    func finalReport() async {
        if !capture.helloAccepted {
            guard await sendHello(capture.hooks ?? HookReport()) else { return }
            capture.helloAccepted = true
        }
        await sendStatus()
    }

    @discardableResult
    func sendStatus() async -> Bool {
        await call(RPCMethods.reportStatus, WireCodec.encode(status()))
    }

    private func call(_ method: String, _ payload: [UInt8]) async -> Bool {
        do {
            let reply = try await sender.client.call(RPCRequest(method: method, payload: payload), timeout: Self.callTimeout)
            guard reply.status == .ok else {
                logger.warning(
                    "collector refused a sensor report",
                    metadata: ["method": "\(method)", "status": "\(reply.status)", "message": "\(reply.message)"])
                return false
            }
            // An older collector answers with an empty payload: no commands.
            if !reply.payload.isEmpty, let scanner {
                do {
                    for command in try WireCodec.decodeBatchAck(reply.payload).commands { scanner.handle(command) }
                } catch {
                    logger.warning(
                        "collector reply does not decode", metadata: ["method": "\(method)", "error": "\(error)"])
                }
            }
            return true
        } catch {
            logger.debug("sensor report not delivered; will retry", metadata: ["method": "\(method)", "error": "\(error)"])
            return false
        }
    }

    /// `uname -r`, e.g. `6.18.0-amd64`.
    static let kernelRelease: String = {
        var name = utsname()
        guard uname(&name) == 0 else { return "" }
        return withUnsafeBytes(of: &name.release) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }()
}
