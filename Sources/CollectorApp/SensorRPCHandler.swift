import Basics
import EventModel
import Logging
import Metrics
import SensorApp
import Store
import Transport
import WireFormat

/// Serves `patrol.v1.SensorService`: decodes each request and answers with a gRPC status. Garbage gets
/// INVALID_ARGUMENT with the decoder's reason and is counted; it never disturbs other sensors.
///
/// Hellos and statuses go to the store's sensor registry (what `patrolctl sensors` will list) and to metrics.
/// Every reply to a sensor carries the scan directives queued for it (`ScanRegistry`); statuses and committed
/// batches feed the registry the scans' progress and findings.
struct SensorRPCHandler: Sendable {
    let ingest: IngestService
    let store: Store
    let scans: ScanRegistry
    let logger: Logger
    private let malformed = Counter(label: "patrol_ingest_malformed_requests_total")
    private let malformedLog = LogThrottle()
    private let statusMetrics = SensorStatusMetrics()

    init(ingest: IngestService, store: Store, scans: ScanRegistry = ScanRegistry(), logger: Logger) {
        self.ingest = ingest
        self.store = store
        self.scans = scans
        self.logger = logger
    }

    func handle(_ request: RPCRequest, _ peer: PeerInfo) async -> RPCReply {
        switch request.method {
        case RPCMethods.sendBatch:
            let batch: EventBatch
            do {
                batch = try WireCodec.decodeEventBatch(request.payload)
            } catch {
                return refuse(error, peer: peer, method: request.method)
            }
            seen(batch.sensorID)
            switch await ingest.submit(batch) {
            case .success(var ack):
                // Only now, with the batch committed: a scan's findings are what the collector holds.
                scans.record(events: batch.events, sensorID: batch.sensorID)
                ack.commands += scans.directives(for: batch.sensorID)
                return RPCReply(status: .ok, payload: WireCodec.encode(ack))
            case .failure(.overloaded):
                return RPCReply(status: .resourceExhausted, message: "collector ingest queue is full; retry")
            case .failure(.shuttingDown):
                return RPCReply(status: .unavailable, message: "collector is shutting down; retry")
            case .failure(.storeFailed(let reason)):
                return RPCReply(status: .unavailable, message: "collector store failed: \(reason)")
            }
        case RPCMethods.sensorHello:
            let hello: SensorHello
            do {
                hello = try WireCodec.decodeSensorHello(request.payload)
            } catch {
                return refuse(error, peer: peer, method: request.method)
            }
            let level: Logger.Level = hello.hooksFailed.isEmpty ? .info : .warning
            logger.log(
                level: level, "sensor connected",
                metadata: [
                    "sensor": "\(hello.sensorID)", "boot": "\(hello.bootID)", "version": "\(hello.version)",
                    "node": "\(hello.node)", "kernel": "\(hello.kernel)", "peer": "\(peer.remoteAddress)",
                    "hooks_loaded": "\(hello.hooksLoaded.count)", "hooks_failed": "\(hello.hooksFailed.keys.sorted())",
                ])
            do {
                try await store.recordHello(hello, peer: peer.remoteAddress, at: WallClock.now())
            } catch {
                return RPCReply(status: .unavailable, message: "collector store failed: \(error.message)")
            }
            Counter(label: "patrol_sensor_hellos_total", dimensions: [("sensor", hello.sensorID)]).increment()
            seen(hello.sensorID)
            scans.record(hello: hello)
            return commandsReply(for: hello.sensorID)
        case RPCMethods.reportStatus:
            let status: SensorStatus
            do {
                status = try WireCodec.decodeSensorStatus(request.payload)
            } catch {
                return refuse(error, peer: peer, method: request.method)
            }
            do {
                try await store.recordStatus(status, at: WallClock.now())
            } catch {
                return RPCReply(status: .unavailable, message: "collector store failed: \(error.message)")
            }
            statusMetrics.record(status)
            seen(status.sensorID)
            scans.record(status: status, now: WallClock.now())
            return commandsReply(for: status.sensorID)
        default:
            return RPCReply(status: .unimplemented, message: "unknown method '\(request.method)'")
        }
    }

    /// The reply to a hello or status: a `BatchAck` with the sensor's pending commands, or (none pending) an empty
    /// payload as before, which every sensor reads as no commands.
    private func commandsReply(for sensorID: String) -> RPCReply {
        let commands = scans.directives(for: sensorID)
        if commands.isEmpty { return RPCReply(status: .ok) }
        let ack = BatchAck(bootID: "", highestContiguousSequence: 0, commands: commands)
        return RPCReply(status: .ok, payload: WireCodec.encode(ack))
    }

    /// When the collector last heard from a sensor (any request that decoded).
    private func seen(_ sensorID: String) {
        Gauge(label: "patrol_sensor_last_seen_seconds", dimensions: [("sensor", sensorID)])
            .record(Double(WallClock.now()) / 1e9)
    }

    private func refuse(_ error: WireFormatError, peer: PeerInfo, method: String) -> RPCReply {
        malformed.increment()
        if let suppressed = malformedLog.admit() {
            logger.warning(
                "malformed request refused",
                metadata: [
                    "peer": "\(peer.remoteAddress)", "method": "\(method)", "error": "\(error)",
                    "suppressed_since_last": "\(suppressed)",
                ])
        }
        return RPCReply(status: .invalidArgument, message: error.description)
    }
}
