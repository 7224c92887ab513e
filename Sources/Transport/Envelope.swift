import EventModel
import WireFormat

/// The one seam between Transport and the wire encoding (proto/patrol/v1, through `WireFormat`).
///
/// RPC envelopes and acks go through `WireCodec`. Batches are written here as protobuf `EventBatch`
/// bytes: the header fields (1–4) followed by already encoded `events` entries (field 5). Protobuf
/// concatenation makes that a valid `EventBatch`, so a sensor can encode its events once, outside the
/// sender's lock, and the sender only prepends the header when it assigns the sequence. The receiver
/// reads the header without decoding the events, so duplicates cost no event decoding.
enum Envelope {
    // MARK: RPC envelopes

    static func encode(_ request: RPCRequest) -> [UInt8] { WireCodec.encode(request) }

    static func decodeRequest(_ bytes: [UInt8]) throws(EnvelopeError) -> RPCRequest {
        do { return try WireCodec.decodeRPCRequest(bytes) } catch { throw EnvelopeError("\(error)") }
    }

    static func encode(_ reply: RPCReply) -> [UInt8] { WireCodec.encode(reply) }

    static func decodeReply(_ bytes: [UInt8]) throws(EnvelopeError) -> RPCReply {
        do { return try WireCodec.decodeRPCReply(bytes) } catch { throw EnvelopeError("\(error)") }
    }

    // MARK: Batches

    static let eventsTag: UInt8 = 0x2A  // field 5, length-delimited

    /// `events` encoded as `EventBatch.events` entries (a batch with an empty header encodes to exactly that).
    static func encodeEvents(_ events: [Event]) -> [UInt8] {
        WireCodec.encode(EventBatch(sensorID: "", bootID: "", sequence: 0, events: events))
    }

    static func encodeBatch(_ header: BatchHeader, encodedEvents: [UInt8]) -> [UInt8] {
        var writer = ProtobufWriter(
            capacity: encodedEvents.count + header.sensorID.utf8.count + header.bootID.utf8.count + 32)
        writer.string(field: 1, header.sensorID)
        writer.string(field: 2, header.bootID)
        writer.varint(field: 3, header.sequence)
        if header.compressed { writer.varint(field: 4, 1) }
        writer.bytes.append(contentsOf: encodedEvents)
        return writer.bytes
    }

    /// Reads an `EventBatch`'s header and counts its events without decoding them.
    static func decodeBatchHeader(_ bytes: [UInt8]) throws(EnvelopeError) -> BatchHeader {
        var reader = ProtobufScanner(bytes)
        var sensorID = ""
        var bootID = ""
        var sequence: UInt64 = 0
        var compressed = false
        var events = 0
        while let (field, wireType) = try reader.nextTag() {
            switch (field, wireType) {
            case (1, 2): sensorID = try reader.string("EventBatch.sensor_id")
            case (2, 2): bootID = try reader.string("EventBatch.boot_id")
            case (3, 0): sequence = try reader.varint("EventBatch.sequence")
            case (4, 0): compressed = try reader.varint("EventBatch.compressed") != 0
            case (5, 2):
                try reader.skip(wireType: 2, "EventBatch.events[\(events)]")
                events += 1
            default: try reader.skip(wireType: wireType, "EventBatch field \(field)")
            }
        }
        guard !sensorID.isEmpty else { throw EnvelopeError("EventBatch.sensor_id is empty") }
        guard !bootID.isEmpty else { throw EnvelopeError("EventBatch.boot_id is empty") }
        guard sequence > 0 else { throw EnvelopeError("EventBatch.sequence is 0; sequences start at 1") }
        return BatchHeader(
            sensorID: sensorID, bootID: bootID, sequence: sequence, compressed: compressed, eventCount: events)
    }

    static func decodeBatch(_ bytes: [UInt8]) throws(EnvelopeError) -> EventBatch {
        do { return try WireCodec.decodeEventBatch(bytes) } catch { throw EnvelopeError("\(error)") }
    }

    static func encode(_ ack: BatchAck) -> [UInt8] { WireCodec.encode(ack) }

    static func decodeAck(_ bytes: [UInt8]) throws(EnvelopeError) -> BatchAck {
        do { return try WireCodec.decodeBatchAck(bytes) } catch { throw EnvelopeError("\(error)") }
    }
}

/// Why bytes did not decode, with the field and offset.
struct EnvelopeError: Error, Sendable, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Just enough protobuf writing for a batch header.
struct ProtobufWriter {
    var bytes: [UInt8]
    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }
    mutating func rawVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }
    mutating func varint(field: UInt64, _ value: UInt64) {
        rawVarint(field << 3)
        rawVarint(value)
    }
    mutating func string(field: UInt64, _ value: String) {
        guard !value.isEmpty else { return }
        rawVarint(field << 3 | 2)
        rawVarint(UInt64(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }
}

/// Just enough protobuf reading to find a batch header; every length is checked.
struct ProtobufScanner {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func rawVarint(_ what: String) throws(EnvelopeError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count else { throw EnvelopeError("\(what): varint truncated at byte \(offset)") }
            guard shift < 64 else { throw EnvelopeError("\(what): varint longer than 10 bytes at byte \(offset)") }
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }

    mutating func nextTag() throws(EnvelopeError) -> (UInt64, UInt64)? {
        guard offset < bytes.count else { return nil }
        let tag = try rawVarint("tag")
        guard tag >> 3 > 0 else { throw EnvelopeError("field number 0 at byte \(offset)") }
        return (tag >> 3, tag & 7)
    }

    mutating func varint(_ what: String) throws(EnvelopeError) -> UInt64 { try rawVarint(what) }

    mutating func lengthDelimited(_ what: String) throws(EnvelopeError) -> Range<Int> {
        let length = try rawVarint(what + " length")
        guard length <= UInt64(bytes.count - offset) else {
            throw EnvelopeError(
                "\(what): length \(length) runs past the end (\(bytes.count - offset) bytes left at byte \(offset))")
        }
        defer { offset += Int(length) }
        return offset..<(offset + Int(length))
    }

    mutating func string(_ what: String) throws(EnvelopeError) -> String {
        let range = try lengthDelimited(what)
        guard let text = String(validating: bytes[range], as: UTF8.self) else {
            throw EnvelopeError("\(what) is not valid UTF-8")
        }
        return text
    }

    mutating func skip(wireType: UInt64, _ what: String) throws(EnvelopeError) {
        switch wireType {
        case 0: _ = try rawVarint(what)
        case 1, 5:
            let width = wireType == 1 ? 8 : 4
            guard bytes.count - offset >= width else { throw EnvelopeError("\(what): truncated at byte \(offset)") }
            offset += width
        case 2: _ = try lengthDelimited(what)
        default: throw EnvelopeError("\(what): unsupported wire type \(wireType) at byte \(offset)")
        }
    }
}
