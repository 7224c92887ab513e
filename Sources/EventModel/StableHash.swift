/// FNV-1a 64-bit, for stable identifiers (alert ids, de-duplication keys).
///
/// Swift's `Hasher` is seeded per process, so it cannot make ids that survive a restart.
public struct StableHash: Sendable {
    private var state: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func combine(_ text: String) {
        for byte in text.utf8 {
            state = (state ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        // A separator so ("ab","c") and ("a","bc") differ.
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
        let digits = String(state, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
