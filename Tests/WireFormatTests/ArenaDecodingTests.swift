import EventModel
import TestSupport
import Testing

@_spi(Benchmarks) @testable import WireFormat

/// `decodeEventBatchViaProtobufC` (the reference for WireFormat's own batch reader) and `decodeEvent` unpack into a
/// bump arena (`UnpackArena`). These tests decode the same input
/// both with the arena and with protobuf-c's default allocator plus `free_unpacked` (how decoding worked before)
/// and expect the same outcome: equal values, or the same error code and message. Valid input decoded between
/// malformed input also checks that a failed unpack leaves nothing behind that the next decode could trip over.
@Suite("Arena decoding")
struct ArenaDecodingTests {
    enum Outcome<Value: Equatable>: Equatable {
        case value(Value)
        case error(WireFormatError.Code, String)
    }

    static func batchBothWays(_ bytes: [UInt8]) -> (arena: Outcome<EventBatch>, system: Outcome<EventBatch>) {
        func outcome(_ decode: () throws(WireFormatError) -> EventBatch) -> Outcome<EventBatch> {
            do throws(WireFormatError) { return .value(try decode()) } catch {
                return .error(error.code, error.message)
            }
        }
        return (
            outcome { () throws(WireFormatError) in try WireCodec.decodeEventBatchViaProtobufC(bytes) },
            outcome { () throws(WireFormatError) in try WireCodec.decodeEventBatchWithSystemAllocator(bytes) }
        )
    }

    static func eventBothWays(_ bytes: [UInt8]) -> (arena: Outcome<Event>, system: Outcome<Event>) {
        func outcome(_ decode: () throws(WireFormatError) -> Event) -> Outcome<Event> {
            do throws(WireFormatError) { return .value(try decode()) } catch {
                return .error(error.code, error.message)
            }
        }
        return (
            outcome { () throws(WireFormatError) in try WireCodec.decodeEvent(bytes) },
            outcome { () throws(WireFormatError) in try WireCodec.decodeEventWithSystemAllocator(bytes) }
        )
    }

    @Test(
        "a batch of every event kind decodes to the same values with the arena as with malloc",
        arguments: [1, 7, 2000])
    func everyKindBatch(count: Int) {
        var fixtures = EventFixtures(seed: 0xA7E4A + UInt64(count), containerCount: 5)
        let batch = fixtures.batch(sequence: 3, count: count, kinds: EventKind.allCases)
        let (arena, system) = Self.batchBothWays(WireCodec.encode(batch))
        #expect(arena == .value(batch))
        #expect(system == .value(batch))
    }

    @Test("a lone event of every kind decodes the same with the arena as with malloc", arguments: EventKind.allCases)
    func everyKindEvent(kind: EventKind) {
        var fixtures = EventFixtures(seed: 77)
        for _ in 0..<20 {
            let event = fixtures.event(kind)
            let (arena, system) = Self.eventBothWays(WireCodec.encode(event))
            #expect(arena == .value(event))
            #expect(system == .value(event))
        }
    }

    @Test("truncated batches give the same clear error with the arena as with malloc")
    func truncated() async {
        var fixtures = EventFixtures(seed: 5, containerCount: 3)
        let bytes = WireCodec.encode(fixtures.batch(sequence: 1, count: 12, kinds: EventKind.allCases))
        var failures = 0
        for length in 0..<bytes.count {
            if length % 500 == 0 { await Task.yield() }
            let (arena, system) = Self.batchBothWays(Array(bytes[..<length]))
            #expect(arena == system, "prefix of \(length) of \(bytes.count) bytes")
            if case .error(_, let message) = arena {
                failures += 1
                #expect(message.contains("EventBatch") || message.contains("event "), "\(message)")
            }
        }
        // Most prefixes end inside a field; a few end between fields and are valid, shorter batches.
        #expect(failures > bytes.count / 2)
    }

    @Test("random bytes and mutated batches give the same outcome with the arena as with malloc")
    func garbage() async {
        var generator = SeededGenerator(seed: 0x6A7B_A6E)
        var fixtures = EventFixtures(seed: 6, containerCount: 3)
        let valid = WireCodec.encode(fixtures.batch(sequence: 2, count: 40, kinds: EventKind.allCases))
        var errors = 0
        for round in 0..<4_000 {
            if round % 500 == 0 { await Task.yield() }
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...300, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
            } else {
                bytes = valid
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let position = Int.random(in: 0..<bytes.count, using: &generator)
                    bytes[position] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            let (arena, system) = Self.batchBothWays(bytes)
            #expect(arena == system)
            if case .error(_, let message) = arena {
                errors += 1
                #expect(!message.isEmpty)
            }
            // A valid batch right after the bad input still decodes.
            if round % 100 == 0 {
                let again = Self.batchBothWays(valid)
                #expect(again.arena == again.system)
                if case .error(_, let message) = again.arena { Issue.record("the valid batch failed: \(message)") }
            }
        }
        #expect(errors > 2_000)
    }

    @Test("input over the size limit is refused before unpacking, both ways")
    func oversized() {
        let bytes = [UInt8](repeating: 0x0A, count: WireCodec.maxMessageBytes + 1)
        let (arena, system) = Self.batchBothWays(bytes)
        #expect(arena == system)
        guard case .error(let code, let message) = arena else {
            Issue.record("an oversized batch decoded")
            return
        }
        #expect(code == .oversized)
        #expect(message.contains("more than the limit"))
    }

    @Test("a batch whose unpacked form outgrows the arena's first chunk decodes the same both ways")
    func growsPastFirstChunk() {
        // Many short events with long argv expand far more than six times their encoded size.
        var fixtures = EventFixtures(seed: 9)
        var events: [Event] = []
        for _ in 0..<300 {
            var event = fixtures.event(.exec)
            if case .exec(var exec) = event.payload {
                exec.argv = (0..<200).map { _ in "" }
                event.payload = .exec(exec)
            }
            events.append(event)
        }
        let big = EventBatch(sensorID: "s", bootID: "b", sequence: 1, events: events)
        let (arena, system) = Self.batchBothWays(WireCodec.encode(big))
        #expect(arena == .value(big))
        #expect(system == .value(big))
        let small = fixtures.batch(sequence: 2, count: 3, kinds: EventKind.allCases)
        #expect(Self.batchBothWays(WireCodec.encode(small)).arena == .value(small))
    }
}
