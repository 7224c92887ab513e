import EventModel
import TestSupport
import Testing

@testable import WireFormat

/// The batch encoder writes events itself (`EventWriting.swift`) instead of packing them with protobuf-c; a lone
/// `Event` is still packed by protobuf-c. Both must give the same bytes, or a collector built against another
/// protobuf implementation could read a batch differently from a lone event.
@Suite("Event writer")
struct EventWriterTests {
    func expectSameBytes(_ event: Event, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(WireCodec.writtenEvent(event) == WireCodec.encode(event), sourceLocation: sourceLocation)
    }

    @Test("writes every payload kind from fixtures byte for byte as protobuf-c packs it", arguments: EventKind.allCases)
    func fixtures(kind: EventKind) {
        var fixtures = EventFixtures(seed: 11 &+ UInt64(EventKind.allCases.firstIndex(of: kind)!))
        for _ in 0..<50 { expectSameBytes(fixtures.event(kind)) }
    }

    @Test("writes edge values, inline containers, labels and long fields as protobuf-c packs them",
        arguments: 0..<RoundTripTests.edgePayloads.count)
    func edgeValues(index: Int) {
        let payload = RoundTripTests.edgePayloads[index]
        expectSameBytes(Event(time: 0, node: "", process: RoundTripTests.host, payload: payload, count: 0))
        expectSameBytes(
            Event(
                time: .max, node: RoundTripTests.unicode, process: RoundTripTests.maxProcess,
                container: ContainerRef(containerID: ""), payload: payload, count: .max))
        expectSameBytes(
            Event(
                time: 2, node: String(repeating: "n", count: 300), process: RoundTripTests.maxProcess,
                container: ContainerRef(
                    containerID: "c1", podUID: "u",
                    labels: ["app": RoundTripTests.unicode, "app.kubernetes.io/name": "web", "e": "", "": "x"],
                    ownerKind: "Deployment", ownerName: String(repeating: "o", count: 20_000)),
                payload: payload))
        expectSameBytes(
            Event(
                time: 3, node: "n", process: RoundTripTests.host,
                container: ContainerRef(containerID: "c2", runningAtSensorStart: true), payload: payload))
    }

    @Test("cuts strings at a NUL, as protobuf-c's C strings do")
    func nulInStrings() throws {
        let event = Event(
            time: 1, node: "a\u{0}b", process: ProcessInfo(comm: "\u{0}", exe: "/bin/x\u{0}y"),
            payload: .exec(Exec(path: "/p\u{0}", argv: ["\u{0}", "x\u{0}z", ""], env: ["A=\u{0}"])))
        expectSameBytes(event)
        let batch = EventBatch(sensorID: "s", bootID: "b", sequence: 1, events: [event])
        let decoded = try WireCodec.decodeEventBatch(WireCodec.encode(batch))
        #expect(decoded.events.first?.node == "a")
        #expect(decoded.events.first?.process.exe == "/bin/x")
        guard case .exec(let exec) = decoded.events.first?.payload else {
            Issue.record("not an exec")
            return
        }
        #expect(exec.argv == ["", "x", ""])
    }
}
