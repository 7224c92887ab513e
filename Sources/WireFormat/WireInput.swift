#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A run of input bytes: a string's or a nested message's body. `base == nil` means the field was absent (a string
/// present on the wire but empty has a base and count 0; merging `Process` and `ContainerRef` tells the two apart).
struct WireSpan {
    var base: UnsafePointer<UInt8>?
    var count: Int

    @inline(__always)
    static var absent: WireSpan { WireSpan(base: nil, count: 0) }

    @inline(__always)
    var isPresent: Bool { base != nil }

    /// The bytes before the first NUL: protobuf-c hands strings on as C strings, so anything after a NUL was never
    /// seen by a decoder, and the batch writer cuts strings the same way.
    @inline(__always)
    var cString: WireSpan {
        guard let base, count > 0 else { return WireSpan(base: base, count: 0) }
        guard let nul = memchr(base, 0, count) else { return self }
        return WireSpan(base: base, count: UnsafeRawPointer(base).distance(to: UnsafeRawPointer(nul)))
    }

    /// True when the string is non-empty as a C string (its first byte is not NUL).
    @inline(__always)
    var hasText: Bool { count > 0 && base![0] != 0 }
}

/// A cursor over protobuf wire-format bytes, with the reading rules of protobuf-c 1.4's `protobuf_c_message_unpack`
/// (the reference the batch reader must agree with, shown by `EventReadingTests`):
/// - a tag is at most 5 bytes; its field number is the 32 bits above the wire type; a one-byte tag of number 0
///   is refused (a longer one is an unknown field);
/// - a varint is at most 10 bytes; 32-bit fields keep its low 32 bits;
/// - a length prefix is at most 5 bytes, read as 32 bits (higher bits dropped), and must fit in what is left;
/// - wire types 3 and 4 (groups), 6 and 7 are errors; unknown fields of types 0, 1, 2 and 5 are skipped;
/// - a bool takes any wire type and is true when any byte of the field after the tag has one of its low 7 bits set.
/// Every failure is `malformed`; the caller words the final message.
struct WireCursor {
    var at: UnsafePointer<UInt8>
    let end: UnsafePointer<UInt8>

    @inline(__always)
    init(_ span: WireSpan) {
        // An absent or empty span reads as no fields; `end == at`.
        let base = span.base ?? UnsafePointer(bitPattern: 1)!
        at = base
        end = base + span.count
    }

    @inline(__always)
    init(start: UnsafePointer<UInt8>, count: Int) {
        at = start
        end = start + count
    }

    @inline(__always)
    var isAtEnd: Bool { at >= end }

    @inline(__always)
    var remaining: Int { end - at }

    static func bad(_ what: StaticString) -> WireFormatError { WireFormatError(.malformed, "\(what)") }

    /// The next field's number and wire type.
    @inline(__always)
    mutating func tag() throws(WireFormatError) -> (field: UInt32, wire: UInt8) {
        let first = at.pointee
        if first < 0x80 {
            // protobuf-c 1.4 refuses number 0 in a one-byte tag only; a longer tag of number 0 is an unknown field.
            guard first >= 8 else { throw Self.bad("a field tag has number 0") }
            at += 1
            return (UInt32(first >> 3), first & 7)
        }
        return try longTag()
    }

    private mutating func longTag() throws(WireFormatError) -> (field: UInt32, wire: UInt8) {
        let first = at.pointee
        let limit = min(remaining, 5)
        var field = UInt32(first & 0x7f) >> 3
        var shift: UInt32 = 4
        var index = 1
        while index < limit {
            let byte = at[index]
            field |= UInt32(byte & 0x7f) << shift
            if byte < 0x80 {
                at += index + 1
                return (field, first & 7)
            }
            shift += 7
            index += 1
        }
        throw Self.bad("a field tag is longer than 5 bytes or cut off")
    }

    /// A varint's value (its low 64 bits).
    @inline(__always)
    mutating func varint() throws(WireFormatError) -> UInt64 {
        guard at < end else { throw Self.bad("a varint is cut off") }
        let first = at.pointee
        if first < 0x80 {
            at += 1
            return UInt64(first)
        }
        return try longVarint()
    }

    private mutating func longVarint() throws(WireFormatError) -> UInt64 {
        // Most multi-byte varints (times, pids, inode numbers) end within 8 bytes: find the end and gather the
        // 7-bit groups of one 64-bit load at once instead of byte by byte.
        // Nanosecond times take 9 bytes: the 8 loaded plus one or two more.
        if remaining >= 8 {
            let word = UnsafeRawPointer(at).loadUnaligned(as: UInt64.self).littleEndian
            let stops = ~word & 0x8080_8080_8080_8080
            if stops != 0 {
                let length = (stops.trailingZeroBitCount + 1) >> 3
                let kept = length == 8 ? word : word & ((1 &<< UInt64(8 * length)) &- 1)
                at += length
                return Self.gather(kept)
            }
            if remaining >= 9, at[8] < 0x80 {
                let value = Self.gather(word) | UInt64(at[8]) << 56
                at += 9
                return value
            }
            if remaining >= 10, at[9] < 0x80 {
                let value = Self.gather(word) | UInt64(at[8] & 0x7f) << 56 | UInt64(at[9]) << 63
                at += 10
                return value
            }
        }
        let limit = min(remaining, 10)
        var value: UInt64 = 0
        var index = 0
        while index < limit {
            let byte = at[index]
            value |= UInt64(byte & 0x7f) << UInt64(7 * index)
            if byte < 0x80 {
                at += index + 1
                return value
            }
            index += 1
        }
        throw Self.bad("a varint is longer than 10 bytes or cut off")
    }

