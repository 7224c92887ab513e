import EventModel
import Testing

/// Alert ids are StableHash values: they must not change between releases or with how a field is fed in.
@Suite struct StableHashTests {
    @Test func knownValuesStayTheSame() {
        // FNV-1a 64 of the empty input, then of "a" followed by the 0xff field separator.
        #expect(StableHash().hex == "cbf29ce484222325")
        var hash = StableHash()
        hash.combine("a")
        var reference: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in [UInt8(ascii: "a"), 0xff] { reference = (reference ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        #expect(hash.value == reference)
    }

    @Test func aFieldFedInPartsHashesAsTheWholeField() {
        var whole = StableHash()
        whole.combine("shop/web-7d9c/nginx")
        var parts = StableHash()
        for part in ["shop", "/", "web-7d9c", "/", "nginx"] { parts.append(part) }
        parts.endField()
        #expect(parts.value == whole.value)
    }

    @Test func fieldBoundariesMatter() {
        var first = StableHash()
        first.combine("ab")
        first.combine("c")
        var second = StableHash()
        second.combine("a")
        second.combine("bc")
        #expect(first.value != second.value)
    }

    @Test func hexIsSixteenLowercaseDigitsWithLeadingZeros() {
        var hash = StableHash()
        // Find a value whose top nibble is 0, so the padding is exercised.
        var input = 0
        repeat {
            hash = StableHash()
            hash.combine("\(input)")
            input += 1
        } while hash.value >> 60 != 0
        let hex = hash.hex
        #expect(hex.count == 16)
        #expect(hex.first == "0")
        #expect(UInt64(hex, radix: 16) == hash.value)
        #expect(hex == hex.lowercased())
    }
}
