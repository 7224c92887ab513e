import Basics
import EventModel

/// Realistic random events of every kind, from a seed: the same seed gives the same events on every run.
///
/// ```swift
/// var fixtures = EventFixtures(seed: 42)
/// let exec = fixtures.event(.exec)
/// let batch = fixtures.batch(sequence: 1, count: 1000, kinds: EventFixtures.execOpenConnect)
/// ```
public struct EventFixtures: Sendable {
    public var generator: SeededGenerator
    /// The node every event comes from.
    public var node: String
    /// The containers events are spread over; a fraction of events come from the host instead.
    public private(set) var containers: [ContainerRef]
    /// The clock: each event is a little later than the last.
    public var time: EpochNanoseconds

    /// The typical sensor mix the wire benchmark uses.
    public static let execOpenConnect: [EventKind] = [.exec, .open, .open, .open, .connect]
    /// Every kind a sensor sends (all but `.audit`).
    public static let sensorKinds: [EventKind] = EventKind.allCases.filter { $0 != .audit }

    public init(seed: UInt64, node: String = "node-1.cluster.local", containerCount: Int = 8) {
        generator = SeededGenerator(seed: seed)
        self.node = node
        time = 1_700_000_000_000_000_000 + (seed % 1_000_000) * 1_000_000
        containers = []
        for _ in 0..<max(1, containerCount) { containers.append(makeContainer()) }
    }

    // MARK: Building blocks

    public mutating func int<T: FixedWidthInteger>(_ range: ClosedRange<T>) -> T {
        T.random(in: range, using: &generator)
    }

