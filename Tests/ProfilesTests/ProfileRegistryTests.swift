import Basics
import EventModel
import Testing

@testable import Profiles

/// Events from one pod of a Deployment, at times given in seconds from the start of learning.
struct Workload {
    var namespace = "shop"
    var deployment = "web"
    var pod = "web-7d9f8c6b5-x2x4q"
    var containerID = "c0ffee0000000000000000000000000000000000000000000000000000000001"
    var containerName = "nginx"

    var container: ContainerRef {
        ContainerRef(
            runtime: "containerd", containerID: containerID, podUID: "uid-\(pod)", podName: pod,
            namespace: namespace, containerName: containerName, image: "nginx:1.27", ownerKind: "Deployment",
            ownerName: deployment)
    }

    var key: ProfileKey {
        ProfileKey(workload: WorkloadKey(namespace: namespace, kind: "Deployment", name: deployment), container: containerName)
    }

    func event(_ second: Double, _ payload: Payload) -> Event {
        Event(
            time: 1_700_000_000_000_000_000 + UInt64(second * 1e9), node: "node-a",
            process: ProcessInfo(pid: 42, comm: "nginx", exe: "/usr/sbin/nginx"), container: container, payload: payload)
    }
}

let start: EpochNanoseconds = 1_700_000_000_000_000_000
let tenSeconds = ProfileConfiguration(learningPeriod: 10_000_000_000, jitter: 0)

func exec(_ path: String, _ argv: [String]) -> Payload { .exec(Exec(path: path, argv: argv)) }
func open(_ path: String, _ flags: UInt32) -> Payload { .open(FileOpen(path: path, flags: flags, result: 3)) }
func connect(_ address: String, _ port: UInt16) -> Payload {
    .connect(NetworkFlow(remoteAddress: address, remotePort: port))
}

let O_WRONLY: UInt32 = 0o1
let O_CREAT: UInt32 = 0o100
let O_CLOEXEC: UInt32 = 0o2000000
let unshareNumber = LinuxNames.syscallNumber("unshare")!
let setuidNumber = LinuxNames.syscallNumber("setuid")!
let capSetuid: UInt32 = 7
let capNetAdmin: UInt32 = 12

/// The behaviour a small web server shows while it learns.
func learnWebServer(_ registry: ProfileRegistry, _ pod: Workload) {
    let learned: [Payload] = [
        exec("/usr/sbin/nginx", ["nginx", "-g", "daemon off;"]),
        open("/etc/nginx/nginx.conf", O_CLOEXEC),
        open("/var/log/nginx/access.log", O_WRONLY | O_CREAT | O_CLOEXEC),
        .syscalls(SyscallSet(syscalls: [0, 1, 3, setuidNumber])),
        .capability(CapabilityUse(capability: capSetuid, syscall: setuidNumber)),
        .dns(DNSQuery(name: "api.payments.example.", answers: ["10.0.0.7"])),
        connect("10.0.0.7", 443),
        .accept(NetworkFlow(localAddress: "10.1.0.5", localPort: 8080, remoteAddress: "10.1.0.9", remotePort: 51234)),
    ]
    for (index, payload) in learned.enumerated() {
        let verdict = registry.observe(pod.event(Double(index), payload))
        #expect(verdict?.state == .learning)
        #expect(verdict?.unexpected == [], "nothing is an anomaly while learning")
    }
}

@Suite("Profile learning and anomalies")
struct ProfileRegistryTests {
    @Test("After learning, each new kind of behaviour is one anomaly and learned behaviour is none")
    func newBehaviourAfterLearning() throws {
        let registry = ProfileRegistry(configuration: tenSeconds)
        let pod = Workload()
        learnWebServer(registry, pod)

        // Learned behaviour, after the period: nothing. The DNS name differs only by case and trailing dot.
        let known: [Payload] = [
            exec("/usr/sbin/nginx", ["nginx", "-g", "daemon off;"]),
            open("/etc/nginx/nginx.conf", 0),
            open("/var/log/nginx/access.log", O_WRONLY | O_CLOEXEC),
            .syscalls(SyscallSet(syscalls: [0, 1])),
            .capability(CapabilityUse(capability: capSetuid, syscall: setuidNumber)),
            .dns(DNSQuery(name: "API.payments.example")),
            connect("10.0.0.7", 443),
            .accept(NetworkFlow(localPort: 8080, remoteAddress: "10.9.9.9", remotePort: 40000)),
        ]
        for payload in known {
            let verdict = try #require(registry.observe(pod.event(20, payload)))
            #expect(verdict.state == .final)
            #expect(verdict.unexpected == [], "learned: \(payload)")
        }

        let cases: [(Payload, ProfileItem)] = [
            (exec("/bin/sh", ["sh", "-c", "id"]), .exec(path: "/bin/sh", argv: ["sh", "-c", "id"])),
            (exec("/usr/sbin/nginx", ["nginx", "-s", "reload"]), .exec(path: "/usr/sbin/nginx", argv: ["nginx", "-s", "reload"])),
            (open("/etc/shadow", 0), .open(path: "/etc/shadow", flags: 0)),
            (open("/etc/nginx/nginx.conf", O_WRONLY), .open(path: "/etc/nginx/nginx.conf", flags: O_WRONLY)),
            (open("/var/log/nginx/access.log", 0), .open(path: "/var/log/nginx/access.log", flags: 0)),
            (.syscalls(SyscallSet(syscalls: [0, unshareNumber])), .syscall(unshareNumber)),
            (.capability(CapabilityUse(capability: capNetAdmin, syscall: setuidNumber)), .capability(syscall: setuidNumber, capability: capNetAdmin)),
            (.dns(DNSQuery(name: "pool.minexmr.com.")), .dns("pool.minexmr.com")),
            (connect("203.0.113.9", 4444), .outgoing(Endpoint(proto: .tcp, address: "203.0.113.9", port: 4444))),
            (.accept(NetworkFlow(localPort: 2222, remoteAddress: "10.9.9.9", remotePort: 1)), .incoming(Endpoint(proto: .tcp, address: "", port: 2222))),
        ]
        for (payload, item) in cases {
            let verdict = try #require(registry.observe(pod.event(21, payload)))
            #expect(verdict.unexpected == [item], "\(payload)")
            #expect(verdict.key == pod.key, "an anomaly names its workload container")
        }
    }

