#if canImport(Glibc)
import Glibc
#endif
import Basics

/// Builds RFC 4180 records as UTF-8 bytes: fields with a comma, quote, CR or LF are quoted, quotes doubled,
/// records end in CRLF.
///
/// Works on bytes rather than `Character`s because it runs for every alert of every batch: scanning by
/// grapheme and Foundation's `replacingOccurrences` made rendering most of the CSV sink's CPU time
/// (docs/BENCHMARKS.md, outbox). Checking bytes is equivalent: the four special characters are ASCII and
/// can never be part of a multi-byte UTF-8 sequence.
struct CSVRecordBuilder {
    private(set) var bytes: [UInt8] = []
    private var fieldsInRecord = 0

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func field(_ value: String) {
        separator()
        var copy = value
        copy.withUTF8 { append(quoting: $0) }
    }

    mutating func field<T: BinaryInteger>(_ value: T) {
        separator()
        decimal(value)
    }

    /// RFC 3339 in UTC with microseconds, the same text as `EpochNanoseconds.iso8601`.
    mutating func timestamp(_ nanoseconds: EpochNanoseconds) {
        separator()
        var copy = time_t(nanoseconds / 1_000_000_000)
        var parts = tm()
        gmtime_r(&copy, &parts)
        digits(Int(parts.tm_year) + 1900, width: 4)
        bytes.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, width: 2)
        bytes.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), width: 2)
        bytes.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), width: 2)
        bytes.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), width: 2)
        bytes.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), width: 2)
        bytes.append(UInt8(ascii: "."))
        digits(Int((nanoseconds % 1_000_000_000) / 1_000), width: 6)
        bytes.append(UInt8(ascii: "Z"))
    }

    mutating func endRecord() {
        bytes.append(0x0D)
        bytes.append(0x0A)
        fieldsInRecord = 0
    }

    private mutating func separator() {
        if fieldsInRecord > 0 { bytes.append(UInt8(ascii: ",")) }
        fieldsInRecord += 1
    }

    private mutating func append(quoting value: UnsafeBufferPointer<UInt8>) {
        let needsQuotes = value.contains { $0 == 0x2C || $0 == 0x22 || $0 == 0x0D || $0 == 0x0A }
        guard needsQuotes else {
            bytes.append(contentsOf: value)
            return
        }
        bytes.append(0x22)
        for byte in value {
            bytes.append(byte)
            if byte == 0x22 { bytes.append(0x22) }
        }
        bytes.append(0x22)
    }

    private mutating func decimal<T: BinaryInteger>(_ value: T) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: enough for any 64-bit number
        withUnsafeMutableBytes(of: &scratch) { buffer in
            var index = buffer.count
            repeat {
                index -= 1
                buffer[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude != 0
            bytes.append(contentsOf: buffer[index...])
        }
    }

    private mutating func digits(_ value: Int, width: Int) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: (rest / divisor) % 10))
            rest %= divisor
            divisor /= 10
        }
    }
}
