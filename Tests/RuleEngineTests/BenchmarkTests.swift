#if canImport(Glibc)
import Glibc
#endif
import EventModel
import RuleEngine
import Testing

/// Throughput of the 30-rule signature set in `bench/rules/signature-30.yaml` on one core.
/// Run with `PATROL_BENCH=1 swift test -c release --filter RuleEngineBenchmark`.
@Suite struct RuleEngineBenchmark {
    static var rulesPath: String {
        // Tests/RuleEngineTests/BenchmarkTests.swift → repository root.
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/bench/rules/signature-30.yaml"
    }

    /// A typical mix: half execs, 30% opens, 20% connects; about 1% of events raise an alert.
    static func workload(count: Int) -> [Event] {
        let execs: [(String, [String])] = [
            ("/usr/bin/python3", ["python3", "/app/manage.py", "runserver", "0.0.0.0:8000"]),
            ("/usr/local/bin/node", ["node", "/srv/app/server.js"]),
            ("/bin/ls", ["ls", "-la", "/var/log"]),
            ("/usr/bin/git", ["git", "rev-parse", "HEAD"]),
            ("/usr/sbin/nginx", ["nginx", "-g", "daemon off;"]),
            ("/usr/bin/java", ["java", "-Xmx512m", "-jar", "/opt/app/app.jar"]),
            ("/bin/cat", ["cat", "/etc/hostname"]),
            ("/usr/bin/env", ["env"]),
            ("/usr/bin/sort", ["sort", "-u"]),
        ]
        let opens: [(String, UInt32)] = [
            ("/usr/lib/x86_64-linux-gnu/libc.so.6", 0), ("/etc/ld.so.cache", 0), ("/proc/self/status", 0),
            ("/app/config/settings.json", 0), ("/var/log/app/access.log", 0o1101), ("/tmp/upload-1234.part", 0o1101),
            ("/usr/share/zoneinfo/UTC", 0), ("/etc/hosts", 0), ("/sys/fs/cgroup/memory.max", 0),
        ]
        let connects: [(String, UInt16)] = [
            ("10.96.0.1", 443), ("10.244.1.17", 5432), ("10.244.2.9", 6379), ("172.217.16.206", 443), ("10.96.0.10", 53),
        ]
        var events: [Event] = []
        events.reserveCapacity(count)
        var container = podContainer
        for i in 0..<count {
            container.podName = "web-\(i % 7)"
            let time = UInt64(1_700_000_000_000_000_000) + UInt64(i) * 1000
            let process = ProcessInfo(pid: Int32(1000 + i % 300), ppid: 1, tid: Int32(1000 + i % 300), uid: 1000, comm: "app", exe: "/usr/bin/python3", cwd: "/app")
            let payload: Payload
            switch i % 10 {
            case 0...4:
                if i % 100 == 0 {
                    payload = .exec(Exec(path: "/bin/bash", argv: ["bash", "-i"]))
                } else {
                    let (path, argv) = execs[i % execs.count]
                    payload = .exec(Exec(path: path, argv: argv, env: ["PATH=/usr/bin:/bin", "HOME=/app"]))
                }
            case 5...7:
                let (path, flags) = opens[i % opens.count]
                payload = .open(FileOpen(path: path, flags: flags, result: 3))
            default:
                let (address, port) = connects[i % connects.count]
                payload = .connect(NetworkFlow(localAddress: "10.244.1.5", localPort: UInt16(30000 + i % 20000), remoteAddress: address, remotePort: port))
            }
            events.append(Event(time: time, node: "node-a", process: process, container: container, payload: payload))
        }
        return events
    }

    static func now(_ clock: clockid_t = CLOCK_MONOTONIC) -> Double {
        var spec = timespec()
        clock_gettime(clock, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    @Test func signatureSetThroughput() throws {
        guard getenv("PATROL_BENCH").map({ String(cString: $0) }) == "1" else {
            print("RuleEngineBenchmark skipped: set PATROL_BENCH=1 to run it (use -c release for meaningful numbers)")
            return
        }
        let set = try RuleSet.load(files: [Self.rulesPath])
        #expect(set.rules.count == 30)
        let events = Self.workload(count: 200_000)
        var evaluator = RuleEvaluator(ruleSet: set)
        var alerts = 0
        for event in events.prefix(20_000) { alerts &+= evaluator.evaluate(event).count }  // warm up
        // The machine is shared, so report events per second of this thread's CPU time (per core) as
        // well as per wall-clock second.
        var bestCPU = 0.0
        var bestWall = 0.0
        for _ in 0..<5 {
            alerts = 0
            let wallStart = Self.now()
            let cpuStart = Self.now(CLOCK_THREAD_CPUTIME_ID)
            for index in events.indices { alerts &+= evaluator.evaluate(events[index]).count }
            let cpu = Self.now(CLOCK_THREAD_CPUTIME_ID) - cpuStart
            let wall = Self.now() - wallStart
            bestCPU = max(bestCPU, Double(events.count) / cpu)
            bestWall = max(bestWall, Double(events.count) / wall)
        }
        #expect(alerts > 0)
        print(
            "RuleEngineBenchmark: 30 rules, \(events.count) events (50% exec, 30% open, 20% connect), "
                + "\(alerts) alerts per pass, best \(Int(bestCPU)) events/s per core (CPU time), "
                + "\(Int(bestWall)) events/s wall clock")
    }
}