    @Test("An unexpected behaviour is reported once per container, again for another container")
    func oncePerContainer() throws {
        let registry = ProfileRegistry(configuration: tenSeconds)
        let first = Workload()
        learnWebServer(registry, first)
        let shell = exec("/bin/sh", ["sh"])
        #expect(registry.observe(first.event(30, shell))?.unexpected.count == 1)
        #expect(registry.observe(first.event(31, shell))?.unexpected == [], "the same container: reported already")
        for _ in 0..<3 {
            #expect(registry.observe(first.event(32, .syscalls(SyscallSet(syscalls: [unshareNumber]))))?.unexpected.count ?? 0 <= 1)
        }

        var second = Workload()
        second.pod = "web-7d9f8c6b5-abcde"
        second.containerID = "c0ffee0000000000000000000000000000000000000000000000000000000002"
        #expect(registry.observe(second.event(33, shell))?.unexpected.count == 1, "another pod's container: its own report")
    }

    @Test("Pods of one workload share one profile")
    func podsMerge() throws {
        let registry = ProfileRegistry(configuration: tenSeconds)
        let first = Workload()
        var second = Workload()
        second.pod = "web-7d9f8c6b5-other"
        second.containerID = "c0ffee0000000000000000000000000000000000000000000000000000000003"
        #expect(registry.observe(first.event(0, exec("/usr/sbin/nginx", ["nginx"])))?.state == .learning)
        #expect(registry.observe(second.event(1, exec("/usr/bin/curl", ["curl", "localhost"])))?.state == .learning)
        // Both pods' behaviour is known to both after learning.
        #expect(registry.observe(first.event(11, exec("/usr/bin/curl", ["curl", "localhost"])))?.unexpected == [])
        #expect(registry.observe(second.event(12, exec("/usr/sbin/nginx", ["nginx"])))?.unexpected == [])
        #expect(registry.profiles(now: start).count == 1)
        #expect(registry.profiles(now: start).first?.containers.map(\.name) == ["nginx"])
    }

    @Test("With argument comparison off, an exec is known by its path")
    func pathOnlyExecs() throws {
        var configuration = tenSeconds
        configuration.compareExecArgs = false
        let registry = ProfileRegistry(configuration: configuration)
        let pod = Workload()
        _ = registry.observe(pod.event(0, exec("/usr/bin/python3", ["python3", "app.py"])))
        #expect(registry.observe(pod.event(11, exec("/usr/bin/python3", ["python3", "-c", "import os"])))?.unexpected == [])
    }

    @Test("A size limit fails the profile: it keeps what fit, learns no more and raises nothing")
    func limitFailsProfile() throws {
        var configuration = tenSeconds
        configuration.limits = ProfileLimits(execs: 100, opens: 3, dns: 100, endpoints: 100)
        let registry = ProfileRegistry(configuration: configuration)
        let pod = Workload()
        for index in 0..<3 { _ = registry.observe(pod.event(0, open("/data/\(index)", 0))) }
        let verdict = try #require(registry.observe(pod.event(1, open("/data/3", 0))))
        #expect(verdict.state == .failed)
        let profile = try #require(registry.profile(pod.key.workload, now: start)?.container("nginx"))
        #expect(profile.state == .failed)
        #expect(profile.failureReason?.contains("limit opens") == true)
        #expect(profile.behaviour.opens.count == 3, "what fit is kept")
        #expect(registry.observe(pod.event(20, exec("/bin/sh", ["sh"])))?.unexpected == [], "a failed profile judges nothing")
    }

