import Basics
import EventModel
import Logging
import Metrics
import Transport
import WireFormat

/// Serves `patrol.v1.SensorService`: decodes each request and answers with a gRPC status. Garbage gets
/// INVALID_ARGUMENT with the decoder's reason and is counted; it never disturbs other sensors.
struct SensorRPCHandler: Sendable {
    let ingest: IngestService
    let logger: Logger
    private let malformed = Counter(label: "patrol_ingest_malformed_requests_total")
    private let malformedLog = LogThrottle()

    init(ingest: IngestService, logger: Logger) {
        self.ingest = ingest
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
            switch await ingest.submit(batch) {
            case .success(let ack):
                return RPCReply(status: .ok, payload: WireCodec.encode(ack))
            case .failure(.overloaded):
                return RPCReply(status: .resourceExhausted, message: "collector ingest queue is full; retry")
            case .failure(.shuttingDown):
                return RPCReply(status: .unavailable, message: "collector is shutting down; retry")
            case .failure(.storeFailed(let reason)):
                return RPCReply(status: .unavailable, message: "collector store failed: \(reason)")
            }
        case RPCMethods.sensorHello:
            do {
                let hello = try WireCodec.decodeSensorHello(request.payload)
                logger.info(
                    "sensor connected",
                    metadata: [
                        "sensor": "\(hello.sensorID)", "boot": "\(hello.bootID)", "version": "\(hello.version)",
                        "peer": "\(peer.remoteAddress)", "hooks_failed": "\(hello.hooksFailed.keys.sorted())",
                    ])
                return RPCReply(status: .ok)
            } catch {
                return refuse(error, peer: peer, method: request.method)
            }
        case RPCMethods.reportStatus:
            do {
                let status = try WireCodec.decodeSensorStatus(request.payload)
                for (stage, count) in status.drops {
                    Gauge(label: "patrol_sensor_drops", dimensions: [("sensor", status.sensorID), ("stage", stage.rawValue)])
                        .record(Double(count))
                }
                return RPCReply(status: .ok)
            } catch {
                return refuse(error, peer: peer, method: request.method)
            }
        default:
            return RPCReply(status: .unimplemented, message: "unknown method '\(request.method)'")
        }
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
