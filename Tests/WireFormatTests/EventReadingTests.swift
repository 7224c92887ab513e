import EventModel
import TestSupport
import Testing

@_spi(Benchmarks) @testable import WireFormat

/// `decodeEventBatch` reads batches with WireFormat's own reader (`EventReading.swift`); protobuf-c plus
/// `EventReader` (`decodeEventBatchViaProtobufC`) is the reference. Every input here goes through both, and both must
/// give the same outcome: equal values, or an error with the same code and the same message.
extension ProtoWriter {
    /// An event's `process` field.
    mutating func process(_ build: (inout ProtoWriter) -> Void = { _ in }) { message(3, build) }
}

@Suite("Event reading")
struct EventReadingTests {
    enum Outcome: Equatable, CustomStringConvertible {
        case value(EventBatch)
        case error(WireFormatError.Code, String)

        var description: String {
            switch self {
            case .value(let batch): return "value(\(batch.events.count) events)"
            case .error(let code, let message): return "error(\(code), \(message))"
            }
        }

        var isValue: Bool {
            if case .value = self { return true }
            return false
        }
    }

    static func outcome(_ decode: () throws(WireFormatError) -> EventBatch) -> Outcome {
        do throws(WireFormatError) { return .value(try decode()) } catch { return .error(error.code, error.message) }
    }

    static func bothWays(_ bytes: [UInt8]) -> (reader: Outcome, protobufC: Outcome) {
        (
            outcome { () throws(WireFormatError) in try WireCodec.decodeEventBatch(bytes) },
            outcome { () throws(WireFormatError) in try WireCodec.decodeEventBatchViaProtobufC(bytes) }
        )
    }

    /// Decodes both ways and expects the same outcome; returns it.
    @discardableResult
    static func expectAgreement(
        _ bytes: [UInt8], _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation
    ) -> Outcome {
        let (reader, reference) = bothWays(bytes)
        #expect(reader == reference, "\(what()) bytes: \(bytes.prefix(64).map { $0 })", sourceLocation: sourceLocation)
        return reader
    }

    // MARK: Valid batches

    @Test("a batch of every event kind decodes to the values protobuf-c gives", arguments: [1, 7, 300])
    func everyKind(count: Int) {
        var fixtures = EventFixtures(seed: 0x5EAD + UInt64(count), containerCount: 5)
        let batch = fixtures.batch(sequence: 4, count: count, kinds: EventKind.allCases)
        #expect(Self.expectAgreement(WireCodec.encode(batch)) == .value(batch))
    }

    @Test("the bench's exec/open/connect batches decode to the values protobuf-c gives")
    func benchMix() {
        var fixtures = EventFixtures(seed: 42)
        for sequence in 1...3 {
            let batch = fixtures.batch(
                sequence: UInt64(sequence), count: 1000, kinds: EventFixtures.execOpenConnect)
            #expect(Self.expectAgreement(WireCodec.encode(batch)) == .value(batch))
        }
    }

    @Test(
        "edge values of every payload case decode the same both ways", arguments: 0..<RoundTripTests.edgePayloads.count)
    func edgeValues(index: Int) {
        let payload = RoundTripTests.edgePayloads[index]
        let events = [
            Event(time: 0, node: "", process: RoundTripTests.host, payload: payload, count: 1),
            Event(
                time: .max, node: RoundTripTests.unicode, process: RoundTripTests.maxProcess,
                container: ContainerRef(containerID: ""), payload: payload, count: .max),
            Event(
                time: 2, node: String(repeating: "n", count: 300), process: RoundTripTests.maxProcess,
                container: ContainerRef(
                    containerID: "c1", podUID: "u",
                    labels: ["app": RoundTripTests.unicode, "app.kubernetes.io/name": "web", "e": "", "": "x"],
                    ownerKind: "Deployment", ownerName: String(repeating: "o", count: 20_000),
                    runningAtSensorStart: true),
                payload: payload),
        ]
        let batch = EventBatch(sensorID: "s", bootID: "", sequence: .max, compressed: true, events: events)
        #expect(Self.expectAgreement(WireCodec.encode(batch)) == .value(batch))
    }

    @Test("events of one container share one ContainerRef storage after decoding")
    func sharedContainerStorage() throws {
        var fixtures = EventFixtures(seed: 3, containerCount: 2)
        let batch = fixtures.batch(sequence: 1, count: 200, kinds: EventFixtures.execOpenConnect)
        let decoded = try WireCodec.decodeEventBatch(WireCodec.encode(batch))
        let refs = decoded.events.compactMap(\.container)
        let identities = Set(refs.map(\.storageIdentity))
        #expect(!refs.isEmpty)
        #expect(identities.count <= 2)
    }

