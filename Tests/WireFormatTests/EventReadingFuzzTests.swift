import EventModel
import TestSupport
import Testing

@_spi(Benchmarks) @testable import WireFormat

/// Differential fuzz of the batch reader against protobuf-c (`decodeEventBatchViaProtobufC`): random bytes,
/// truncations, byte and varint mutations of valid batches, and valid batches reshaped field by field (reordered,
/// unknown fields inserted, fields repeated, integers and lengths written in longer forms than needed). For every
/// input both must fail with the same code and message, or both succeed with equal values.
// The loops run for seconds of CPU; they yield now and then because the cooperative pool has one thread per core.
@Suite("Event reading fuzz")
struct EventReadingFuzzTests {
    /// A message as a list of fields, for reshaping. `payload` is the bytes after the tag (for wire type 2, the body
    /// without its length).
    struct Field {
        var number: UInt64
        var wire: UInt8
        var payload: [UInt8]
    }

    /// Which fields hold messages of which kind (the test's own copy of the schema's nesting).
    enum Kind { case batch, event, process, container, label, payload, leaf }

    static func child(_ kind: Kind, _ number: UInt64) -> Kind {
        switch (kind, number) {
        case (.batch, 5): return .event
        case (.batch, 6), (.event, 4): return .container
        case (.event, 3): return .process
        case (.event, 10...25): return .payload
        case (.container, 8): return .label
        default: return .leaf
        }
    }

