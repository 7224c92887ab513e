internal import CProtobufC
internal import CWireProto
import EventModel

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension WireCodec {
    /// Decodes a batch: the `EventBatch` envelope (header fields, where each repeated entry starts and ends, the
    /// string table) is walked here, and protobuf-c unpacks each `Event` and `ContainerRef` on its own into one
    /// small arena that is reset between events, so the unpacked structs stay in cache instead of filling a fresh
    /// arena several times the size of the batch.
    public static func decodeEventBatch(_ bytes: UnsafeRawBufferPointer) throws(WireFormatError) -> EventBatch {
        try checkSize(bytes, "EventBatch")
        // Empty input is a valid encoding of the all-default message, which has no sensor id.
        guard bytes.count > 0, let base = bytes.baseAddress else {
            throw WireFormatError(.missingField, "EventBatch.sensor_id is empty")
        }
        guard let envelope = BatchEnvelope(bytes) else { throw malformed("EventBatch", bytes.count) }
        let sensorID = try envelopeText(base, envelope.sensorID, "EventBatch.sensor_id")
        guard !sensorID.isEmpty else { throw WireFormatError(.missingField, "EventBatch.sensor_id is empty") }
        let bootID = try envelopeText(base, envelope.bootID, "EventBatch.boot_id")
        guard envelope.sequence != 0 else { throw WireFormatError(.invalidValue, "EventBatch.sequence is 0") }

        var arena = UnpackArena(chunkSize: 16 << 10)
        var containers: [ContainerRef] = []
        containers.reserveCapacity(envelope.containers.count)
        for (index, range) in envelope.containers.enumerated() {
            arena.reset()
            guard
                let ref = patrol__v1__container_ref__unpack(
                    arena.allocator, range.count, (base + range.lowerBound).assumingMemoryBound(to: UInt8.self))
            else {
                throw malformedEntry("EventBatch.containers[\(index)]", "ContainerRef", range.count)
            }
            containers.append(try containerRef(ref.pointee, "EventBatch.containers[\(index)]"))
        }
        var strings: [String] = []
        strings.reserveCapacity(envelope.strings.count)
        for (index, range) in envelope.strings.enumerated() {
            strings.append(try envelopeText(base, range, "EventBatch.strings[\(index)]"))
        }

        // Table strings and short strings (most argv entries, addresses) skip the intern table: size it smaller.
        var reader = EventReader(index: -1, expectedStrings: envelope.events.count / 4)
        reader.containers = containers
        reader.strings = strings
        var events: [Event] = []
        events.reserveCapacity(envelope.events.count)
        for (index, range) in envelope.events.enumerated() {
            reader.index = index
            arena.reset()
            guard
                let event = patrol__v1__event__unpack(
                    arena.allocator, range.count, (base + range.lowerBound).assumingMemoryBound(to: UInt8.self))
            else {
                throw malformedEntry("event \(index)", "Event", range.count)
            }
            events.append(try reader.event(event))
        }
        return EventBatch(
            sensorID: sensorID, bootID: bootID, sequence: envelope.sequence, compressed: envelope.compressed,
            events: events)
    }

    static func malformedEntry(_ name: String, _ type: StaticString, _ count: Int) -> WireFormatError {
        WireFormatError(
            .malformed, "\(name): \(count) bytes are not a valid protobuf \(type) (truncated, corrupt or wrong type)",
            cause: .cCode(library: "protobuf-c", code: 0, text: "protobuf_c_message_unpack returned NULL"))
    }

    /// A string field of the envelope. Like protobuf-c's C strings, it ends at the first NUL byte.
    static func envelopeText(_ base: UnsafeRawPointer, _ range: Range<Int>, _ field: @autoclosure () -> String)
        throws(WireFormatError) -> String
    {
        if range.isEmpty { return "" }
        let start = base + range.lowerBound
        let length = memchr(start, 0, range.count).map { start.distance(to: UnsafeRawPointer($0)) } ?? range.count
        guard let text = CText.string(start.assumingMemoryBound(to: CChar.self), length: length) else {
            throw WireFormatError(.invalidValue, "\(field()) is not valid UTF-8")
        }
        return text
    }
}

/// Where the parts of an `EventBatch` encoding are: the header values and the byte range of every repeated entry.
/// Like protobuf-c it takes the last value of a repeated singular field and skips unknown fields; a truncated
/// value, a field number 0, a group or a known field with the wrong wire type makes the whole input invalid.
struct BatchEnvelope {
    var sensorID = 0..<0
    var bootID = 0..<0
    var sequence: UInt64 = 0
    var compressed = false
    var events: [Range<Int>] = []
    var containers: [Range<Int>] = []
    var strings: [Range<Int>] = []

    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, let base = bytes.baseAddress else { return }
        let input = base.assumingMemoryBound(to: UInt8.self)
        let end = bytes.count
        var offset = 0

        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while offset < end {
                let byte = input[offset]
                offset += 1
                if shift == 63 && byte > 1 { return nil }  // more than 64 bits
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
                if shift > 63 { return nil }
            }
            return nil
        }

        func lengthDelimited() -> Range<Int>? {
            guard let length = varint(), length <= UInt64(end - offset) else { return nil }
            let start = offset
            offset += Int(length)
            return start..<offset
        }

        events.reserveCapacity(end / 48)
        while offset < end {
            guard let tag = varint(), tag >> 3 != 0, tag >> 3 <= 0x1FFF_FFFF else { return nil }
            let wireType = tag & 7
            switch (tag >> 3, wireType) {
            case (1, 2):
                guard let range = lengthDelimited() else { return nil }
                sensorID = range
            case (2, 2):
                guard let range = lengthDelimited() else { return nil }
                bootID = range
            case (3, 0):
                guard let value = varint() else { return nil }
                sequence = value
            case (4, 0):
                guard let value = varint() else { return nil }
                compressed = value != 0
            case (5, 2):
                guard let range = lengthDelimited() else { return nil }
                events.append(range)
            case (6, 2):
                guard let range = lengthDelimited() else { return nil }
                containers.append(range)
            case (7, 2):
                guard let range = lengthDelimited() else { return nil }
                strings.append(range)
            case (1...7, _):
                return nil
            case (_, 0):
                guard varint() != nil else { return nil }
            case (_, 1):
                guard end - offset >= 8 else { return nil }
                offset += 8
            case (_, 2):
                guard lengthDelimited() != nil else { return nil }
            case (_, 5):
                guard end - offset >= 4 else { return nil }
                offset += 4
            default:
                return nil
            }
        }
    }
}
