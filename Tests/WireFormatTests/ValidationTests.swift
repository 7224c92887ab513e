import EventModel
import TestSupport
import Testing

@testable import WireFormat

@Suite("Wire validation")
struct ValidationTests {
    /// An Event with a process and count 1, plus whatever `extra` adds.
    func eventBytes(count: UInt64 = 1, process: Bool = true, _ extra: (inout ProtoWriter) -> Void = { _ in })
        -> [UInt8]
    {
        var writer = ProtoWriter()
        writer.varint(1, 1_700_000_000)
        writer.string(2, "node")
        if process { writer.message(3) { $0.varint(1, 42) } }
        writer.varint(5, count)
        extra(&writer)
        return writer.bytes
    }

    func expectError(
        _ code: WireFormatError.Code, _ message: String, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) {
        do {
            try body()
            Issue.record("expected \(code): \(message)", sourceLocation: sourceLocation)
        } catch {
            guard let error = error as? WireFormatError else {
                Issue.record("expected a WireFormatError, got \(error)", sourceLocation: sourceLocation)
                return
            }
            #expect(error.code == code, sourceLocation: sourceLocation)
            #expect(error.message == message, sourceLocation: sourceLocation)
        }
    }

    @Test("a valid hand-written event decodes")
    func handWritten() throws {
        let event = try WireCodec.decodeEvent(eventBytes { $0.message(23) { $0.varint(1, 5) } })
        #expect(event.payload == .bpf(BPFCall(command: 5)))
        #expect(event.process.pid == 42)
        #expect(event.container == nil)
    }