    public mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &generator)] }

    public mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &generator) < probability
    }

    public mutating func hex(_ count: Int) -> String {
        let digits = Array("0123456789abcdef")
        return String((0..<count).map { _ in digits[Int.random(in: 0..<16, using: &generator)] })
    }

    public mutating func uuid() -> String { "\(hex(8))-\(hex(4))-\(hex(4))-\(hex(4))-\(hex(12))" }

    static let apps = ["nginx", "redis", "postgres", "api", "worker", "frontend", "kafka", "coredns", "payments"]
    static let namespaces = ["default", "prod", "staging", "kube-system", "monitoring", "team-a"]
    static let runtimes = ["containerd", "cri-o", "docker", "podman"]
    static let binaries = [
        "/usr/bin/bash", "/bin/sh", "/usr/bin/curl", "/usr/bin/python3", "/usr/sbin/nginx", "/usr/bin/ls",
        "/usr/bin/cat", "/usr/local/bin/app", "/usr/bin/kubectl", "/tmp/.x/miner", "/dev/shm/payload",
    ]
    static let files = [
        "/etc/passwd", "/etc/shadow", "/etc/hosts", "/etc/resolv.conf", "/proc/self/status", "/var/log/app.log",
        "/var/run/secrets/kubernetes.io/serviceaccount/token", "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/app/config/settings.yaml", "/tmp/upload-1234.bin", "/root/.ssh/authorized_keys", "/etc/ld.so.preload",
    ]
    static let domains = [
        "api.github.com.", "kubernetes.default.svc.cluster.local.", "pool.minexmr.com.", "example.org",
        "redis.prod.svc.cluster.local.", "s3.amazonaws.com.",
    ]

    public mutating func makeContainer() -> ContainerRef {
        let app = pick(Self.apps)
        return ContainerRef(
            runtime: pick(Self.runtimes), containerID: hex(64), podUID: uuid(),
            podName: "\(app)-\(hex(10))-\(hex(5))", namespace: pick(Self.namespaces), containerName: app,
            image: "registry.example.com/\(app):1.\(int(0...30 as ClosedRange<Int>)).\(int(0...9 as ClosedRange<Int>))")
    }

    public mutating func process() -> ProcessInfo {
        let exe = pick(Self.binaries)
        let pid = int(1...4_194_304 as ClosedRange<Int32>)
        return ProcessInfo(
            pid: pid, ppid: int(1...4_194_304 as ClosedRange<Int32>), tid: chance(0.8) ? pid : int(1...4_194_304),
            uid: chance(0.6) ? 0 : int(1...65_534), gid: chance(0.6) ? 0 : int(1...65_534),
            comm: String(exe.split(separator: "/").last ?? "sh").prefix(15).description, exe: exe,
            cwd: pick(["/", "/app", "/root", "/tmp", "/var/www"]), mountNamespace: 4_026_531_840 + int(0...4096))
    }

    public mutating func ipv4() -> String {
        "\(int(1...223 as ClosedRange<Int>)).\(int(0...255 as ClosedRange<Int>)).\(int(0...255 as ClosedRange<Int>)).\(int(1...254 as ClosedRange<Int>))"
    }

    public mutating func ipv6() -> String { "fd00::\(hex(4)):\(hex(4))" }

    public mutating func flow() -> NetworkFlow {
        let v6 = chance(0.2)
        return NetworkFlow(
            family: v6 ? .inet6 : .inet, proto: chance(0.85) ? .tcp : .udp, localAddress: v6 ? ipv6() : ipv4(),
            localPort: int(32768...60999), remoteAddress: v6 ? ipv6() : ipv4(),
            remotePort: pick([22, 53, 80, 443, 3333, 5432, 6379, 8080, 45700]),
            result: chance(0.9) ? 0 : pick([-111, -115, -113]))
    }

    public mutating func payload(_ kind: EventKind) -> Payload {
        switch kind {
        case .exec:
            let path = pick(Self.binaries)
            var argv = [path]
            for _ in 0..<int(0...5 as ClosedRange<Int>) {
                argv.append(pick(["-c", "--verbose", "-la", "/tmp", "echo hello", "http://10.0.0.1:8080/x", "-p"]))
            }
            let env = chance(0.1) ? ["LD_PRELOAD=/tmp/libevil.so"] : []
            return .exec(Exec(path: path, argv: argv, env: env, upperLayer: chance(0.05)))
        case .exit:
            return .exit(Exit(code: chance(0.8) ? 0 : int(1...255), signal: chance(0.9) ? 0 : pick([9, 15, 11])))
        case .open:
            return .open(
                FileOpen(
                    path: pick(Self.files), flags: pick([0, 1, 2, 0o100, 0o1101, 0o2000000, 0o2100002]),
                    result: chance(0.9) ? int(3...1024) : pick([-2, -13])))
        case .connect: return .connect(flow())
        case .accept: return .accept(flow())
        case .dns:
            let answers = (0..<int(0...3 as ClosedRange<Int>)).map { _ in ipv4() }
            return .dns(DNSQuery(name: pick(Self.domains), queryType: pick([1, 28, 5, 16]), answers: answers))
        case .syscalls:
            var set = Set<UInt32>()
            for _ in 0..<int(1...60 as ClosedRange<Int>) { set.insert(int(0...450)) }
            return .syscalls(SyscallSet(syscalls: set.sorted()))
        case .capability:
            return .capability(
                CapabilityUse(capability: int(0...40), syscall: int(0...450), granted: chance(0.7)))
        case .moduleLoad:
            return .moduleLoad(ModuleLoad(syscall: pick(["init_module", "finit_module"]), name: pick(["nf_tables", "rootkit", ""])))
        case .ptrace:
            return .ptrace(PtraceAttach(request: pick([16, 0x4206, 4]), targetPid: int(1...4_194_304)))
        case .namespaceChange:
            let syscall = pick(["unshare", "setns", "mount"])
            return .namespaceChange(
                NamespaceChange(
                    syscall: syscall, flags: pick([0x20000, 0x4000_0000, 0x1000_0000, 0]),
                    source: syscall == "mount" ? "/dev/sda1" : "", target: syscall == "mount" ? "/host" : "",
                    fsType: syscall == "mount" ? "ext4" : ""))
        case .memfd:
            return .memfd(MemfdCreate(name: pick(["", "jit", "x"]), flags: pick([0, 1, 2, 3])))
        case .link:
            return .link(FileLink(target: pick(["/etc/shadow", "/etc/sudoers", "/tmp/a"]), linkPath: "/tmp/\(hex(6))", symbolic: chance(0.5)))
        case .bpf:
            return .bpf(BPFCall(command: int(0...36)))
        case .scanResult:
            return .scanResult(
                ScanResult(
                    scanID: uuid(), path: "/var/lib/containerd/\(hex(12))/fs\(pick(Self.binaries))",
                    signature: pick(["Unix.Trojan.Mirai-7100807-0", "Eicar-Test-Signature", "Multios.Coinminer.Miner-6781728-2"]),
                    sha256: hex(64), sizeBytes: int(68...50_000_000), partOfImage: chance(0.5)))
        case .audit:
            return .audit(AuditRecord(document: auditDocument(), sourceID: "logstash-2024.05.01/\(hex(20))"))
        }
    }

    /// A plausible `audit.k8s.io/v1` Event.
    public mutating func auditDocument() -> JSONValue {
        let verb = pick(["get", "list", "create", "delete", "patch", "watch"])
        let resource = pick(["pods", "secrets", "configmaps", "clusterrolebindings", "deployments"])
        let namespace = pick(Self.namespaces)
        let name = "\(pick(Self.apps))-\(hex(5))"
        return .object([
            "kind": .string("Event"),
            "apiVersion": .string("audit.k8s.io/v1"),
            "level": .string(pick(["Metadata", "Request", "RequestResponse"])),
            "auditID": .string(uuid()),
            "stage": .string("ResponseComplete"),
            "requestURI": .string("/api/v1/namespaces/\(namespace)/\(resource)/\(name)?timeout=32s"),
            "verb": .string(verb),
            "user": .object([
                "username": .string(pick(["system:serviceaccount:\(namespace):default", "alice@example.com", "system:anonymous"])),
                "groups": .array([.string("system:authenticated"), .string("dev")]),
            ]),
            "sourceIPs": .array([.string(ipv4())]),
            "userAgent": .string("kubectl/v1.30.1 (linux/amd64) kubernetes/abc"),
            "objectRef": .object([
                "resource": .string(resource), "namespace": .string(namespace), "name": .string(name),
                "apiVersion": .string("v1"),
            ]),
            "responseStatus": .object(["code": .number(Double(pick([200, 201, 403, 404, 101])))]),
            "requestReceivedTimestamp": .string("2024-05-01T12:00:00.123456Z"),
            "stageTimestamp": .string("2024-05-01T12:00:00.223456Z"),
            "annotations": .object([
                "authorization.k8s.io/decision": .string(chance(0.9) ? "allow" : "forbid"),
                "authorization.k8s.io/reason": .string("RBAC: allowed by ClusterRoleBinding \"x\" \u{1F512}"),
            ]),
            "requestObject": chance(0.3) ? .object(["spec": .object(["hostPID": .bool(true), "replicas": .number(3), "ratio": .number(0.25), "none": .null])]) : .null,
        ])
    }

    // MARK: Events and batches

    /// One event of `kind`, 85 % from a container and 15 % from the host.
    public mutating func event(_ kind: EventKind) -> Event {
        time += int(1_000...5_000_000)
        let container: ContainerRef? = kind == .audit || chance(0.15) ? nil : pick(containers)
        return Event(
            time: time, node: node, process: kind == .audit ? ProcessInfo() : process(), container: container,
            payload: payload(kind), count: chance(0.9) ? 1 : int(2...500))
    }

    /// One event of a kind picked from `kinds`.
    public mutating func event(kinds: [EventKind] = EventFixtures.sensorKinds) -> Event { event(pick(kinds)) }

    public mutating func events(_ count: Int, kinds: [EventKind] = EventFixtures.sensorKinds) -> [Event] {
        (0..<count).map { _ in event(kinds: kinds) }
    }

    public mutating func batch(
        sensorID: String = "sensor-1", bootID: String = "boot-1", sequence: UInt64, count: Int,
        kinds: [EventKind] = EventFixtures.sensorKinds
    ) -> EventBatch {
        EventBatch(sensorID: sensorID, bootID: bootID, sequence: sequence, events: events(count, kinds: kinds))
    }
}
