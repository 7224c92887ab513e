/// Swift strings from protobuf-c's NUL-terminated strings, validating UTF-8 without generic stdlib paths
/// (`String(validating:as:)` is not specialized here and was the decoder's largest cost).
enum CText {
    /// The string of the `length` bytes at `pointer`, or nil when they are not valid UTF-8.
    @inline(__always)
    static func string(_ pointer: UnsafePointer<CChar>, length: Int) -> String? {
        let raw = UnsafeRawPointer(pointer)
        let bytes = UnsafeBufferPointer(start: raw.assumingMemoryBound(to: UInt8.self), count: length)
        var index = 0
        var high: UInt64 = 0
        while index + 8 <= length {
            high |= raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < length {
            high |= UInt64(bytes[index])
            index += 1
        }
        if high & 0x8080_8080_8080_8080 != 0, !isValidUTF8(bytes) { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The string of a span's bytes (the batch reader's strings, read straight from the input), or nil when they
    /// are not valid UTF-8.
    @inline(__always)
    static func string(_ span: WireSpan) -> String? {
        guard span.count > 0, let base = span.base else { return "" }
        return string(UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self), length: span.count)
    }

    /// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
    static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            func continuation(_ offset: Int) -> Bool {
                index + offset < count && bytes[index + offset] & 0xC0 == 0x80
            }
            switch lead {
            case 0xC2...0xDF:
                guard continuation(1) else { return false }
                index += 2
            case 0xE0...0xEF:
                guard continuation(1), continuation(2) else { return false }
                let second = bytes[index + 1]
                if lead == 0xE0 && second < 0xA0 { return false }  // overlong
                if lead == 0xED && second > 0x9F { return false }  // surrogate
                index += 3
            case 0xF0...0xF4:
                guard continuation(1), continuation(2), continuation(3) else { return false }
                let second = bytes[index + 1]
                if lead == 0xF0 && second < 0x90 { return false }  // overlong
                if lead == 0xF4 && second > 0x8F { return false }  // above U+10FFFF
                index += 4
            default:
                return false
            }
        }
        return true
    }
}
