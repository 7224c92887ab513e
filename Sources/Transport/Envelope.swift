import EventModel

/// The one seam between Transport and the wire encoding of the RPC envelopes and batch messages.
///
/// Until `WireFormat` (protobuf) is merged, this is a small length-prefixed binary format private to
/// Transport. Switching to protobuf is a matter of replacing the bodies below with `WireCodec` calls
/// (`WireCodec.encode(_:)`, `WireCodec.decodeRPCRequest(_:)`, ...); nothing else in the module knows the bytes.
enum Envelope {
    static let requestMagic: [UInt8] = Array("PRQ1".utf8)
    static let replyMagic: [UInt8] = Array("PRP1".utf8)
    static let batchMagic: [UInt8] = Array("PEB1".utf8)
    static let ackMagic: [UInt8] = Array("PBA1".utf8)

    // MARK: RPC envelopes

    static func encode(_ request: RPCRequest) -> [UInt8] {
        var writer = ByteWriter(capacity: request.payload.count + request.method.utf8.count + 12)
        writer.append(requestMagic)
        writer.appendString(request.method)
        writer.appendBytes(request.payload)
        return writer.bytes
    }

    static func decodeRequest(_ bytes: [UInt8]) throws(EnvelopeError) -> RPCRequest {
        var reader = ByteReader(bytes, what: "RPC request")
        try reader.expectMagic(requestMagic)
        let method = try reader.readString(field: "method")
        let payload = try reader.readBytes(field: "payload")
        try reader.expectEnd()
        guard !method.isEmpty else { throw EnvelopeError("RPC request has an empty method name") }
        return RPCRequest(method: method, payload: payload)
    }

    static func encode(_ reply: RPCReply) -> [UInt8] {
        var writer = ByteWriter(capacity: reply.payload.count + reply.message.utf8.count + 16)
        writer.append(replyMagic)
        writer.appendUInt32(UInt32(bitPattern: reply.status.rawValue))
        writer.appendString(reply.message)
        writer.appendBytes(reply.payload)
        return writer.bytes
    }

    static func decodeReply(_ bytes: [UInt8]) throws(EnvelopeError) -> RPCReply {
        var reader = ByteReader(bytes, what: "RPC reply")
        try reader.expectMagic(replyMagic)
        let raw = Int32(bitPattern: try reader.readUInt32(field: "status"))
        guard let status = RPCStatus(rawValue: raw) else {
            throw EnvelopeError("RPC reply has unknown status code \(raw)")
        }
        let message = try reader.readString(field: "message")
        let payload = try reader.readBytes(field: "payload")
        try reader.expectEnd()
        return RPCReply(status: status, message: message, payload: payload)
    }

    // MARK: Batches

    static func encodeBatch(_ header: BatchHeader, encodedEvents: [UInt8]) -> [UInt8] {
        var writer = ByteWriter(capacity: encodedEvents.count + header.sensorID.utf8.count + header.bootID.utf8.count + 40)
        writer.append(batchMagic)
        writer.appendString(header.sensorID)
        writer.appendString(header.bootID)
        writer.appendUInt64(header.sequence)
        writer.appendUInt8(header.compressed ? 1 : 0)
        writer.appendUInt32(UInt32(truncatingIfNeeded: header.eventCount))
        writer.appendBytes(encodedEvents)
        return writer.bytes
    }

    static func decodeBatch(_ bytes: [UInt8]) throws(EnvelopeError) -> ReceivedBatch {
        var reader = ByteReader(bytes, what: "event batch")
        try reader.expectMagic(batchMagic)
        let sensorID = try reader.readString(field: "sensor id")
        let bootID = try reader.readString(field: "boot id")
        let sequence = try reader.readUInt64(field: "sequence")
        let compressed = try reader.readUInt8(field: "compressed") != 0
        let count = Int(try reader.readUInt32(field: "event count"))
        let events = try reader.readBytes(field: "events")
        try reader.expectEnd()
        guard sequence > 0 else { throw EnvelopeError("event batch has sequence 0; sequences start at 1") }
        guard !sensorID.isEmpty, !bootID.isEmpty else { throw EnvelopeError("event batch lacks sensor id or boot id") }
        return ReceivedBatch(
            header: BatchHeader(
                sensorID: sensorID, bootID: bootID, sequence: sequence, compressed: compressed, eventCount: count),
            encodedEvents: events)
    }

