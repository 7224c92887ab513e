import EventModel
import Foundation
import Testing
import TestSupport
import Transport
import WireFormat

/// Bad input to a running collector gets precise refusals, is counted, and never disturbs other sensors.
@Suite(.serialized) struct HostileInputTests {
    /// 100k malformed requests (random bytes, truncations and bit flips of a real batch, oversized frames,
    /// unknown methods, raw non-envelope frames) while a real sensor replays 50k events: every malformed
    /// request gets an error reply that says what was wrong, the collector stays up, and the sensor's
    /// events all arrive exactly once.
    @Test(.timeLimit(.minutes(10))) func malformedRequestsAreRefusedWhileOthersAreServed() async throws {
        let harness = try Harness("hostile", scheme: "tcp")
        defer { harness.directory.remove() }
        let collector = try harness.collector()
        let replay = try harness.replayFile(events: 10_000)
        let sensor = try harness.sensor(replay: replay, repeatCount: 5)

        var fixtures = EventFixtures(seed: 99)
        let valid = WireCodec.encode(fixtures.batch(sequence: 1, count: 50, kinds: EventFixtures.execOpenConnect))
        var random = SeededGenerator(seed: 1234)
        let client = try RPCClient(configuration: RPCClientConfiguration(address: harness.address))
        defer { client.close() }

        var invalidArgument = 0
        var unimplemented = 0
        var accepted = 0
        let total = 100_000
        for index in 0..<total {
            var method = RPCMethods.sendBatch
            var payload: [UInt8]
            switch index % 5 {
            case 0:  // random bytes
                payload = (0..<Int.random(in: 0...256, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 1:  // a real batch cut short
                payload = Array(valid.prefix(Int.random(in: 0..<valid.count, using: &random)))
            case 2:  // a real batch with flipped bits
                payload = valid
                for _ in 0..<4 {
                    let at = Int.random(in: 0..<payload.count, using: &random)
                    payload[at] ^= UInt8(1 << Int.random(in: 0...7, using: &random))
                }
            case 3:  // a method nobody serves
                method = "patrol.v1.SensorService/Nope\(index % 7)"
                payload = []
            default:  // a sensor id but no sequence: well-formed protobuf, invalid batch
                payload = [0x0a, 0x03, 0x61, 0x62, 0x63]
            }
            let reply = try await client.call(RPCRequest(method: method, payload: payload), timeout: .seconds(30))
            switch reply.status {
            case .invalidArgument:
                invalidArgument += 1
                #expect(!reply.message.isEmpty)
            case .unimplemented: unimplemented += 1
            case .ok: accepted += 1  // a bit flip can leave a batch valid; then it is a real batch
            default: Issue.record("unexpected status \(reply.status) for case \(index % 5): \(reply.message)")
            }
        }
        #expect(unimplemented == total / 5)
        #expect(invalidArgument + accepted + unimplemented == total)
        #expect(invalidArgument >= total * 3 / 5 - accepted)

        // Frames that are not even an RPC envelope, and one far over the size limit, over raw nng sockets.
        let garbage = harness.directory.file("garbage.bin")
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: garbage))
        let oversized = harness.directory.file("oversized.bin")
        try Data(count: 20 << 20).write(to: URL(fileURLWithPath: oversized))
        for file in [garbage, oversized] {
            let status = try await offPool { () -> Int32 in
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/nngcat")
                process.arguments = ["--req0", "--dial", harness.address, "--file", file, "--count", "1", "--recv-timeout", "2"]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                process.waitUntilExit()
                return process.terminationStatus
            }
            _ = status  // nngcat may see a reply or a closed connection; either way the collector must live on
        }
        #expect(collector.isRunning)

        // The well-behaved sensor was served throughout.
        #expect(await sensor.waitForExit(timeout: .seconds(300)) == 0, "sensor log:\n\(sensor.standardError.suffix(2000))")
        let reply = try await client.call(RPCRequest(method: "x", payload: []), timeout: .seconds(10))
        #expect(reply.status == .unimplemented)
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(30)) == 0)
        // The real sensor's 50 batches all arrived, in full; nothing else was counted unless a bit flip
        // happened to leave a batch valid.
        let progress = try await harness.sensorProgress().filter { $0.sensorID == "sensor-a" }
        #expect(progress.map(\.contiguous) == [50])
        let ingested = try await harness.counters()["events_ingested"] ?? 0
        if accepted == 0 { #expect(ingested == 50_000) } else { #expect(ingested >= 50_000) }
        #expect(collector.standardError.contains("malformed request refused"))
    }
}