    /// The 7-bit groups of up to 8 varint bytes (little-endian in `word`, bytes after the last one zeroed), joined.
    @inline(__always)
    static func gather(_ word: UInt64) -> UInt64 {
        var value = word & 0x7f7f_7f7f_7f7f_7f7f
        value = (value & 0x007f_007f_007f_007f) | ((value & 0x7f00_7f00_7f00_7f00) >> 1)
        value = (value & 0x0000_3fff_0000_3fff) | ((value & 0x3fff_0000_3fff_0000) >> 2)
        return (value & 0x0000_0000_0fff_ffff) | ((value & 0x0fff_ffff_0000_0000) >> 4)
    }

    /// A varint field (wire type 0 required).
    @inline(__always)
    mutating func varint(_ wire: UInt8) throws(WireFormatError) -> UInt64 {
        guard wire == 0 else { throw Self.bad("a varint field has another wire type") }
        return try varint()
    }

    /// An int32/uint32/enum field: the varint's low 32 bits.
    @inline(__always)
    mutating func uint32(_ wire: UInt8) throws(WireFormatError) -> UInt32 {
        UInt32(truncatingIfNeeded: try varint(wire))
    }

    @inline(__always)
    mutating func int32(_ wire: UInt8) throws(WireFormatError) -> Int32 {
        Int32(truncatingIfNeeded: try varint(wire))
    }

    /// A bool field, read as protobuf-c reads one (see the type's comment).
    @inline(__always)
    mutating func bool(_ wire: UInt8) throws(WireFormatError) -> Bool {
        if wire == 0, at < end, at.pointee < 0x80 {
            defer { at += 1 }
            return at.pointee != 0
        }
        let start = at
        try skip(wire)
        var index = start
        while index < at {
            if index.pointee & 0x7f != 0 { return true }
            index += 1
        }
        return false
    }

    /// A length-delimited field's body (wire type 2 required).
    @inline(__always)
    mutating func lengthDelimited(_ wire: UInt8) throws(WireFormatError) -> WireSpan {
        guard wire == 2 else { throw Self.bad("a string or message field has another wire type") }
        return try body()
    }

    @inline(__always)
    mutating func body() throws(WireFormatError) -> WireSpan {
        guard at < end else { throw Self.bad("a length is cut off") }
        let first = at.pointee
        if first < 0x80 {
            let count = Int(first)
            guard count < remaining else { throw Self.bad("a length runs past the end") }
            let start = at + 1
            at = start + count
            return WireSpan(base: start, count: count)
        }
        return try longBody()
    }

    private mutating func longBody() throws(WireFormatError) -> WireSpan {
        let limit = min(remaining, 5)
        var length: UInt32 = 0
        var index = 0
        while index < limit {
            let byte = at[index]
            length |= UInt32(byte & 0x7f) << UInt32(7 * index)
            if byte < 0x80 {
                let header = UInt32(index + 1)
                // protobuf-c adds header and length in 32 bits; a sum that wraps is refused, as protobuf-c 1.4.1
                // refuses it (EventReadingTests).
                let (total, wrapped) = header.addingReportingOverflow(length)
                guard !wrapped, Int(total) <= remaining else { throw Self.bad("a length runs past the end") }
                let start = at + Int(header)
                at = start + Int(length)
                return WireSpan(base: start, count: Int(length))
            }
            index += 1
        }
        throw Self.bad("a length prefix is longer than 5 bytes or cut off")
    }

    /// Skips a field of an unknown number.
    @inline(__always)
    mutating func skip(_ wire: UInt8) throws(WireFormatError) {
        switch wire {
        case 0: _ = try varint()
        case 1:
            guard remaining >= 8 else { throw Self.bad("a 64-bit field is cut off") }
            at += 8
        case 2: _ = try body()
        case 5:
            guard remaining >= 4 else { throw Self.bad("a 32-bit field is cut off") }
            at += 4
        default: throw Self.bad("a field has wire type 3, 4, 6 or 7 (groups are not supported)")
        }
    }

    /// Appends a repeated uint32 field's values: one varint (wire type 0) or a packed run (wire type 2).
    mutating func uint32s(_ wire: UInt8, into values: inout [UInt32]) throws(WireFormatError) {
        switch wire {
        case 0: values.append(UInt32(truncatingIfNeeded: try varint()))
        case 2:
            var packed = WireCursor(try body())
            while !packed.isAtEnd { values.append(UInt32(truncatingIfNeeded: try packed.varint())) }
        default: throw Self.bad("a repeated varint field has wire type 1 or 5")
        }
    }
}