    static func encode(_ ack: BatchAck) -> [UInt8] {
        // The interim format carries no commands; protobuf (WireFormat) will.
        var writer = ByteWriter(capacity: ack.bootID.utf8.count + 20)
        writer.append(ackMagic)
        writer.appendString(ack.bootID)
        writer.appendUInt64(ack.highestContiguousSequence)
        return writer.bytes
    }

    static func decodeAck(_ bytes: [UInt8]) throws(EnvelopeError) -> BatchAck {
        var reader = ByteReader(bytes, what: "batch ack")
        try reader.expectMagic(ackMagic)
        let bootID = try reader.readString(field: "boot id")
        let highest = try reader.readUInt64(field: "highest contiguous sequence")
        try reader.expectEnd()
        return BatchAck(bootID: bootID, highestContiguousSequence: highest)
    }
}

/// Why bytes did not decode, with the field and offset.
struct EnvelopeError: Error, Sendable, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct ByteWriter {
    var bytes: [UInt8]
    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }
    mutating func append(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }
    mutating func appendUInt8(_ value: UInt8) { bytes.append(value) }
    mutating func appendUInt32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
    mutating func appendUInt64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
    mutating func appendString(_ value: String) {
        let utf8 = Array(value.utf8)
        appendUInt32(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }
    mutating func appendBytes(_ value: [UInt8]) {
        appendUInt32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }
}

struct ByteReader {
    let bytes: [UInt8]
    let what: String
    var offset = 0
    init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.what = what
    }

    private func need(_ count: Int, _ field: String) throws(EnvelopeError) {
        guard count >= 0, bytes.count - offset >= count else {
            throw EnvelopeError(
                "\(what) truncated reading \(field) at byte \(offset): need \(count), have \(bytes.count - offset)")
        }
    }
    mutating func expectMagic(_ magic: [UInt8]) throws(EnvelopeError) {
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            let head = bytes.prefix(8).map { String($0, radix: 16) }.joined(separator: " ")
            throw EnvelopeError(
                "\(what) does not start with the expected magic \(String(decoding: magic, as: UTF8.self)) "
                    + "(got \(bytes.count) bytes beginning [\(head)])")
        }
        offset = magic.count
    }
    mutating func readUInt8(field: String) throws(EnvelopeError) -> UInt8 {
        try need(1, field)
        defer { offset += 1 }
        return bytes[offset]
    }
    mutating func readUInt32(field: String) throws(EnvelopeError) -> UInt32 {
        try need(4, field)
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(bytes[offset + index]) << (8 * index) }
        offset += 4
        return value
    }
    mutating func readUInt64(field: String) throws(EnvelopeError) -> UInt64 {
        try need(8, field)
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[offset + index]) << (8 * index) }
        offset += 8
        return value
    }
    mutating func readBytes(field: String) throws(EnvelopeError) -> [UInt8] {
        let count = Int(try readUInt32(field: field + " length"))
        try need(count, field)
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }
    mutating func readString(field: String) throws(EnvelopeError) -> String {
        let raw = try readBytes(field: field)
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw EnvelopeError("\(what) field \(field) is not valid UTF-8")
        }
        return text
    }
    func expectEnd() throws(EnvelopeError) {
        guard offset == bytes.count else {
            throw EnvelopeError("\(what) has \(bytes.count - offset) unexpected trailing bytes at byte \(offset)")
        }
    }
}
