import EventModel
import TestSupport
import Testing

@testable import WireFormat

/// Deterministic fuzzing: every input must either decode or throw `WireFormatError`, never crash. Anything that
/// decodes must survive re-encoding and decode to the same value.
// The loops below run for seconds of CPU; they yield now and then because the cooperative pool has one
// thread per core and other tests' servers need it too.
@Suite("Wire fuzzing")
struct FuzzTests {
    enum Kind: CaseIterable { case batch, event, ack, hello, status, request, reply }

    /// Decodes `bytes` as `kind`; returns true when it decoded. Checks that decoded values re-encode stably.
    @discardableResult
    static func attempt(_ kind: Kind, _ bytes: [UInt8]) -> Bool {
        do throws(WireFormatError) {
            switch kind {
            case .batch:
                let value = try WireCodec.decodeEventBatch(bytes)
                #expect(try WireCodec.decodeEventBatch(WireCodec.encode(value)) == value)
            case .event:
                let value = try WireCodec.decodeEvent(bytes)
                #expect(try WireCodec.decodeEvent(WireCodec.encode(value)) == value)
            case .ack:
                let value = try WireCodec.decodeBatchAck(bytes)
                #expect(try WireCodec.decodeBatchAck(WireCodec.encode(value)) == value)
            case .hello:
                let value = try WireCodec.decodeSensorHello(bytes)
                #expect(try WireCodec.decodeSensorHello(WireCodec.encode(value)) == value)
            case .status:
                let value = try WireCodec.decodeSensorStatus(bytes)
                #expect(try WireCodec.decodeSensorStatus(WireCodec.encode(value)) == value)
            case .request:
                let value = try WireCodec.decodeRPCRequest(bytes)
                #expect(try WireCodec.decodeRPCRequest(WireCodec.encode(value)) == value)
            case .reply:
                let value = try WireCodec.decodeRPCReply(bytes)
                #expect(try WireCodec.decodeRPCReply(WireCodec.encode(value)) == value)
            }
            return true
        } catch {
            #expect(!error.message.isEmpty)
            return false
        }
    }

    /// Valid encodings of every message type, small enough to truncate at every length.
    static func corpus(seed: UInt64) -> [(Kind, [UInt8])] {
        var fixtures = EventFixtures(seed: seed, containerCount: 3)
        var out: [(Kind, [UInt8])] = []
        out.append((.batch, WireCodec.encode(fixtures.batch(sequence: 9, count: 6, kinds: EventKind.allCases))))
        for kind in EventKind.allCases { out.append((.event, WireCodec.encode(fixtures.event(kind)))) }
        out.append(
            (.ack, WireCodec.encode(
                BatchAck(
                    bootID: "boot", highestContiguousSequence: 77,
                    commands: [
                        .scan(scanID: "s1", path: "/", containerID: "c"), .setEnabledKinds([.exec, .dns]),
                        .ignoreCgroups([1, 2, 3]),
                    ]))))
        out.append(
            (.hello, WireCodec.encode(
                SensorHello(
                    sensorID: "s", bootID: "b", version: "1.0", kernel: "6.18", hooksLoaded: ["exec", "open"],
                    hooksFailed: ["kprobe": "missing"], nodeLabels: ["zone": "a", "role": "worker"]))))
        out.append(
            (.status, WireCodec.encode(
                SensorStatus(
                    sensorID: "s", bootID: "b", time: 123, drops: [.userQueue: 5, .spool: 1],
                    queueDepths: ["ring": 4], hooksLoaded: ["exec"], hooksFailed: ["x": "y"]))))
        out.append((.request, WireCodec.encode(RPCRequest(method: "patrol.v1.SensorService/Hello", payload: [1, 2, 3]))))
        out.append((.reply, WireCodec.encode(RPCReply(status: .notFound, message: "no such sensor", payload: [9]))))
        return out
    }

    @Test("truncations of valid messages at every length never crash")
    func truncations() async {
        var cases = 0
        for seed in 0..<4 as Range<UInt64> {
            for (kind, bytes) in Self.corpus(seed: seed) {
                #expect(Self.attempt(kind, bytes), "the untruncated message decodes")
                for length in 0..<bytes.count {
                    Self.attempt(kind, Array(bytes[..<length]))
                    cases += 1
                    if cases % 1_000 == 0 { await Task.yield() }
                }
            }
        }
        print("fuzz truncations: \(cases) cases")
        #expect(cases >= 20_000)
    }