    // MARK: Hand-written input (shapes the encoder never writes)

    /// A batch envelope with the given events (each an `Event` body) and optional tables.
    static func batch(
        events: [[UInt8]], containers: [[UInt8]] = [], strings: [String] = [],
        extra: (inout ProtoWriter) -> Void = { _ in }
    ) -> [UInt8] {
        var writer = ProtoWriter()
        writer.string(1, "sensor")
        writer.varint(3, 1)
        for event in events { writer.lengthDelimited(5, event) }
        for container in containers { writer.lengthDelimited(6, container) }
        for text in strings { writer.string(7, text) }
        extra(&writer)
        return writer.bytes
    }

    static func event(_ build: (inout ProtoWriter) -> Void) -> [UInt8] {
        var writer = ProtoWriter()
        build(&writer)
        return writer.bytes
    }

    @Test("fields in any order, unknown fields of every wire type, and repeated fields decode as protobuf-c does")
    func reorderedAndRepeated() {
        let cases: [(String, [UInt8])] = [
            (
                "payload before process, count last",
                Self.batch(events: [
                    Self.event { w in
                        w.message(12) { $0.string(1, "/etc/passwd") }
                        w.message(3) {
                            $0.varint(1, 7)
                            $0.string(7, "/bin/cat")
                        }
                        w.varint(5, 1)
                    }
                ])
            ),
            (
                "unknown fields of wire types 0, 1, 2 and 5, and reserved numbers",
                Self.batch(
                    events: [
                        Self.event { w in
                            w.varint(5, 1)
                            w.varint(99, 12345)
                            w.rawVarint(UInt64(100 << 3 | 1))
                            w.bytes += [1, 2, 3, 4, 5, 6, 7, 8]
                            w.string(7, "reserved")
                            w.rawVarint(UInt64(101 << 3 | 5))
                            w.bytes += [1, 2, 3, 4]
                            w.message(3) {
                                $0.varint(40, 1)
                                $0.string(6, "sh")
                            }
                            w.message(11) {
                                $0.varint(9, 3)
                                $0.varint(1, 2)
                            }
                        }
                    ],
                    extra: {
                        $0.varint(1000, 5)
                        $0.string(8, "x")
                    })
            ),
            (
                "a repeated scalar keeps the last value",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 9)
                        w.process()
                        w.varint(5, 2)
                        w.varint(1, 10)
                        w.varint(1, 11)
                        w.message(11) {
                            $0.varint(1, 3)
                            $0.varint(1, 4)
                        }
                    }
                ])
            ),
            (
                "a repeated process merges: strings from the last occurrence that has them, numbers from the last",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.message(3) {
                            $0.varint(1, 5)
                            $0.varint(2, 6)
                            $0.string(6, "first")
                            $0.string(7, "/a")
                        }
                        w.message(3) {
                            $0.varint(3, 8)
                            $0.string(7, "/b")
                            $0.string(8, "")
                        }
                        w.message(11) { _ in }
                    }
                ])
            ),
            (
                "a repeated inline container merges and concatenates its labels",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.message(4) {
                            $0.string(1, "containerd")
                            $0.string(2, "c1")
                            $0.varint(11, 1)
                            $0.message(8) {
                                $0.string(1, "app")
                                $0.string(2, "one")
                            }
                        }
                        w.message(4) {
                            $0.string(2, "c2")
                            $0.message(8) {
                                $0.string(1, "app")
                                $0.string(2, "two")
                            }
                            $0.message(8) {
                                $0.string(1, "tier")
                                $0.string(2, "web")
                            }
                        }
                        w.message(11) { _ in }
                    }
                ])
            ),
            (
                "a second payload field replaces the first, even of the same case",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.message(10) {
                            $0.string(1, "/bin/a")
                            $0.string(2, "a")
                            $0.varint(4, 1)
                        }
                        w.message(10) { $0.string(2, "b") }
                        w.message(12) {
                            $0.string(1, "/x")
                            $0.varint(2, 1)
                        }
                        w.message(12) { $0.varint(3, 4) }
                    }
                ])
            ),
            (
                "a malformed payload that a later one replaces still makes the batch malformed",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.lengthDelimited(10, [0x0A, 0x05, 0x41])
                        w.message(11) { _ in }
                    }
                ])
            ),
            (
                "packed and unpacked syscall numbers mix",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.message(16) { m in
                            m.varint(1, 3)
                            var packed = ProtoWriter()
                            packed.rawVarint(1)
                            packed.rawVarint(300)
                            packed.rawVarint(UInt64(UInt32.max) + 5)
                            m.lengthDelimited(1, packed.bytes)
                            m.varint(1, 0)
                            m.lengthDelimited(1, [])
                        }
                    }
                ])
            ),
            (
                "bools of other wire types and varints wider than their field",
                Self.batch(
                    events: [
                        Self.event { w in
                            w.varint(5, (1 << 32) + 1)
                            w.process {
                                $0.varint(1, UInt64.max)
                                $0.varint(4, 1 << 40)
                            }
                            w.message(10) { m in
                                m.string(4, "\u{0}")
                                m.rawVarint(6 << 3 | 5)
                                m.bytes += [0, 0, 0x80, 0]
                                m.rawVarint(7 << 3 | 1)
                                m.bytes += [0, 0, 0, 0, 0, 0, 0, 2]
                            }
                        }
                    ],
                    extra: { w in
                        w.rawVarint(4 << 3)
                        w.bytes += [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]
                    })
            ),
            (
                "strings end at their first NUL",
                Self.batch(
                    events: [
                        Self.event { w in
                            w.varint(5, 1)
                            w.string(2, "node\u{0}hidden")
                            w.process {
                                $0.string(6, "\u{0}x")
                                $0.varint(11, 1)
                            }
                            w.message(10) {
                                $0.string(1, "/bin/sh\u{0}")
                                $0.string(2, "a\u{0}b")
                                $0.string(2, "\u{0}")
                            }
                        }
                    ], strings: ["exe\u{0}tail"])
            ),
            (
                // protobuf-c refuses number 0 only in a one-byte tag (see `errors`); in a longer tag it is unknown.
                "a two-byte tag of field number 0 is an unknown field",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.bytes += [0x80, 0x00, 0x01]
                        w.message(11) { _ in }
                    }
                ])
            ),
            (
                "a long tag and a five-byte length prefix",
                Self.batch(events: [
                    Self.event { w in
                        w.bytes += [0x28 | 0x80, 0x80, 0x80, 0x80, 0x00, 0x01]  // field 5 in 5 bytes
                        w.process()
                        w.bytes += [0x5A, 0x80, 0x80, 0x80, 0x80, 0x00]  // field 11, length 0 in 5 bytes
                    }
                ])
            ),
        ]
        for (what, bytes) in cases {
            let outcome = Self.expectAgreement(bytes, what)
            if what.contains("malformed") {
                #expect(!outcome.isValue, "\(what)")
            } else {
                #expect(outcome.isValue, "\(what): \(outcome)")
            }
        }
    }

    @Test("malformed and refused input gives the same error code and message both ways")
    func errors() {
        let valid = Self.event { w in
            w.varint(5, 1)
            w.process()
            w.message(11) { _ in }
        }
        let cases: [(String, [UInt8], WireFormatError.Code)] = [
            ("empty input", [], .missingField),
            ("truncated varint", [0x18, 0x80], .malformed),
            ("varint of 11 bytes", [0x18] + [UInt8](repeating: 0x80, count: 10) + [0x01], .malformed),
            ("length past the end", [0x0A, 0x05, 0x41], .malformed),
            (
                "length whose sum with its prefix wraps 32 bits",
                [0x0A, 0xFC, 0xFF, 0xFF, 0xFF, 0x0F] + [UInt8](repeating: 0x41, count: 34), .malformed
            ),
            (
                "length of an unknown field that wraps 32 bits",
                [0x4A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F] + [UInt8](repeating: 0x41, count: 34), .malformed
            ),
            ("length prefix of 6 bytes", [0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], .malformed),
            ("tag of 6 bytes", [0x80, 0x80, 0x80, 0x80, 0x80, 0x00], .malformed),
            ("start group", Self.batch(events: [valid]) + [0x0B], .malformed),
            ("end group", Self.batch(events: [valid]) + [0x0C], .malformed),
            ("wire type 6", Self.batch(events: [valid]) + [0x0E], .malformed),
            ("short fixed64", Self.batch(events: [valid]) + [0x09, 1, 2, 3], .malformed),
            ("short fixed32", Self.batch(events: [valid]) + [0x0D, 1, 2], .malformed),
            ("string with varint wire type", [0x08, 0x01], .malformed),
            ("field number 0", Self.batch(events: [valid]) + [0x00, 0x01], .malformed),

            ("sequence with length wire type", [0x0A, 0x01, 0x73, 0x1A, 0x01, 0x01], .malformed),
            ("events with varint wire type", Self.batch(events: []) + [0x28, 0x01], .malformed),
            (
                "packed syscalls with a cut varint",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.lengthDelimited(16, [0x0A, 0x01, 0x80])
                    }
                ]),
                .malformed
            ),
            (
                "syscalls as fixed32",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.lengthDelimited(16, [0x0D, 1, 2, 3, 4])
                    }
                ]),
                .malformed
            ),
            ("no sensor id", [0x18, 0x01], .missingField),
            ("sequence 0", [0x0A, 0x01, 0x73], .invalidValue),
            (
                "count 0",
                Self.batch(events: [
                    Self.event { w in
                        w.process()
                        w.message(11) { _ in }
                    }
                ]), .invalidValue
            ),
            (
                "no process",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.message(11) { _ in }
                    }
                ]), .missingField
            ),
            (
                "no payload",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                    }
                ]), .invalidValue
            ),
            (
                "string ref beyond the table",
                Self.batch(
                    events: [
                        Self.event { w in
                            w.varint(5, 1)
                            w.process { $0.varint(11, 3) }
                            w.message(11) { _ in }
                        }
                    ],
                    strings: ["a"]), .invalidValue
            ),
            (
                "string ref and inline string",
                Self.batch(
                    events: [
                        Self.event { w in
                            w.varint(5, 1)
                            w.process {
                                $0.varint(11, 1)
                                $0.string(7, "x")
                            }
                            w.message(11) { _ in }
                        }
                    ],
                    strings: ["a"]), .invalidValue
            ),
            (
                "container index beyond the table",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.varint(6, 2)
                        w.message(11) { _ in }
                    }
                ]),
                .invalidValue
            ),
            (
                "container index and inline container",
                Self.batch(
                    events: [
                        Self.event { w in
                            w.varint(5, 1)
                            w.process()
                            w.varint(6, 1)
                            w.message(4) { $0.string(2, "c") }
                            w.message(11) { _ in }
                        }
                    ],
                    containers: [Self.event { $0.string(2, "c") }]), .invalidValue
            ),
            (
                "unknown address family",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.message(13) { $0.varint(1, 9) }
                    }
                ]),
                .invalidValue
            ),
            (
                "port out of range",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.message(14) { $0.varint(6, 70_000) }
                    }
                ]),
                .invalidValue
            ),
            (
                "dns query type out of range",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.message(15) { $0.varint(2, 1 << 16) }
                    }
                ]),
                .invalidValue
            ),
            (
                "invalid UTF-8 in a table string", Self.batch(events: [valid], strings: []) + [0x3A, 0x02, 0xC3, 0x28],
                .invalidValue
            ),
            (
                "invalid UTF-8 in argv after a bad path ref",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.message(10) {
                            $0.lengthDelimited(2, [0xFF])
                            $0.varint(5, 9)
                        }
                    }
                ]),
                .invalidValue
            ),
            (
                "invalid UTF-8 in an inline label",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.message(4) { $0.message(8) { $0.lengthDelimited(1, [0xED, 0xA0, 0x80]) } }
                        w.message(11) { _ in }
                    }
                ]),
                .invalidValue
            ),
            (
                "empty audit document",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.message(25) { $0.string(2, "src") }
                    }
                ]),
                .missingField
            ),
            (
                "audit document that is not JSON",
                Self.batch(events: [
                    Self.event { w in
                        w.varint(5, 1)
                        w.process()
                        w.message(25) { $0.string(1, "{\"a\":") }
                    }
                ]),
                .invalidValue
            ),
            (
                "a value error before a malformed event is reported as malformed",
                Self.batch(events: [
                    Self.event { w in
                        w.process()
                        w.message(11) { _ in }
                    }, [0x08],
                ]), .malformed
            ),
            (
                "a value error before a malformed table is reported as malformed",
                [0x0A, 0x01, 0x73] + [0x3A, 0x05, 0x41], .malformed
            ),
        ]
        for (what, bytes, code) in cases {
            let outcome = Self.expectAgreement(bytes, what)
            guard case .error(let got, let message) = outcome else {
                Issue.record("\(what): decoded")
                continue
            }
            #expect(got == code, "\(what): \(message)")
        }
    }

    @Test("input over the size limit is refused before reading")
    func oversized() {
        let bytes = [UInt8](repeating: 0x0A, count: WireCodec.maxMessageBytes + 1)
        let outcome = Self.expectAgreement(bytes)
        guard case .error(let code, _) = outcome else {
            Issue.record("an oversized batch decoded")
            return
        }
        #expect(code == .oversized)
    }
}
