import ArgumentParser
import Basics
import EventModel
import Foundation
import Profiles

/// The cost the profile check adds per event, and the collector memory profiles take (issue 6): `workloads`
/// workloads learn a realistic behaviour, turn final, and then judge a stream of events spread over all of
/// their containers, mostly learned behaviour with a few anomalies, as a live cluster sends them.
struct ProfilesBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profiles",
        abstract: "Profile lookup + anomaly check per event with many workloads loaded; memory per 1k profiles.")

    @Option(help: "Workloads (one container each) with a final profile.")
    var workloads = 10_000

    @Option(help: "Events judged (timed one by one for the percentiles).")
    var events = 1_000_000

    @Option(help: "Percent of judged events that are new behaviour (anomalies).")
    var anomalyPercent = 1

    @Option(
        help: """
            Consecutive events from one workload. 1 spreads every event over all workloads at random (the \
            cache-cold worst case); a sensor's batch carries runs of events from one container.
            """)
    var burst = 1

    func run() throws {
        let residentBefore = residentBytes()
        let registry = ProfileRegistry(configuration: ProfileConfiguration(learningPeriod: 1_000_000_000, jitter: 0))
        var generator = SystemRandomNumberGenerator()
        // Learning: each workload shows the behaviour of a small service.
        for workload in 0..<workloads {
            for event in Self.behaviour(of: workload, at: 0) { _ = registry.observe(event) }
        }
        let residentAfter = residentBytes()
        var counts = registry.counts()
        print("profiles: \(workloads) workloads learned (\(counts[.learning] ?? 0) learning)")

        // Judged events: learned behaviour of random workloads, with `anomalyPercent` new behaviour.
        var sample: [Event] = []
        sample.reserveCapacity(100_000)
        var workload = 0
        for index in 0..<100_000 {
            if index % max(1, burst) == 0 { workload = Int.random(in: 0..<workloads, using: &generator) }
            var learned = Self.behaviour(of: workload, at: 2_000_000_000)
            if index % 100 < anomalyPercent {
                learned[0].payload = .exec(Exec(path: "/tmp/x\(index)", argv: ["x"]))
                sample.append(learned[0])
            } else {
                sample.append(learned[Int.random(in: 0..<learned.count, using: &generator)])
            }
        }
        // The first event after learning turns each profile final; do that outside the timing.
        for workload in 0..<workloads { _ = registry.observe(Self.behaviour(of: workload, at: 2_000_000_000)[0]) }
        counts = registry.counts()
        print("profiles: \(counts[.final] ?? 0) final; judging \(events) events, \(anomalyPercent)% new behaviour, "
            + "runs of \(burst) from one workload")

        let clock = ContinuousClock()
        var timerFloor = Duration.seconds(1)
        for _ in 0..<1000 {
            let a = clock.now
            timerFloor = min(timerFloor, clock.now - a)
        }
        var samples = [Int64](repeating: 0, count: events)
        var anomalies = 0
        let cpuStart = threadCPUSeconds()
        let wallStart = clock.now
        sample.withUnsafeBufferPointer { buffer in
            var index = 0
            for n in 0..<events {
                let start = clock.now
                let verdict = registry.observe(buffer[index])
                let elapsed = clock.now - start
                anomalies &+= verdict?.unexpected.count ?? 0
                samples[n] = elapsed.components.attoseconds / 1_000_000_000 + elapsed.components.seconds * 1_000_000_000
                index += 1
                if index == buffer.count { index = 0 }
            }
        }
        let wall = clock.now - wallStart
        let cpu = threadCPUSeconds() - cpuStart
        samples.sort()
        let floor = timerFloor.components.attoseconds / 1_000_000_000
        func percentile(_ p: Double) -> Int64 { samples[min(samples.count - 1, Int(Double(samples.count) * p))] }
        print(String(format: "profiles: per event p50 %d ns, p90 %d ns, p99 %d ns, p99.9 %d ns (timer floor %d ns, not subtracted)",
                     percentile(0.5), percentile(0.9), percentile(0.99), percentile(0.999), floor))
        print(String(format: "profiles: %.0f events/s wall, %.0f events per CPU-second, %d anomalies reported",
                     Double(events) / (Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18),
                     Double(events) / cpu, anomalies))
        let perThousand = Double(residentAfter - residentBefore) / Double(workloads) * 1000 / 1_048_576
        print(String(format: "profiles: resident memory %.1f MiB for %d profiles = %.2f MiB per 1k profiles",
                     Double(residentAfter - residentBefore) / 1_048_576, workloads, perThousand))
    }

    /// A small service's behaviour: 5 execs, 40 opens, 60 syscalls, 4 capabilities, 5 DNS names and
    /// 6 endpoints, in one container of workload `index`.
    static func behaviour(of index: Int, at time: EpochNanoseconds) -> [Event] {
        let container = ContainerRef(
            runtime: "containerd", containerID: String(repeating: "0", count: 56) + String(format: "%08x", index),
            podUID: "uid-\(index)", podName: "svc-\(index)-5d8f7c9b4-abcde", namespace: "ns-\(index % 50)",
            containerName: "app", image: "registry.example/svc:1", ownerKind: "Deployment", ownerName: "svc-\(index)")
        func event(_ payload: Payload) -> Event {
            Event(time: time, node: "node", process: ProcessInfo(pid: 100, comm: "app", exe: "/app/server"),
                  container: container, payload: payload)
        }
        var events: [Event] = []
        for exec in 0..<5 { events.append(event(.exec(Exec(path: "/app/bin/tool\(exec)", argv: ["tool\(exec)", "--serve"])))) }
        for open in 0..<40 {
            events.append(event(.open(FileOpen(path: "/app/data/file\(open).dat", flags: open % 4 == 0 ? 0o1101 : 0o2000000))))
        }
        events.append(event(.syscalls(SyscallSet(syscalls: Array(0..<60)))))
        for cap in 0..<4 { events.append(event(.capability(CapabilityUse(capability: UInt32(cap), syscall: 105)))) }
        for dns in 0..<5 { events.append(event(.dns(DNSQuery(name: "svc\(dns).ns.svc.cluster.local.", answers: ["10.0.0.\(dns)"])))) }
        for peer in 0..<6 { events.append(event(.connect(NetworkFlow(remoteAddress: "10.0.1.\(peer)", remotePort: 8080)))) }
        return events
    }
}

/// The process's resident set size, from /proc/self/statm.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}