    @Test("bit flips and byte mutations of valid messages never crash")
    func bitFlips() async {
        var generator = SeededGenerator(seed: 0xB17F_11B5)
        let corpus = Self.corpus(seed: 11) + Self.corpus(seed: 12)
        var decoded = 0
        let total = 40_000
        for round in 0..<total {
            if round % 1_000 == 0 { await Task.yield() }
            var (kind, bytes) = corpus[round % corpus.count]
            switch round % 4 {
            case 0, 1:  // flip 1-3 bits
                for _ in 0...Int.random(in: 0...2, using: &generator) {
                    let bit = Int.random(in: 0..<bytes.count * 8, using: &generator)
                    bytes[bit / 8] ^= 1 << UInt8(bit % 8)
                }
            case 2:  // overwrite a byte with an interesting value
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                bytes[position] = [0x00, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x08][Int.random(in: 0..<7, using: &generator)]
            default:  // insert or delete a byte
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                if Bool.random(using: &generator) {
                    bytes.insert(UInt8.random(in: 0...255, using: &generator), at: position)
                } else {
                    bytes.remove(at: position)
                }
            }
            if Self.attempt(kind, bytes) { decoded += 1 }
        }
        print("fuzz mutations: \(total) cases, \(decoded) still decoded")
    }

    @Test("random bytes never crash, as every message type")
    func randomBytes() async {
        var generator = SeededGenerator(seed: 0x5EED)
        var cases = 0
        for round in 0..<6_000 {
            if round % 200 == 0 { await Task.yield() }
            let length = Int.random(in: 0...96, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            for kind in Kind.allCases {
                Self.attempt(kind, bytes)
                cases += 1
            }
        }
        print("fuzz random bytes: \(cases) cases")
        #expect(cases >= 40_000)
    }
}

/// Tests that depend on `WireCodec.maxMessageBytes`, which is process-wide: serialized, and the limit is only ever
/// raised temporarily, so tests elsewhere (which decode small messages) are not affected.
@Suite("Wire size limit", .serialized)
struct SizeLimitTests {
    typealias Kind = FuzzTests.Kind

    /// A valid message padded with an unknown field to exactly `size` bytes.
    static func padded(_ bytes: [UInt8], to size: Int) -> [UInt8] {
        var padded = bytes
        var header = ProtoWriter()
        header.rawVarint(UInt64(1000 << 3 | 2))
        header.rawVarint(UInt64(size - bytes.count - 6))
        padded += header.bytes
        padded += [UInt8](repeating: 0x41, count: size - padded.count)
        return padded
    }

    @Test("oversized input is rejected before parsing")
    func oversized() {
        let limit = WireCodec.maxMessageBytes
        let valid = FuzzTests.corpus(seed: 1)
        for (kind, bytes) in valid {
            let padded = Self.padded(bytes, to: limit + 1)
            #expect(padded.count == limit + 1)
            do throws(WireFormatError) {
                switch kind {
                case .batch: _ = try WireCodec.decodeEventBatch(padded)
                case .event: _ = try WireCodec.decodeEvent(padded)
                case .ack: _ = try WireCodec.decodeBatchAck(padded)
                case .hello: _ = try WireCodec.decodeSensorHello(padded)
                case .status: _ = try WireCodec.decodeSensorStatus(padded)
                case .request: _ = try WireCodec.decodeRPCRequest(padded)
                case .reply: _ = try WireCodec.decodeRPCReply(padded)
                }
                Issue.record("oversized \(kind) decoded")
            } catch {
                #expect(error.code == .oversized)
            }
        }
    }

    @Test("the limit defaults to 16 MiB and can be raised")
    func configurable() throws {
        #expect(WireCodec.maxMessageBytes == 16 << 20)
        var fixtures = EventFixtures(seed: 3)
        let batch = fixtures.batch(sequence: 1, count: 3)
        let big = Self.padded(WireCodec.encode(batch), to: (16 << 20) + 1)
        do {
            _ = try WireCodec.decodeEventBatch(big)
            Issue.record("a message over the limit decoded")
        } catch {
            #expect(error.code == .oversized)
            #expect(error.message == "EventBatch is 16777217 bytes, more than the limit of 16777216")
        }
        do {
            _ = try WireCodec.decodeRPCRequest([UInt8](repeating: 0, count: (16 << 20) + 1))
            Issue.record("a message over the limit decoded")
        } catch {
            #expect(error.message == "RpcRequest is 16777217 bytes, more than the limit of 16777216")
        }
        WireCodec.maxMessageBytes = 32 << 20
        defer { WireCodec.maxMessageBytes = 16 << 20 }
        #expect(try WireCodec.decodeEventBatch(big) == batch)
    }
}
