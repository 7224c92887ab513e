import Basics
import EventModel
import WireFormat

/// The identifying fields of an `EventBatch`, without its events.
public struct BatchHeader: Sendable, Hashable {
    public var sensorID: String
    public var bootID: String
    public var sequence: UInt64
    public var compressed: Bool
    public var eventCount: Int

    public init(sensorID: String, bootID: String, sequence: UInt64, compressed: Bool = false, eventCount: Int) {
        self.sensorID = sensorID
        self.bootID = bootID
        self.sequence = sequence
        self.compressed = compressed
        self.eventCount = eventCount
    }
}

/// A batch as the collector receives it: the header, read without decoding the events, and the bytes.
public struct ReceivedBatch: Sendable, Hashable {
    public var header: BatchHeader
    /// The protobuf `EventBatch`, as sent.
    public var payload: [UInt8]

    public init(header: BatchHeader, payload: [UInt8]) {
        self.header = header
        self.payload = payload
    }

    /// Decodes the events (WireFormat, with its validation).
    public func decode() throws(TransportError) -> EventBatch {
        do {
            return try Envelope.decodeBatch(payload)
        } catch {
            throw TransportError(.protocolError, "batch \(header.sequence) of \(header.sensorID): \(error)")
        }
    }
}

/// The batch exchange of DESIGN.md §3 on top of the RPC layer: `SendBatch(EventBatch) -> BatchAck`.
///
/// Collector side, inside an `RPCServer` handler:
/// ```swift
/// let batch = try BatchProtocol.decodeBatch(request)            // header only: cheap
/// if dedup.isDuplicate(batch.header) { return BatchProtocol.reply(dedup.ack(for: batch.header)) }
/// let events = try batch.decode()                               // the events
/// try await store.persist(events, dedupState: ...)              // durably handed on
/// dedup.record(batch.header)
/// return BatchProtocol.reply(dedup.ack(for: batch.header))   // the ack goes out only now
/// ```
public enum BatchProtocol {
    public static let sendBatchMethod = RPCMethods.sendBatch

    /// Decodes the request of a `SendBatch` call.
    public static func decodeBatch(_ request: RPCRequest) throws(TransportError) -> ReceivedBatch {
        do {
            return ReceivedBatch(header: try Envelope.decodeBatchHeader(request.payload), payload: request.payload)
        } catch {
            throw TransportError(.protocolError, "\(request.method): \(error)")
        }
    }

    /// Encodes events once, as `EventBatch.events` entries, for `BatchSender.submit(encodedEvents:eventCount:)`.
    public static func encodeEvents(_ events: [Event]) -> [UInt8] {
        Envelope.encodeEvents(events)
    }

    /// Encodes a batch as the sender puts it on the wire: a protobuf `EventBatch`.
    public static func encodeBatch(_ header: BatchHeader, encodedEvents: [UInt8]) -> [UInt8] {
        Envelope.encodeBatch(header, encodedEvents: encodedEvents)
    }

    /// The OK reply carrying `ack`.
    public static func reply(_ ack: BatchAck) -> RPCReply {
        RPCReply(status: .ok, payload: Envelope.encode(ack))
    }

    /// The INVALID_ARGUMENT reply for a batch that does not decode; the sender counts it and moves on.
    public static func rejection(_ error: any Error) -> RPCReply {
        RPCReply(status: .invalidArgument, message: (error as? TransportError)?.message ?? "\(error)")
    }

    public static func decodeAck(_ reply: RPCReply) throws(TransportError) -> BatchAck {
        do {
            return try Envelope.decodeAck(reply.payload)
        } catch {
            throw TransportError(.protocolError, "batch ack: \(error)")
        }
    }
}
