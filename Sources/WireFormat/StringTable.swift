/// The encoder's side of `EventBatch.strings`: each distinct string gets a 1-based index the first time it is
/// seen. A small direct-mapped cache keyed by the string's raw representation (its 16 bytes: inline contents, or
/// count, flags and storage pointer) answers the common case, the same string instance seen again, without
/// hashing its bytes; misses fall back to a dictionary. Equal raw bits always mean equal strings; the table keeps
/// every string it indexed alive, so a storage address cannot be reused for other text while it is in use.
struct StringTable: ~Copyable {
    private(set) var strings: [String] = []
    private var indexByText: [String: UInt32] = [:]
    private let cache: UnsafeMutablePointer<Entry>
    /// When false (a lone Event, which has no table), `ref` always answers 0: keep the string inline.
    let enabled: Bool

    private struct Entry {
        var low: UInt64 = 0
        var high: UInt64 = 0
        var index: UInt32 = 0
    }

    private static let cacheSize = 256

    init(enabled: Bool) {
        self.enabled = enabled
        cache = .allocate(capacity: enabled ? Self.cacheSize : 1)
        cache.initialize(repeating: Entry(), count: enabled ? Self.cacheSize : 1)
    }

    deinit {
        cache.deallocate()
    }

    /// The 1-based index of `text`, or 0 when it stays inline (empty, or no table).
    @inline(__always)
    mutating func ref(_ text: String) -> UInt32 {
        guard enabled, !text.isEmpty else { return 0 }
        let (low, high) = unsafeBitCast(text, to: (UInt64, UInt64).self)
        let mixed = ((low &* 0x9E37_79B9_7F4A_7C15) ^ high) &* 0xC2B2_AE3D_27D4_EB4F
        let slot = Int(truncatingIfNeeded: mixed >> 56)
        let entry = cache + slot
        if entry.pointee.index != 0, entry.pointee.low == low, entry.pointee.high == high {
            return entry.pointee.index
        }
        let index: UInt32
        if let known = indexByText[text] {
            index = known
        } else {
            strings.append(text)
            index = UInt32(strings.count)
            indexByText[text] = index
        }
        entry.pointee = Entry(low: low, high: high, index: index)
        return index
    }
}
