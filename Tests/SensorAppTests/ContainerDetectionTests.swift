import EventModel
import Foundation
import RuleEngine
import Synchronization
import TestSupport
import Testing

@testable import SensorApp

/// The whole sensor path against a real runc container: eBPF capture, container identity from the cgroup,
/// and the shipped signature rules. Alerts must name the pod, namespace, container and process.
@Suite(.serialized) struct ContainerDetectionTests {
    static var shippedRules: [String] {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("rules").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.sorted().map { "\(directory)/\($0)" }
    }

    @Test(.timeLimit(.minutes(3))) func signatureRulesFireInsideARealContainerWithPodAttribution() async throws {
        guard getuid() == 0 else {
            print("skipping ContainerDetectionTests: needs root to load BPF and run runc (uid \(getuid()))")
            return
        }
        if let reason = RuncContainer.unavailableReason {
            print("skipping ContainerDetectionTests: \(reason)")
            return
        }
        let rules = try RuleSet.load(files: Self.shippedRules)
        let resolver = ContainerResolver()
        let capture = try await offPool {
            try LiveCapture(
                configuration: LiveCaptureConfiguration(dedupWindow: .zero), node: "test-node", resolver: resolver)
        }
        let collected = Collected()
        let options = RuncContainer.Options(podName: "web.v2", namespace: "shop", containerName: "nginx", overlay: true)

        let alerts: [Alert] = try await withThrowingTaskGroup(of: [Alert]?.self) { group in
            group.addTask {
                await capture.run(batchSize: 64) { collected.append($0) }
                return nil
            }
            group.addTask {
                try await RuncContainer.with(options) { container in
                    // Events that arrive before the runtime has written the container's state carry only its id
                    // (a known gap, docs/containers.md); wait until the sensor has read that state.
                    for _ in 0..<50 where resolver.container(forCgroup: container.cgroupID ?? 0, pid: container.initPID)?
                        .podName.isEmpty ?? true
                    {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    // Two attacks, then ordinary work that must stay quiet.
                    _ = try await container.exec(["sh", "-c", "cp /bin/busybox /dev/shm/x && /dev/shm/x true"])
                    _ = try await container.exec(["sh", "-c", "echo 'root:*:1::::::' > /etc/shadow; cat /etc/shadow"])
                    _ = try await container.exec(["sh", "-c", "ls / > /dev/null; cat /etc/hostname > /dev/null; sleep 0.2"])
                    var found: [Alert] = []
                    for _ in 0..<100 {
                        try await Task.sleep(for: .milliseconds(100))
                        var evaluator = RuleEvaluator(ruleSet: rules)
                        found = collected.all.filter { $0.container?.containerID == container.id }
                            .flatMap { evaluator.evaluate($0) }
                        let ids = Set(found.map(\.ruleID))
                        if ids.contains("R1000") && ids.contains("R1011") { break }
                    }
                    return found
                }
            }
            var result: [Alert] = []
            while let next = try await group.next() {
                if let next {
                    result = next
                    group.cancelAll()
                }
            }
            return result
        }

        let exec = try #require(alerts.first { $0.ruleID == "R1000" }, "no R1000; alerts: \(alerts.map(\.ruleID))")
        #expect(exec.container?.podName == "web.v2")
        #expect(exec.container?.namespace == "shop")
        #expect(exec.container?.containerName == "nginx")
        #expect(exec.container?.podUID == options.podUID)
        #expect(exec.process.exe == "/dev/shm/x")
        let shadow = try #require(alerts.first { $0.ruleID == "R1011" }, "no R1011; alerts: \(alerts.map(\.ruleID))")
        #expect(shadow.container?.containerID == options.containerID)
        #expect(shadow.message.contains("/etc/shadow"))
        // The ordinary commands raised nothing.
        #expect(!alerts.contains { ["ls", "sleep"].contains($0.process.comm) || $0.message.contains("/etc/hostname") })
    }

    /// Normal work in a container (a web server, ls, cat, sleep, wget of localhost) raises no signature alert.
    @Test(.timeLimit(.minutes(3))) func benignWorkInAContainerRaisesNothing() async throws {
        guard getuid() == 0, RuncContainer.unavailableReason == nil else {
            print("skipping benignWorkInAContainerRaisesNothing: needs root and runc (\(RuncContainer.unavailableReason ?? "uid \(getuid())"))")
            return
        }
        // The default set: everything but the rules tagged not-default (R1006, unshare, is noisy by design:
        // runc itself unshares when it enters a container).
        let rules = try RuleSet.load(files: Self.shippedRules).enabling { !$0.tags.contains("not-default") }
        let capture = try await offPool {
            try LiveCapture(
                configuration: LiveCaptureConfiguration(dedupWindow: .zero), node: "test-node",
                resolver: ContainerResolver())
        }
        let collected = Collected()
        let options = RuncContainer.Options(podName: "shop-7d9c", namespace: "shop", containerName: "web", hostNetwork: true)
        let port = Int.random(in: 20_000...40_000)
        let script = """
            httpd -p 127.0.0.1:\(port) -h /etc
            for i in 1 2 3; do
              ls -l / > /dev/null; cat /etc/hostname /etc/passwd > /dev/null
              wget -q -O /dev/null http://127.0.0.1:\(port)/hostname || true
              sleep 0.1
            done
            """
        let (alerts, events): ([Alert], Int) = try await withThrowingTaskGroup(of: ([Alert], Int)?.self) { group in
            group.addTask {
                await capture.run(batchSize: 64) { collected.append($0) }
                return nil
            }
            group.addTask {
                try await RuncContainer.with(options) { container in
                    let run = try await container.exec(["sh", "-c", script])
                    #expect(run.status == 0, "script failed: \(run.standardError)")
                    try await Task.sleep(for: .seconds(2))
                    let mine = collected.all.filter { $0.container?.containerID == container.id }
                    var evaluator = RuleEvaluator(ruleSet: rules)
                    return (mine.flatMap { evaluator.evaluate($0) }, mine.count)
                }
            }
            var result: ([Alert], Int) = ([], 0)
            while let next = try await group.next() {
                if let next {
                    result = next
                    group.cancelAll()
                }
            }
            return result
        }
        // The work was seen (so silence means something), and none of it alerted.
        #expect(events > 20)
        #expect(alerts.isEmpty, "unexpected alerts: \(alerts.map { "\($0.ruleID): \($0.message)" })")
    }
}