    @Test("an event with no payload or an unknown payload field is rejected")
    func unknownPayload() {
        expectError(.invalidValue, "Event: unknown payload case") { _ = try WireCodec.decodeEvent(eventBytes()) }
        expectError(.invalidValue, "Event: unknown payload case") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(99) { $0.varint(1, 1) } })
        }
    }

    @Test("errors inside a batch name the event index")
    func batchIndex() {
        var writer = ProtoWriter()
        writer.string(1, "sensor")
        writer.varint(3, 7)
        for _ in 0..<17 { writer.lengthDelimited(5, eventBytes { $0.message(11) { _ in } }) }
        writer.lengthDelimited(5, eventBytes())
        expectError(.invalidValue, "event 17: unknown payload case") {
            _ = try WireCodec.decodeEventBatch(writer.bytes)
        }
    }

    @Test("batch header checks")
    func batchHeader() {
        var fixtures = EventFixtures(seed: 1)
        let events = fixtures.events(2)
        expectError(.invalidValue, "EventBatch.sequence is 0") {
            _ = try WireCodec.decodeEventBatch(WireCodec.encode(EventBatch(sensorID: "s", bootID: "b", sequence: 0, events: events)))
        }
        expectError(.missingField, "EventBatch.sensor_id is empty") {
            _ = try WireCodec.decodeEventBatch(WireCodec.encode(EventBatch(sensorID: "", bootID: "b", sequence: 1, events: events)))
        }
    }

    @Test("event field checks")
    func eventFields() {
        expectError(.invalidValue, "Event: count is 0") {
            _ = try WireCodec.decodeEvent(eventBytes(count: 0) { $0.message(11) { _ in } })
        }
        expectError(.missingField, "Event: process is missing") {
            _ = try WireCodec.decodeEvent(eventBytes(process: false) { $0.message(11) { _ in } })
        }
        expectError(.invalidValue, "Event: connect.remote_port 70000 is out of range 0...65535") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(13) { $0.varint(6, 70000) } })
        }
        expectError(.invalidValue, "Event: accept.local_port 65536 is out of range 0...65535") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(14) { $0.varint(4, 65536) } })
        }
        expectError(.invalidValue, "Event: connect.family 9 is not a known AddressFamily") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(13) { $0.varint(1, 9) } })
        }
        expectError(.invalidValue, "Event: connect.proto 7 is not a known TransportProtocol") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(13) { $0.varint(2, 7) } })
        }
        expectError(.invalidValue, "Event: dns.query_type 65536 is out of range 0...65535") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(15) { $0.varint(2, 65536) } })
        }
        expectError(.invalidValue, "Event: exec.argv is not valid UTF-8") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(10) { $0.lengthDelimited(2, [0x61, 0xff, 0xfe]) } })
        }
        expectError(.invalidValue, "Event: process.exe is not valid UTF-8") {
            var writer = ProtoWriter()
            writer.message(3) { $0.lengthDelimited(7, [0xc3]) }
            writer.varint(5, 1)
            writer.message(11) { _ in }
            _ = try WireCodec.decodeEvent(writer.bytes)
        }
    }

    @Test("container_index must refer into the batch's container table")
    func containerIndex() {
        expectError(.invalidValue, "Event: container_index 1 is beyond the batch's 0 containers") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.varint(6, 1); $0.message(11) { _ in } })
        }
        var writer = ProtoWriter()
        writer.string(1, "sensor")
        writer.varint(3, 1)
        writer.message(6) { $0.string(2, "abc") }
        writer.lengthDelimited(5, eventBytes { $0.varint(6, 1); $0.message(11) { _ in } })
        writer.lengthDelimited(5, eventBytes { $0.varint(6, 2); $0.message(11) { _ in } })
        expectError(.invalidValue, "event 1: container_index 2 is beyond the batch's 1 containers") {
            _ = try WireCodec.decodeEventBatch(writer.bytes)
        }
        expectError(.invalidValue, "Event: both container and container_index are set") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(4) { $0.string(2, "x") }; $0.varint(6, 1); $0.message(11) { _ in } })
        }
        expectError(.invalidValue, "EventBatch.containers[0].image is not valid UTF-8") {
            var bad = ProtoWriter()
            bad.string(1, "sensor")
            bad.varint(3, 1)
            bad.message(6) { $0.lengthDelimited(7, [0xff]) }
            _ = try WireCodec.decodeEventBatch(bad.bytes)
        }
    }

    @Test("container labels: a repeated key keeps the last value, like a map; bad UTF-8 is named")
    func containerLabels() throws {
        let event = try WireCodec.decodeEvent(
            eventBytes {
                $0.message(4) { container in
                    container.string(2, "c1")
                    container.message(8) { $0.string(1, "app"); $0.string(2, "old") }
                    container.message(8) { $0.string(1, "app"); $0.string(2, "web") }
                    container.message(8) { $0.string(1, "empty") }
                    container.string(9, "Deployment")
                    container.string(10, "web")
                }
                $0.message(11) { _ in }
            })
        #expect(event.container?.labels == ["app": "web", "empty": ""])
        #expect(event.container?.ownerKind == "Deployment" && event.container?.ownerName == "web")
        expectError(.invalidValue, "EventBatch.containers[0].labels[1].value is not valid UTF-8") {
            var bad = ProtoWriter()
            bad.string(1, "sensor")
            bad.varint(3, 1)
            bad.message(6) { container in
                container.message(8) { $0.string(1, "a"); $0.string(2, "b") }
                container.message(8) { $0.string(1, "c"); $0.lengthDelimited(2, [0xff]) }
            }
            _ = try WireCodec.decodeEventBatch(bad.bytes)
        }
        expectError(.invalidValue, "Event.container.owner_name is not valid UTF-8") {
            _ = try WireCodec.decodeEvent(
                eventBytes { $0.message(4) { $0.lengthDelimited(10, [0xc3]) }; $0.message(11) { _ in } })
        }
    }

    @Test("*_ref fields must refer into the batch's string table")
    func stringRefs() throws {
        expectError(.invalidValue, "Event: process.exe_ref 1 is beyond the batch's 0 strings") {
            _ = try WireCodec.decodeEvent(
                eventBytes(process: false) { $0.message(3) { $0.varint(11, 1) }; $0.message(11) { _ in } })
        }
        func batch(strings: [[UInt8]], _ event: [UInt8]) -> [UInt8] {
            var writer = ProtoWriter()
            writer.string(1, "sensor")
            writer.varint(3, 1)
            writer.lengthDelimited(5, event)
            for text in strings { writer.lengthDelimited(7, text) }
            return writer.bytes
        }
        let exeRef = eventBytes(process: false) { $0.message(3) { $0.varint(11, 1) }; $0.message(11) { _ in } }
        let decoded = try WireCodec.decodeEventBatch(batch(strings: [Array("/usr/bin/x".utf8)], exeRef))
        #expect(decoded.events.first?.process.exe == "/usr/bin/x")
        expectError(.invalidValue, "event 0: open.path_ref 2 is beyond the batch's 1 strings") {
            _ = try WireCodec.decodeEventBatch(
                batch(strings: [Array("/etc/passwd".utf8)], eventBytes { $0.message(12) { $0.varint(4, 2) } }))
        }
        expectError(.invalidValue, "event 0: both node and node_ref are set") {
            _ = try WireCodec.decodeEventBatch(
                batch(strings: [Array("n".utf8)], eventBytes { $0.varint(26, 1); $0.message(11) { _ in } }))
        }
        expectError(.invalidValue, "EventBatch.strings[1] is not valid UTF-8") {
            _ = try WireCodec.decodeEventBatch(batch(strings: [Array("ok".utf8), [0xff]], exeRef))
        }
    }

    @Test("audit documents must be JSON")
    func auditJSON() {
        expectError(.missingField, "Event: audit.document_json is empty") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(25) { $0.string(2, "x") } })
        }
        expectError(.invalidValue, "Event: audit.document_json is not valid JSON: unterminated object at offset 8") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(25) { $0.string(1, #"{"a": 1 "#) } })
        }
        expectError(.invalidValue, "Event: audit.document_json is not valid JSON: trailing characters after the document at offset 3") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(25) { $0.string(1, "{} x") } })
        }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        expectError(.invalidValue, "Event: audit.document_json is not valid JSON: nesting deeper than 256 at offset 256") {
            _ = try WireCodec.decodeEvent(eventBytes { $0.message(25) { $0.string(1, deep) } })
        }
    }

    @Test("malformed input")
    func malformed() {
        expectError(.malformed, "Event: 2 bytes are not a valid protobuf encoding (truncated, corrupt or wrong type)") {
            _ = try WireCodec.decodeEvent([0x0a, 0x05])
        }
    }

    @Test("control message checks")
    func controlMessages() {
        expectError(.invalidValue, "RpcReply.status 99 is not a gRPC status code (0...16)") {
            var writer = ProtoWriter()
            writer.varint(1, 99)
            _ = try WireCodec.decodeRPCReply(writer.bytes)
        }
        expectError(.missingField, "RpcRequest.method is empty") { _ = try WireCodec.decodeRPCRequest([]) }
        expectError(.invalidValue, "BatchAck.commands[0]: unknown directive case") {
            var writer = ProtoWriter()
            writer.message(3) { _ in }
            _ = try WireCodec.decodeBatchAck(writer.bytes)
        }
        expectError(.invalidValue, "BatchAck.commands[0].set_enabled_kinds.kinds[1]: 0 is not a known EventKind") {
            var writer = ProtoWriter()
            writer.message(3) { $0.message(2) { $0.varint(1, 1); $0.varint(1, 0) } }
            _ = try WireCodec.decodeBatchAck(writer.bytes)
        }
        expectError(.invalidValue, "SensorStatus.drops[1]: duplicate stage user_queue") {
            var writer = ProtoWriter()
            writer.string(1, "s")
            writer.message(4) { $0.varint(1, 2); $0.varint(2, 1) }
            writer.message(4) { $0.varint(1, 2); $0.varint(2, 5) }
            _ = try WireCodec.decodeSensorStatus(writer.bytes)
        }
        expectError(.invalidValue, "SensorStatus.drops[0].stage 0 is not a known DropStage") {
            var writer = ProtoWriter()
            writer.string(1, "s")
            writer.message(4) { $0.varint(2, 1) }
            _ = try WireCodec.decodeSensorStatus(writer.bytes)
        }
        expectError(.missingField, "SensorHello.sensor_id is empty") {
            _ = try WireCodec.decodeSensorHello(WireCodec.encode(SensorHello(sensorID: "", bootID: "b", version: "1")))
        }
        expectError(.invalidValue, "SensorHello.node_labels[0].value is not valid UTF-8") {
            var writer = ProtoWriter()
            writer.string(1, "s")
            writer.message(7) { $0.string(1, "k"); $0.lengthDelimited(2, [0x80]) }
            _ = try WireCodec.decodeSensorHello(writer.bytes)
        }
    }

    @Test("errors describe themselves with code and message")
    func description() {
        let error = WireFormatError(.invalidValue, "EventBatch.sequence is 0")
        #expect(error.description == "invalid_value: EventBatch.sequence is 0")
    }
}