    @Test("A container first seen already running learns a partial profile that ends final and incomplete")
    func partialProfile() throws {
        let registry = ProfileRegistry(configuration: tenSeconds)
        let pod = Workload()
        #expect(registry.observe(pod.event(0, exec("/usr/sbin/nginx", ["nginx"])), startedBeforeObservation: true)?.state == .partial)
        let verdict = try #require(registry.observe(pod.event(11, exec("/bin/sh", ["sh"]))))
        #expect(verdict.state == .final)
        #expect(verdict.unexpected.count == 1)
        #expect(registry.profile(pod.key.workload, now: start + 11_000_000_000)?.container("nginx")?.incomplete == true)
    }

    @Test("allow, finalize and reset change what the profile decides")
    func edits() throws {
        let registry = ProfileRegistry(configuration: ProfileConfiguration(learningPeriod: 3600_000_000_000, jitter: 0))
        let pod = Workload()
        _ = registry.observe(pod.event(0, exec("/usr/sbin/nginx", ["nginx"])))
        #expect(registry.finalize(pod.key.workload, now: start + 1_000_000_000) == ["nginx"])
        let shell = exec("/bin/sh", ["sh", "-c", "date"])
        #expect(registry.observe(pod.event(2, shell))?.unexpected.count == 1, "final before the hour is up")
        #expect(registry.allow(.exec(path: "/bin/sh", argv: ["sh", "-c", "date"]), in: pod.key))
        var other = Workload()
        other.containerID = "c0ffee0000000000000000000000000000000000000000000000000000000009"
        #expect(registry.observe(other.event(3, shell))?.unexpected == [], "allowed: no longer an anomaly")
        #expect(registry.reset(pod.key.workload))
        #expect(registry.observe(pod.event(4, shell))?.state == .learning, "reset: it learns again")
        #expect(registry.allow(.dns("x.example"), in: ProfileKey(workload: WorkloadKey(namespace: "a", kind: "Pod", name: "b"), container: "c")) == false)
    }

    @Test("Host processes and containers outside pods have no profile")
    func noWorkload() {
        let registry = ProfileRegistry(configuration: tenSeconds)
        var hostEvent = Workload().event(0, exec("/bin/ls", ["ls"]))
        hostEvent.container = nil
        #expect(registry.observe(hostEvent) == nil)
        var bare = Workload().event(0, exec("/bin/ls", ["ls"]))
        bare.container = ContainerRef(containerID: "abc")
        #expect(registry.observe(bare) == nil)
        #expect(registry.observe(Workload().event(0, .moduleLoad(ModuleLoad(syscall: "finit_module")))) == nil)
    }

    @Test("The learning period's jitter is per workload, bounded and the same every time")
    func jitter() {
        let configuration = ProfileConfiguration(learningPeriod: 1000 * 1_000_000_000, jitter: 0.1)
        var periods: Set<UInt64> = []
        for name in ["a", "b", "c", "d", "e"] {
            let key = ProfileKey(workload: WorkloadKey(namespace: "ns", kind: "Deployment", name: name), container: "app")
            let period = configuration.learningPeriod(for: key)
            #expect(period >= 1000 * 1_000_000_000 && period <= 1100 * 1_000_000_000)
            #expect(period == configuration.learningPeriod(for: key))
            periods.insert(period)
        }
        #expect(periods.count > 1, "workloads do not all turn final together")
    }

    @Test("Each anomaly names the exact patrolctl command that allows it, quoted for a shell")
    func allowCommands() {
        let key = Workload().key
        #expect(
            ProfileItem.exec(path: "/bin/sh", argv: ["sh", "-c", "echo 'hi' > /tmp/x"]).allowCommand(for: key)
                == "patrolctl profiles allow shop/Deployment/web --container nginx --exec /bin/sh --arg sh --arg -c --arg 'echo '\\''hi'\\'' > /tmp/x'")
        #expect(
            ProfileItem.open(path: "/etc/shadow", flags: O_WRONLY | O_CLOEXEC).allowCommand(for: key)
                == "patrolctl profiles allow shop/Deployment/web --container nginx --open /etc/shadow --flags O_WRONLY,O_CLOEXEC")
        #expect(
            ProfileItem.capability(syscall: setuidNumber, capability: capSetuid).allowCommand(for: key)
                == "patrolctl profiles allow shop/Deployment/web --container nginx --capability CAP_SETUID --syscall setuid")
        #expect(ProfileItem.outgoing(Endpoint(proto: .udp, address: "fd00::1", port: 53)).allowArguments == ["--connect", "udp://[fd00::1]:53"])
        #expect(Endpoint(url: "udp://[fd00::1]:53") == Endpoint(proto: .udp, address: "fd00::1", port: 53))
        #expect(Endpoint(url: "tcp://:8080") == Endpoint(proto: .tcp, address: "", port: 8080))
    }
}