    /// Parses well-formed bytes (the encoder's output) into fields.
    static func parse(_ bytes: [UInt8]) -> [Field] {
        var fields: [Field] = []
        var index = 0
        func varint() -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
        }
        while index < bytes.count {
            let key = varint()
            let wire = UInt8(key & 7)
            let start = index
            switch wire {
            case 0:
                _ = varint()
                fields.append(Field(number: key >> 3, wire: 0, payload: Array(bytes[start..<index])))
            case 2:
                let length = Int(varint())
                fields.append(Field(number: key >> 3, wire: 2, payload: Array(bytes[index..<index + length])))
                index += length
            default:
                preconditionFailure("the encoder writes only varints and length-delimited fields")
            }
        }
        return fields
    }

    struct Shaper {
        var generator: SeededGenerator
        /// Write integers, lengths and tags in longer forms than needed.
        var padded = false

        mutating func chance(_ probability: Double) -> Bool {
            Double.random(in: 0..<1, using: &generator) < probability
        }

        mutating func varint(_ value: UInt64, into out: inout [UInt8], maxBytes: Int = 10) {
            var v = value
            var written = 0
            while v >= 0x80 {
                out.append(UInt8(v & 0x7f) | 0x80)
                v >>= 7
                written += 1
            }
            // Padding: continuation bytes carrying zeros, within the limit protobuf-c reads.
            if padded, chance(0.3), written + 1 < maxBytes {
                let extra = Int.random(in: 1...(maxBytes - written - 1), using: &generator)
                out.append(UInt8(v) | 0x80)
                for _ in 1..<extra { out.append(0x80) }
                out.append(0)
                return
            }
            out.append(UInt8(v))
        }

        mutating func unknownField(into out: inout [UInt8]) {
            let numbers: [UInt64] = [7, 8, 9, 27, 40, 100, 2047, 536_870_911]
            let number = numbers.randomElement(using: &generator)!
            let wire = [UInt8(0), 1, 2, 5].randomElement(using: &generator)!
            varint(number << 3 | UInt64(wire), into: &out, maxBytes: 5)
            switch wire {
            case 0:
                varint(
                    UInt64.random(in: 0...UInt64.max, using: &generator)
                        >> UInt64.random(in: 0...63, using: &generator), into: &out)
            case 1: for _ in 0..<8 { out.append(UInt8.random(in: 0...255, using: &generator)) }
            case 5: for _ in 0..<4 { out.append(UInt8.random(in: 0...255, using: &generator)) }
            default:
                let body = (0..<Int.random(in: 0...12, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
                varint(UInt64(body.count), into: &out, maxBytes: 5)
                out += body
            }
        }

        /// `bytes` (a message of `kind`) reordered, with unknown fields inserted and fields repeated, recursively.
        mutating func reshape(_ bytes: [UInt8], _ kind: Kind, depth: Int = 0) -> [UInt8] {
            var fields = EventReadingFuzzTests.parse(bytes)
            // Nested messages first, so a repeated field below copies the reshaped form.
            for index in fields.indices where fields[index].wire == 2 {
                let inner = EventReadingFuzzTests.child(kind, fields[index].number)
                if inner != .leaf, chance(depth == 0 ? 0.2 : 0.5) {
                    fields[index].payload = reshape(fields[index].payload, inner, depth: depth + 1)
                }
            }
            if chance(0.5) { fields.shuffle(using: &generator) }
            if !fields.isEmpty, chance(kind == .batch ? 0.2 : 0.3) {
                let copy = fields.randomElement(using: &generator)!
                fields.insert(copy, at: Int.random(in: 0...fields.count, using: &generator))
            }
            var out: [UInt8] = []
            for field in fields {
                if chance(0.05) { unknownField(into: &out) }
                varint(field.number << 3 | UInt64(field.wire), into: &out, maxBytes: 5)
                if field.wire == 2 {
                    varint(UInt64(field.payload.count), into: &out, maxBytes: 5)
                    out += field.payload
                } else if padded {
                    // Re-read the varint and write it padded.
                    var value: UInt64 = 0
                    for (position, byte) in field.payload.enumerated() {
                        value |= UInt64(byte & 0x7f) << UInt64(7 * position)
                    }
                    varint(value, into: &out)
                } else {
                    out += field.payload
                }
            }
            if chance(0.1) { unknownField(into: &out) }
            return out
        }
    }

    /// Small valid batches: every event kind, a few containers with labels, and events written as lone `Event`s
    /// (their container inline, no string table refs), which the batch encoder never writes but a batch may hold.
    static func corpus() -> [[UInt8]] {
        var fixtures = EventFixtures(seed: 0xF0_22, containerCount: 3)
        var out: [[UInt8]] = []
        for round in 0..<4 {
            var batch = fixtures.batch(sequence: UInt64(round + 1), count: 6 + round, kinds: EventKind.allCases)
            if round == 1 {
                batch.events[0].container?.labels = ["app": "web", "tier": "front"]
                batch.events[0].container?.ownerKind = "Deployment"
            }
            var bytes = WireCodec.encode(batch)
            if round >= 2 {
                // Lone events appended as batch events: inline containers.
                for kind in [EventKind.exec, .connect, .dns] {
                    var event = fixtures.event(kind)
                    event.container = ContainerRef(
                        runtime: "containerd", containerID: "inline\(round)", podName: "p",
                        labels: ["k": "v"], runningAtSensorStart: true)
                    let body = WireCodec.encode(event)
                    var writer = ProtoWriter()
                    writer.lengthDelimited(5, body)
                    bytes += writer.bytes
                }
            }
            out.append(bytes)
        }
        return out
    }

    static func compare(_ bytes: [UInt8], _ tally: inout (agreed: Int, decoded: Int, cases: Int)) {
        let (reader, reference) = EventReadingTests.bothWays(bytes)
        tally.cases += 1
        if reader == reference {
            tally.agreed += 1
            if reader.isValue { tally.decoded += 1 }
        } else {
            Issue.record("reader \(reader) but protobuf-c \(reference) for bytes \(bytes)")
        }
    }

    @Test("the reader agrees with protobuf-c on over 100k random, truncated, mutated and reshaped inputs")
    func differential() async {
        var generator = SeededGenerator(seed: 0xD1FF_2026)
        let corpus = Self.corpus()
        for bytes in corpus {
            guard case .value = EventReadingTests.bothWays(bytes).reader else {
                Issue.record("a corpus batch does not decode")
                return
            }
        }
        var tally = (agreed: 0, decoded: 0, cases: 0)
        var sinceYield = 0
        func pause() async {
            sinceYield += 1
            if sinceYield >= 400 {
                sinceYield = 0
                await Task.yield()
            }
        }

        // 1. Random bytes: plain, and built from plausible tags.
        for round in 0..<20_000 {
            var bytes: [UInt8] = []
            let length = Int.random(in: 0...120, using: &generator)
            if round % 2 == 0 {
                bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                while bytes.count < length {
                    bytes.append(
                        UInt8(Int.random(in: 1...26, using: &generator) << 3 | Int.random(in: 0...7, using: &generator))
                    )
                    bytes.append(UInt8.random(in: 0...(round % 4 == 1 ? 20 : 255), using: &generator))
                }
            }
            Self.compare(bytes, &tally)
            await pause()
        }

        // 2. Every truncation of every corpus batch.
        for bytes in corpus {
            for length in 0..<bytes.count {
                Self.compare(Array(bytes[..<length]), &tally)
                await pause()
            }
        }

        // 3. Byte mutations: a random byte, a flipped bit, a byte off by one, one to three at a time.
        for _ in 0..<35_000 {
            var bytes = corpus.randomElement(using: &generator)!
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0...2, using: &generator) {
                case 0: bytes[position] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes[position] ^= 1 << UInt8.random(in: 0...7, using: &generator)
                default: bytes[position] &+= Bool.random(using: &generator) ? 1 : 255
                }
            }
            Self.compare(bytes, &tally)
            await pause()
        }

        // 4. Varint mutations: continuation bits set or cleared, bytes inserted or removed, long varints.
        for _ in 0..<15_000 {
            var bytes = corpus.randomElement(using: &generator)!
            let position = Int.random(in: 0..<bytes.count, using: &generator)
            switch Int.random(in: 0...5, using: &generator) {
            case 0: bytes[position] |= 0x80
            case 1: bytes[position] &= 0x7f
            case 2: bytes.insert(0x80, at: position)
            case 3: bytes.remove(at: position)
            case 4:
                bytes.insert(
                    contentsOf: [UInt8](repeating: 0xFF, count: Int.random(in: 1...10, using: &generator)), at: position
                )
            default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: position)
            }
            Self.compare(bytes, &tally)
            await pause()
        }

        // 5. Reshaped batches (reordered, unknown fields, repeated fields, padded integers), some then mutated.
        for round in 0..<30_000 {
            var shaper = Shaper(generator: generator, padded: round % 3 == 0)
            var bytes = shaper.reshape(corpus.randomElement(using: &shaper.generator)!, .batch)
            generator = shaper.generator
            if round % 4 == 3, !bytes.isEmpty {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                bytes[position] = UInt8.random(in: 0...255, using: &generator)
            }
            Self.compare(bytes, &tally)
            await pause()
        }

        #expect(tally.cases >= 100_000)
        #expect(tally.agreed == tally.cases)
        // Reshaping keeps most batches valid, so the value paths are compared too, not only the errors.
        #expect(tally.decoded > 20_000, "only \(tally.decoded) inputs decoded")
    }
}
