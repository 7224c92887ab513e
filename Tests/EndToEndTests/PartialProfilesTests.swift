import Foundation
import Profiles
import Testing
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Partial profiles end to end (issue 6: "partial: the container was first seen already running"): the real
/// sensor binary, capturing live, sends to the real collector binary. A `runc` container started before the
/// sensor gets a `partial` profile, marked incomplete, because what it did before the sensor started is missing;
/// a container started after the sensor's capture is ready gets a `learning` one.
@Suite(.serialized) struct PartialProfilesTests {
    @Test(.timeLimit(.minutes(5))) func containerFromBeforeTheSensorIsPartialOneFromAfterIsLearning() async throws {
        if getuid() != 0 {
            print("skipping PartialProfilesTests: needs root to load BPF and run runc (uid \(getuid()))")
            return
        }
        if let reason = RuncContainer.unavailableReason {
            print("skipping PartialProfilesTests: \(reason)")
            return
        }
        let harness = try Harness("partial")
        defer { harness.directory.remove() }
        let config = harness.directory.file("collector.yaml")
        // Long enough that neither profile turns final during the test.
        try "profiles:\n  learningPeriod: 600s\n  jitter: 0\n".write(toFile: config, atomically: true, encoding: .utf8)
        let collector = try harness.collector(["--config", config])
        defer { collector.signal(SIGKILL) }

        let early = RuncContainer.Options(podName: "early-5d8f", namespace: "shop", containerName: "app")
        let late = RuncContainer.Options(podName: "late-5d8f", namespace: "shop", containerName: "app")
        let before = try await RuncContainer.start(early)
        defer { before.stopBlocking() }

        let sensor = try PatrolProcess(
            "patrol-sensor",
            [
                "--collector", harness.address, "--sensor-id", "partial-live", "--node", "node-partial",
                "--spool-dir", harness.directory.file("spool"),
            ],
            logDirectory: harness.directory.path, name: "partial-live")
        defer { sensor.signal(SIGKILL) }
        var logs: String {
            "sensor log:\n\(sensor.standardError.suffix(3000))\ncollector log:\n\(collector.standardError.suffix(3000))"
        }
        // The capture marks containers against the moment its probes are attached, which it then logs.
        let ready = await PatrolProcess.eventually(timeout: .seconds(120)) {
            sensor.standardError.contains("live capture ready")
        }
        try #require(ready, "the sensor's capture never became ready\n\(logs)")
        let after = try await RuncContainer.start(late)
        defer { after.stopBlocking() }

        let earlyKey = WorkloadKey(namespace: "shop", kind: "Pod", name: early.podName)
        let lateKey = WorkloadKey(namespace: "shop", kind: "Pod", name: late.podName)
        var earlyProfile: ContainerProfile?
        var lateProfile: ContainerProfile?
        // The collector saves profiles every few seconds; keep both containers busy until both are stored.
        let stored = await PatrolProcess.eventually(timeout: .seconds(120)) {
            _ = try? await before.exec(["/bin/cat", "/etc/hostname"])
            _ = try? await after.exec(["/bin/cat", "/etc/hostname"])
            earlyProfile = await AnomalyRulesInContainerTests.storedProfile(harness.storePath, earlyKey, "app")
            lateProfile = await AnomalyRulesInContainerTests.storedProfile(harness.storePath, lateKey, "app")
            return earlyProfile != nil && lateProfile != nil
        }
        try #require(stored, "profiles stored: early \(earlyProfile != nil), late \(lateProfile != nil)\n\(logs)")
        let partial = try #require(earlyProfile)
        let learning = try #require(lateProfile)
        #expect(partial.state == .partial, "started before the sensor\n\(logs)")
        #expect(partial.incomplete)
        #expect(learning.state == .learning, "started after the sensor's capture was ready\n\(logs)")
        #expect(!learning.incomplete)
        // Both still record what they do.
        #expect(partial.behaviour.execs["/bin/cat"] != nil)
        #expect(learning.behaviour.execs["/bin/cat"] != nil)
        await before.stop()
        await after.stop()
    }
}
