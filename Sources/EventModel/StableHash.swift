/// FNV-1a 64-bit, for stable identifiers (alert ids, de-duplication keys).
///
/// Swift's `Hasher` is seeded per process, so it cannot make ids that survive a restart.
public struct StableHash: Sendable {
    private var state: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func combine(_ text: String) {
        append(text)
        endField()
    }

    /// Adds the bytes of `text` with no separator: `append("a"); append("b"); endField()` hashes exactly as
    /// `combine("ab")`, so a field can be hashed from its parts without building it.
    public mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var state = self.state
            for byte in bytes { state = (state ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
            self.state = state
        }
    }

    /// Ends a field: a separator so ("ab","c") and ("a","bc") differ.
    public mutating func endField() {
        state = (state ^ 0xff) &* 0x0000_0100_0000_01b3
    }

    public mutating func combine(_ value: UInt64) {
        var v = value
        for _ in 0..<8 {
            state = (state ^ (v & 0xff)) &* 0x0000_0100_0000_01b3
            v >>= 8
        }
    }

    public var value: UInt64 { state }

    /// 16 lowercase hex digits.
    public var hex: String {
        String(unsafeUninitializedCapacity: 16) { buffer in
            for position in 0..<16 {
                let nibble = UInt8((state >> UInt64(60 - 4 * position)) & 0xf)
                buffer[position] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble  // 0-9, a-f
            }
            return 16
        }
    }
}
