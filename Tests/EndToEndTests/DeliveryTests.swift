import Foundation
import Testing
import TestSupport

/// Delivery guarantees of DESIGN.md §3, shown with the real executables over tcp loopback.
@Suite(.serialized) struct DeliveryTests {
    /// 1M events replayed while the collector is SIGKILLed and restarted twice: the collector's own
    /// store counts exactly 1M ingested events, none lost and none twice.
    @Test(.timeLimit(.minutes(10))) func millionEventsSurviveTwoCollectorKills() async throws {
        let harness = try Harness("kill", scheme: "tcp")
        defer { harness.directory.remove() }
        let replay = try harness.replayFile(events: 10_000)
        let sensor = try harness.sensor(replay: replay, repeatCount: 100)
        var collector = try harness.collector()
        for round in 1...2 {
            // Let some batches land (waiting for the store to show them, not a fixed time: a collector that
            // starts slowly on a busy machine would otherwise be killed before its first commit), then kill
            // without warning and restart.
            let before = try await harness.counters()["events_ingested"] ?? 0
            let deadline = ContinuousClock.now + .seconds(60)
            while (try await harness.counters()["events_ingested"] ?? 0) <= before, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await Task.sleep(for: .milliseconds(200))
            collector.signal(SIGKILL)
            await collector.waitForExit(timeout: .seconds(10))
            // The kill must land mid-run for the test to mean anything.
            let ingestedAtKill = try await harness.counters()["events_ingested"] ?? 0
            #expect(ingestedAtKill > 0 && ingestedAtKill < 1_000_000, "kill \(round) came at \(ingestedAtKill) events")
            collector = try harness.collector()
        }
        let sensorStatus = await sensor.waitForExit(timeout: .seconds(480))
        #expect(sensorStatus == 0, "sensor log:\n\(sensor.standardError.suffix(2000))")
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(30)) == 0)
        let counters = try await harness.counters()
        #expect(counters["events_ingested"] == 1_000_000)
        #expect(counters["batches_ingested"] == 1_000)
    }

    /// A sensor that starts before its collector delivers everything once the collector comes up.
    @Test(.timeLimit(.minutes(3))) func sensorStartedBeforeCollectorDeliversEverything() async throws {
        let harness = try Harness("early")
        defer { harness.directory.remove() }
        let replay = try harness.replayFile(events: 20_000)
        let sensor = try harness.sensor(replay: replay)
        try await Task.sleep(for: .seconds(3))
        #expect(sensor.isRunning, "the sensor must wait for its collector, not give up")
        let collector = try harness.collector()
        #expect(await sensor.waitForExit(timeout: .seconds(120)) == 0, "sensor log:\n\(sensor.standardError.suffix(2000))")
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(30)) == 0)
        #expect(try await harness.counters()["events_ingested"] == 20_000)
    }

    /// A collector outage of 60 s: the sensor spools and delivers everything afterwards.
    @Test(.timeLimit(.minutes(4))) func sensorOutlivesCollectorForSixtySeconds() async throws {
        let harness = try Harness("outage")
        defer { harness.directory.remove() }
        let replay = try harness.replayFile(events: 10_000)
        var collector = try harness.collector()
        // Small memory queue, so the outage really goes through the disk spool.
        let sensor = try harness.sensor(replay: replay, repeatCount: 10, extra: ["--memory-batches", "4", "--log-level", "debug"])
        try await Task.sleep(for: .seconds(1))
        collector.signal(SIGKILL)
        await collector.waitForExit(timeout: .seconds(10))
        try await Task.sleep(for: .seconds(60))
        #expect(sensor.isRunning)
        collector = try harness.collector()
        #expect(
            await sensor.waitForExit(timeout: .seconds(120)) == 0,
            "sensor log:\n\(sensor.standardError.suffix(2000))\ncollector log:\n\(collector.standardError.suffix(2000))")
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(30)) == 0)
        #expect(try await harness.counters()["events_ingested"] == 100_000)
        #expect(sensor.standardError.contains("dropped_events=0"))
    }

    /// A spool too small for the outage overflows; the overflow is counted and reported, never silent,
    /// and everything that was not dropped still arrives exactly once.
    @Test(.timeLimit(.minutes(3))) func spoolOverflowIsCountedNotSilent() async throws {
        let harness = try Harness("overflow")
        defer { harness.directory.remove() }
        let replay = try harness.replayFile(events: 5_000)
        let sensor = try harness.sensor(
            replay: replay, repeatCount: 20,
            extra: ["--memory-batches", "2", "--spool-max-bytes", "300000", "--batch-size", "500"])
        // No collector yet: memory and spool fill up and overflow.
        try await Task.sleep(for: .seconds(6))
        let collector = try harness.collector()
        #expect(await sensor.waitForExit(timeout: .seconds(120)) == 0, "sensor log:\n\(sensor.standardError.suffix(2000))")
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(30)) == 0)
        let log = sensor.standardError
        let dropped = try #require(
            log.firstMatch(of: /dropped_events=(\d+)/).map { UInt64($0.output.1)! }, "sensor must report drops:\n\(log.suffix(2000))")
        #expect(dropped > 0)
        let ingested = try await harness.counters()["events_ingested"] ?? 0
        #expect(ingested + dropped == 100_000)
    }
}
