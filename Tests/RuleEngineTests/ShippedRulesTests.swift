import EventModel
import Foundation
import RuleEngine
import Testing

// Tests for the shipped signature rules: they load exactly the repository's `rules/*.yaml` files.

/// `<repo>/rules`, found from this file's path (Tests/RuleEngineTests/ShippedRulesTests.swift).
private func shippedRulesDirectory() -> String {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    parts.removeLast(3)
    return parts.joined(separator: "/") + "/rules"
}

/// Every `*.yaml` file in `rules/`, in name order (the order the collector loads them).
private func shippedRuleFiles() throws -> [String] {
    let directory = shippedRulesDirectory()
    return try FileManager.default.contentsOfDirectory(atPath: directory)
        .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
        .sorted()
        .map { directory + "/" + $0 }
}

/// Loaded once for the whole suite (a RuleSet is immutable; each test makes its own evaluator).
private let shippedRuleSet = Result { try RuleSet.load(files: try shippedRuleFiles()) }

private func shippedRules(parameters: ParameterOverrides = [:]) throws -> RuleSet {
    if parameters.isEmpty { return try shippedRuleSet.get() }
    return try RuleSet.load(files: try shippedRuleFiles(), parameters: parameters)
}

// MARK: Event builders

private let pod = ContainerRef(
    runtime: "containerd", containerID: "4f1c0ffee", podUID: "uid-77", podName: "web-7d9f", namespace: "shop",
    containerName: "app", image: "registry.local/web:1.4")

private let second: UInt64 = 1_000_000_000

private func make(
    _ payload: Payload, exe: String = "/usr/bin/app", pid: Int32 = 4242, time: UInt64 = 10 * second,
    container: ContainerRef? = pod
) -> Event {
    let comm = String(exe.split(separator: "/").last ?? "").prefix(15)
    return Event(
        time: time, node: "node-1",
        process: ProcessInfo(pid: pid, ppid: 1, tid: pid, uid: 0, comm: String(comm), exe: exe, cwd: "/"),
        container: container, payload: payload)
}

private func onExec(
    _ path: String, _ argv: [String]? = nil, env: [String] = [], upper: Bool = false, volume: Bool = false,
    socket: Bool = false, container: ContainerRef? = pod
) -> Event {
    make(
        .exec(Exec(path: path, argv: argv ?? [path], env: env, upperLayer: upper, fromVolume: volume, stdioSocket: socket)),
        exe: path, container: container)
}

private let O_WRONLY: UInt32 = 0o1, O_RDWR: UInt32 = 0o2, O_CREAT: UInt32 = 0o100, O_TRUNC: UInt32 = 0o1000

private func onOpen(
    _ path: String, flags: UInt32 = 0, exe: String = "/usr/bin/cat", pid: Int32 = 4242, time: UInt64 = 10 * second,
    result: Int32 = 3, container: ContainerRef? = pod
) -> Event {
    make(.open(FileOpen(path: path, flags: flags, result: result)), exe: exe, pid: pid, time: time, container: container)
}

private func onConnect(
    _ address: String, _ port: UInt16, proto: TransportProtocol = .tcp, family: AddressFamily = .inet,
    exe: String = "/usr/bin/app", pid: Int32 = 4242, time: UInt64 = 10 * second, container: ContainerRef? = pod
) -> Event {
    make(
        .connect(NetworkFlow(family: family, proto: proto, localAddress: "10.1.2.3", localPort: 40123, remoteAddress: address, remotePort: port)),
        exe: exe, pid: pid, time: time, container: container)
}

private func onDNS(_ name: String, exe: String = "/usr/bin/app", container: ContainerRef? = pod) -> Event {
    make(.dns(DNSQuery(name: name)), exe: exe, container: container)
}

private func onNamespace(
    _ syscall: String, flags: UInt64 = 0, source: String = "", target: String = "", fsType: String = "",
    exe: String = "/usr/bin/app", container: ContainerRef? = pod
) -> Event {
    make(
        .namespaceChange(NamespaceChange(syscall: syscall, flags: flags, source: source, target: target, fsType: fsType)),
        exe: exe, container: container)
}

private func onLink(_ target: String, at path: String, symbolic: Bool = true, container: ContainerRef? = pod) -> Event {
    make(.link(FileLink(target: target, linkPath: path, symbolic: symbolic)), exe: "/bin/ln", container: container)
}

private func onPtrace(_ request: Int32, exe: String = "/usr/bin/gdb", container: ContainerRef? = pod) -> Event {
    make(.ptrace(PtraceAttach(request: request, targetPid: 1)), exe: exe, container: container)
}

private func onBPF(_ command: Int32, exe: String = "/usr/bin/loader", container: ContainerRef? = pod) -> Event {
    make(.bpf(BPFCall(command: command)), exe: exe, container: container)
}

private func onModule(_ syscall: String, _ name: String, container: ContainerRef? = pod) -> Event {
    make(.moduleLoad(ModuleLoad(syscall: syscall, name: name)), exe: "/usr/sbin/insmod", container: container)
}

// MARK: Cases

/// One event that must raise exactly `rule` (and nothing else) with `message` in the alert's message.
struct PositiveCase: Sendable, CustomTestStringConvertible {
    var rule: String
    var label: String
    var event: Event
    var message: String
    var testDescription: String { "\(rule): \(label)" }
}

/// One look-alike event that must not raise `rule`; alerts from `others` are tolerated (they are
/// expected from other rules), anything else fails.
struct NegativeCase: Sendable, CustomTestStringConvertible {
    var rule: String
    var label: String
    var event: Event
    var others: Set<String> = []
    var testDescription: String { "not \(rule): \(label)" }
}

private let positives: [PositiveCase] = [
    // R1000
    .init(rule: "R1000", label: "/dev/shm", event: onExec("/dev/shm/true"), message: "Exec from malicious source: /dev/shm/true"),
    .init(rule: "R1000", label: "/run", event: onExec("/run/x"), message: "/run/x"),
    .init(rule: "R1000", label: "/var/run", event: onExec("/var/run/kit/x", ["x", "-o", "pool"]), message: "/var/run/kit/x (x -o pool)"),
    .init(rule: "R1000", label: "/proc/self/fd", event: onExec("/proc/self/fd/3"), message: "/proc/self/fd/3"),
    .init(rule: "R1000", label: "/dev/fd (fexecve)", event: onExec("/dev/fd/6", ["payload"]), message: "/dev/fd/6 (payload)"),
    .init(rule: "R1000", label: "/dev/fd, runc init with more arguments", event: onExec("/dev/fd/6", ["/usr/sbin/runc", "init", "-x"]), message: "/dev/fd/6"),
    .init(rule: "R1000", label: "/proc/<pid>/fd", event: onExec("/proc/812/fd/7"), message: "/proc/812/fd/7"),
    .init(rule: "R1000", label: "host /dev/shm", event: onExec("/dev/shm/true", container: nil), message: "/dev/shm/true"),
    // R1001
    .init(rule: "R1001", label: "upper layer", event: onExec("/usr/local/bin/dropped", upper: true),
          message: "Exec of a binary not in the base image: /usr/local/bin/dropped"),
    // R1002
    .init(rule: "R1002", label: "init_module", event: onModule("init_module", "rootkit"),
          message: "Kernel module load via init_module (module 'rootkit') by /usr/sbin/insmod"),
    .init(rule: "R1002", label: "finit_module", event: onModule("finit_module", "rootkit"), message: "via finit_module (module 'rootkit')"),
    .init(rule: "R1002", label: "host finit_module", event: onModule("finit_module", "nf_tables", container: nil), message: "nf_tables"),
    // R1004
    .init(rule: "R1004", label: "volume", event: onExec("/data/tools/run.sh", volume: true),
          message: "Exec from mount: /data/tools/run.sh"),
    // R1006
    .init(rule: "R1006", label: "unshare", event: onNamespace("unshare", flags: 0x1000_0000, exe: "/usr/bin/unshare"),
          message: "Unshare system call by /usr/bin/unshare in a container (CLONE_NEW* flags 268435456)"),
    // R1007
    .init(rule: "R1007", label: "port 3333", event: onConnect("203.0.113.9", 3333, exe: "/tmp/xmrig"),
          message: "Crypto miner: /tmp/xmrig contacted 203.0.113.9:3333, a known mining pool port or domain (connect)"),
    .init(rule: "R1007", label: "port 45700", event: onConnect("2001:db8::7", 45700, family: .inet6), message: "[2001:db8::7]:45700"),
    .init(rule: "R1007", label: "pool domain, trailing dot", event: onDNS("pool.minexmr.com.", exe: "/tmp/xmrig"),
          message: "Crypto miner: /tmp/xmrig contacted pool.minexmr.com, a known mining pool port or domain (dns)"),
    .init(rule: "R1007", label: "pool subdomain, upper case", event: onDNS("XMR-US-EAST1.Nanopool.org."), message: "xmr-us-east1.nanopool.org,"),
    // R1008
    .init(rule: "R1008", label: "LD_PRELOAD", event: onExec("/usr/bin/ssh", env: ["PATH=/bin", "LD_PRELOAD=/tmp/.x/libhook.so"]),
          message: "LD_PRELOAD in exec environment: /usr/bin/ssh (/usr/bin/ssh) started with LD_PRELOAD=/tmp/.x/libhook.so"),
    .init(rule: "R1008", label: "allowed allocator plus another library",
          event: onExec("/usr/bin/redis-server", env: ["LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2:/tmp/evil.so"]),
          message: "/tmp/evil.so"),
    // R1009
    .init(rule: "R1009", label: "write", event: onOpen("/etc/ld.so.preload", flags: O_WRONLY | O_CREAT | O_TRUNC, exe: "/usr/bin/tee"),
          message: "Write to /etc/ld.so.preload by /usr/bin/tee (open flags 577)"),
    .init(rule: "R1009", label: "host append", event: onOpen("/etc/ld.so.preload", flags: O_RDWR, container: nil), message: "/etc/ld.so.preload"),
    // R1010
    .init(rule: "R1010", label: "symlink to /etc/shadow", event: onLink("/etc/shadow", at: "/tmp/s"),
          message: "Link to sensitive file: /tmp/s -> /etc/shadow (symbolic: true) created by /bin/ln"),
    .init(rule: "R1010", label: "hard link to /etc/sudoers", event: onLink("/etc/sudoers", at: "/tmp/h", symbolic: false),
          message: "/tmp/h -> /etc/sudoers (symbolic: false)"),
    .init(rule: "R1010", label: "file in /etc/sudoers.d", event: onLink("/etc/sudoers.d/90-cloud", at: "/tmp/c"), message: "/etc/sudoers.d/90-cloud"),
    .init(rule: "R1010", label: "link put in place of /etc/sudoers", event: onLink("/tmp/mysudoers", at: "/etc/sudoers"),
          message: "/etc/sudoers -> /tmp/mysudoers"),
    .init(rule: "R1010", label: "relative target", event: onLink("../../etc/shadow", at: "/var/tmp/s"), message: "../../etc/shadow"),
    .init(rule: "R1010", label: "gshadow on the host", event: onLink("/etc/gshadow", at: "/tmp/g", container: nil), message: "/etc/gshadow"),
    // R1011
    .init(rule: "R1011", label: "cat /etc/shadow", event: onOpen("/etc/shadow"),
          message: "Read of shadow password file /etc/shadow by /usr/bin/cat (open result 3)"),
    .init(rule: "R1011", label: "failed read as non-root", event: onOpen("/etc/gshadow", result: -13), message: "(open result -13)"),
    .init(rule: "R1011", label: "host, not an auth tool", event: onOpen("/etc/shadow", exe: "/usr/bin/python3", container: nil),
          message: "by /usr/bin/python3"),
    // R1012
    .init(rule: "R1012", label: "memfd exec", event: onExec("/memfd:payload (deleted)", ["[kworker/0:1]"]),
          message: "Exec from memfd: /memfd:payload (deleted) ([kworker/0:1]) runs from an anonymous memory file"),
    .init(rule: "R1012", label: "memfd exec named like runc but not runc init", event: onExec("/memfd:runc_cloned:x", ["runc", "sh"]),
          message: "/memfd:runc_cloned:x"),
    // R1013
    .init(rule: "R1013", label: "PTRACE_ATTACH", event: onPtrace(16),
          message: "Ptrace attach from container: /usr/bin/gdb used ptrace request 16 on pid 1"),
    .init(rule: "R1013", label: "PTRACE_SEIZE", event: onPtrace(0x4206), message: "request 16902"),
    .init(rule: "R1013", label: "PTRACE_POKEDATA", event: onPtrace(5), message: "request 5"),
    // R1014
    .init(rule: "R1014", label: "/proc/<pid>/mem", event: onOpen("/proc/1/mem", flags: O_RDWR, exe: "/tmp/inject"),
          message: "Write to process memory: /tmp/inject opened /proc/1/mem for writing (flags 2)"),
    .init(rule: "R1014", label: "/proc/self/mem", event: onOpen("/proc/self/mem", flags: O_WRONLY), message: "/proc/self/mem"),
    .init(rule: "R1014", label: "task mem", event: onOpen("/proc/12/task/13/mem", flags: O_WRONLY), message: "/proc/12/task/13/mem"),
    // R1015
    .init(rule: "R1015", label: "nsenter to host", event: onNamespace("setns", flags: 0x20000, source: "/proc/1/ns/mnt", exe: "/usr/bin/nsenter"),
          message: "Setns from container: /usr/bin/nsenter joined namespace '/proc/1/ns/mnt' (nstype 131072)"),
    // R1016
    .init(rule: "R1016", label: "block device", event: onNamespace("mount", source: "/dev/sda1", target: "/mnt", fsType: "ext4", exe: "/bin/mount"),
          message: "Host filesystem mount from container: /bin/mount mounted '/dev/sda1' on '/mnt' (type 'ext4', flags 0)"),
    .init(rule: "R1016", label: "cgroup (release_agent escape)", event: onNamespace("mount", source: "cgroup", target: "/tmp/cg", fsType: "cgroup"),
          message: "'cgroup' on '/tmp/cg' (type 'cgroup'"),
    .init(rule: "R1016", label: "remount /proc/sys", event: onNamespace("mount", flags: 0x20, source: "proc", target: "/proc/sys"),
          message: "on '/proc/sys' (type '', flags 32)"),
    .init(rule: "R1016", label: "xfs by uuid path", event: onNamespace("mount", source: "/dev/disk/by-uuid/1234", target: "/host", fsType: "xfs"),
          message: "/dev/disk/by-uuid/1234"),
    // R1017
    .init(rule: "R1017", label: "BPF_PROG_LOAD", event: onBPF(5), message: "BPF from container: /usr/bin/loader called bpf() with command 5"),
    // R1018
    .init(rule: "R1018", label: "bash -i", event: onExec("/bin/bash", ["bash", "-i"], socket: true),
          message: "Reverse shell: /bin/bash (bash -i) started with stdin or stdout on a socket"),
    .init(rule: "R1018", label: "busybox sh", event: onExec("/bin/busybox", ["sh"], socket: true), message: "/bin/busybox (sh)"),
    .init(rule: "R1018", label: "busybox ash by path", event: onExec("/bin/busybox", ["/bin/ash", "-i"], socket: true), message: "(/bin/ash -i)"),
    .init(rule: "R1018", label: "host dash", event: onExec("/usr/bin/dash", socket: true, container: nil), message: "/usr/bin/dash"),
    // R1019
    .init(rule: "R1019", label: "apt-get install", event: onExec("/usr/bin/apt-get", ["apt-get", "install", "-y", "nmap"]),
          message: "Package manager in container: /usr/bin/apt-get (apt-get install -y nmap) ran in a running container"),
    .init(rule: "R1019", label: "apk add", event: onExec("/sbin/apk", ["apk", "add", "socat"]), message: "(apk add socat)"),
    .init(rule: "R1019", label: "pip install", event: onExec("/usr/local/bin/pip", ["pip", "install", "requests"]), message: "pip install requests"),
]

private let negatives: [NegativeCase] = [
    // R1000: path components, not raw prefixes
    .init(rule: "R1000", label: "/runtime/x", event: onExec("/runtime/x")),
    .init(rule: "R1000", label: "/dev/shmfoo/x", event: onExec("/dev/shmfoo/x")),
    .init(rule: "R1000", label: "/var/running/x", event: onExec("/var/running/x")),
    .init(rule: "R1000", label: "/run without a file", event: onExec("/run")),
    .init(rule: "R1000", label: "/proc/self/exe", event: onExec("/proc/self/exe")),
    .init(rule: "R1000", label: "runc init re-executed from a descriptor", event: onExec("/dev/fd/6", ["/usr/sbin/runc", "init"])),
    .init(rule: "R1000", label: "runc init, bare argv[0]", event: onExec("/dev/fd/5", ["runc", "init"])),
    .init(rule: "R1000", label: "/usr/bin/env", event: onExec("/usr/bin/env")),
    // R1001 / R1004
    .init(rule: "R1001", label: "image binary", event: onExec("/usr/local/bin/app")),
    .init(rule: "R1001", label: "host (no upper layer)", event: onExec("/usr/local/bin/new", upper: true, container: nil)),
    .init(rule: "R1004", label: "not from a volume", event: onExec("/data/tools/run.sh")),
    // R1002
    .init(rule: "R1002", label: "delete_module", event: onModule("delete_module", "rootkit")),
    // R1006
    .init(rule: "R1006", label: "host unshare", event: onNamespace("unshare", flags: 0x1000_0000, container: nil)),
    .init(rule: "R1006", label: "runc init unshare", event: onNamespace("unshare", flags: 0x2000_0000, exe: "/usr/bin/runc")),
    .init(rule: "R1006", label: "setns is not unshare", event: onNamespace("setns", source: "/proc/1/ns/net"), others: ["R1015"]),
    // R1007
    .init(rule: "R1007", label: "port 443", event: onConnect("203.0.113.9", 443)),
    .init(rule: "R1007", label: "non-pool domain", event: onDNS("example.com.")),
    .init(rule: "R1007", label: "look-alike domain", event: onDNS("notnanopool.org.")),
    .init(rule: "R1007", label: "pool name as a prefix", event: onDNS("pool.minexmr.com.evil.test.")),
    .init(rule: "R1007", label: "cluster DNS", event: onDNS("kubernetes.default.svc.cluster.local.")),
    // R1008
    .init(rule: "R1008", label: "no LD_PRELOAD", event: onExec("/usr/bin/ssh", env: ["PATH=/bin", "HOME=/root"])),
    .init(rule: "R1008", label: "empty LD_PRELOAD", event: onExec("/usr/bin/ssh", env: ["LD_PRELOAD="])),
    .init(rule: "R1008", label: "look-alike variable", event: onExec("/usr/bin/ssh", env: ["LD_PRELOAD_PATH=/tmp/x.so", "MY_LD_PRELOAD=/tmp/x.so"])),
    .init(rule: "R1008", label: "allowed jemalloc",
          event: onExec("/usr/bin/redis-server", env: ["LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"])),
    // R1009
    .init(rule: "R1009", label: "ld.so reads it at every exec", event: onOpen("/etc/ld.so.preload", exe: "/usr/bin/ls")),
    .init(rule: "R1009", label: "look-alike path", event: onOpen("/etc/ld.so.preload.bak", flags: O_WRONLY | O_CREAT)),
    // R1010
    .init(rule: "R1010", label: "/etc/shadowfoo", event: onLink("/etc/shadowfoo", at: "/tmp/s")),
    .init(rule: "R1010", label: "/etc/passwd", event: onLink("/etc/passwd", at: "/tmp/p")),
    .init(rule: "R1010", label: "ordinary link", event: onLink("/usr/lib/libssl.so.3", at: "/usr/lib/libssl.so")),
    .init(rule: "R1010", label: "relative look-alike", event: onLink("../etc/shadow.d/x", at: "/tmp/s")),
    .init(rule: "R1010", label: "relative, not parent dirs", event: onLink("ab/etc/shadow", at: "/tmp/s")),
    // R1011
    .init(rule: "R1011", label: "/etc/shadowfoo", event: onOpen("/etc/shadowfoo")),
    .init(rule: "R1011", label: "/etc/passwd", event: onOpen("/etc/passwd")),
    .init(rule: "R1011", label: "host unix_chkpwd", event: onOpen("/etc/shadow", exe: "/usr/sbin/unix_chkpwd", container: nil)),
    .init(rule: "R1011", label: "host sshd", event: onOpen("/etc/shadow", exe: "/usr/sbin/sshd", container: nil)),
    .init(rule: "R1011", label: "write is not a read", event: onOpen("/etc/shadow", flags: O_WRONLY | O_TRUNC, exe: "/usr/bin/passwd")),
    // R1012
    .init(rule: "R1012", label: "runc init from its memfd copy",
          event: onExec("/memfd:runc_cloned:/proc/self/exe (deleted)", ["runc", "init"])),
    .init(rule: "R1012", label: "memfd in a file name", event: onExec("/usr/bin/memfd:tool")),
    // R1013
    .init(rule: "R1013", label: "host debugger", event: onPtrace(16, container: nil)),
    .init(rule: "R1013", label: "PTRACE_TRACEME", event: onPtrace(0)),
    .init(rule: "R1013", label: "PTRACE_PEEKDATA", event: onPtrace(2)),
    // R1014
    .init(rule: "R1014", label: "read of /proc/1/mem", event: onOpen("/proc/1/mem")),
    .init(rule: "R1014", label: "write of /proc/1/memory", event: onOpen("/proc/1/memory", flags: O_WRONLY)),
    .init(rule: "R1014", label: "write of /proc/1/oom_score_adj", event: onOpen("/proc/1/oom_score_adj", flags: O_WRONLY)),
    .init(rule: "R1014", label: "host writer", event: onOpen("/proc/1/mem", flags: O_RDWR, container: nil)),
    // R1015
    .init(rule: "R1015", label: "host setns", event: onNamespace("setns", source: "/proc/1/ns/mnt", container: nil)),
    .init(rule: "R1015", label: "runc exec joins", event: onNamespace("setns", source: "/proc/812/ns/mnt", exe: "/memfd:runc_cloned:/proc/self/exe (deleted)")),
    // R1016
    .init(rule: "R1016", label: "tmpfs on /tmp", event: onNamespace("mount", source: "tmpfs", target: "/tmp", fsType: "tmpfs")),
    .init(rule: "R1016", label: "host mount", event: onNamespace("mount", source: "/dev/sdb1", target: "/var/lib/kubelet/x", fsType: "ext4", container: nil)),
    .init(rule: "R1016", label: "runc mounts proc", event: onNamespace("mount", source: "proc", target: "/proc", fsType: "proc", exe: "/usr/bin/runc")),
    .init(rule: "R1016", label: "/procfoo target", event: onNamespace("mount", source: "tmpfs", target: "/procfoo", fsType: "tmpfs")),
    // R1017
    .init(rule: "R1017", label: "host bpf", event: onBPF(5, container: nil)),
    .init(rule: "R1017", label: "cilium agent", event: onBPF(5, exe: "/usr/bin/cilium-agent")),
    // R1018
    .init(rule: "R1018", label: "bash on a terminal", event: onExec("/bin/bash", ["bash", "-i"])),
    .init(rule: "R1018", label: "non-shell on a socket", event: onExec("/usr/bin/python3", ["python3", "app.py"], socket: true)),
    .init(rule: "R1018", label: "busybox ls on a socket", event: onExec("/bin/busybox", ["ls", "sh"], socket: true)),
    .init(rule: "R1018", label: "shell-like name", event: onExec("/usr/bin/bashtop", socket: true)),
    // R1019
    .init(rule: "R1019", label: "host apt", event: onExec("/usr/bin/apt-get", ["apt-get", "update"], container: nil)),
    .init(rule: "R1019", label: "npm start", event: onExec("/usr/local/bin/npm", ["npm", "start"])),
    .init(rule: "R1019", label: "pip --version", event: onExec("/usr/local/bin/pip", ["pip", "--version"])),
    .init(rule: "R1019", label: "aptly (look-alike name)", event: onExec("/usr/bin/aptly", ["aptly", "install"])),
]

@Suite struct ShippedRulesTests {
    @Test func shippedFilesLoadWithEveryRuleComplete() throws {
        let files = try shippedRuleFiles()
        #expect(files.contains { $0.hasSuffix("/rules/runtime-signatures.yaml") })
        let set = try shippedRules()
        let ids = Set(set.rules.map(\.id))
        let expected: Set<String> = [
            "R1000", "R1001", "R1002", "R1003", "R1004", "R1006", "R1007", "R1008", "R1009", "R1010", "R1011",
            "R1012", "R1013", "R1014", "R1015", "R1016", "R1017", "R1018", "R1019",
        ]
        #expect(expected.isSubset(of: ids))
        for rule in set.rules where expected.contains(rule.id) {
            #expect(!rule.name.isEmpty, "\(rule.id) name")
            #expect(!rule.description.isEmpty, "\(rule.id) description")
            #expect(!rule.fix.isEmpty, "\(rule.id) fix")
            #expect(!rule.output.isEmpty, "\(rule.id) output")
            #expect(rule.tags.contains("signature"), "\(rule.id) tags")
            #expect(rule.enabled, "\(rule.id) enabled")
            #expect(!rule.needsProfile, "\(rule.id) needs no profile")
        }
        // Only R1006 stays out of the default binding.
        #expect(set.rules.filter { $0.tags.contains("not-default") }.map(\.id) == ["R1006"])
        #expect(set.rule(id: "R1006")?.tags.contains("noisy") == true)
        #expect(set.rule(id: "R1003")?.sequence != nil)
        #expect(Set(set.rule(id: "R1002")?.events ?? []) == [.moduleLoad])
        // Every shipped runtime rule has at least one positive case below (R1003 has its own tests; the audit
        // rules theirs in AuditRulesTests; the anomaly rules, which need a profile, theirs in AnomalyRulesTests; the
        // malware rules theirs in MalwareRulesTests).
        let runtimeIDs = Set(set.rules.filter { !$0.events.contains(.audit) && !$0.needsProfile }.map(\.id))
        #expect(runtimeIDs.subtracting(positives.map(\.rule)).subtracting(["R1003", "R1100", "R1101"]).isEmpty)
    }

    @Test(arguments: positives) func ruleFires(_ test: PositiveCase) throws {
        var evaluator = RuleEvaluator(ruleSet: try shippedRules())
        let alerts = evaluator.evaluate(test.event)
        #expect(alerts.map(\.ruleID) == [test.rule])
        guard let alert = alerts.first else { return }
        #expect(alert.message.contains(test.message), "message: \(alert.message)")
        #expect(!alert.message.contains("<NA>"), "message: \(alert.message)")
        #expect(!alert.fix.isEmpty)
        #expect(alert.container == test.event.container)
        #expect(alert.process == test.event.process)
        #expect(alert.eventKind == test.event.kind)
    }

    @Test(arguments: negatives) func lookAlikeDoesNotFire(_ test: NegativeCase) throws {
        var evaluator = RuleEvaluator(ruleSet: try shippedRules())
        let fired = evaluator.evaluate(test.event).map(\.ruleID)
        #expect(!fired.contains(test.rule), "fired: \(fired)")
        #expect(Set(fired).isSubset(of: test.others), "unexpected alerts: \(fired)")
    }

    @Test func containerAndHostAttribution() throws {
        var evaluator = RuleEvaluator(ruleSet: try shippedRules())
        let inPod = evaluator.evaluate(onExec("/dev/shm/true"))
        #expect(inPod.first?.container == pod)
        #expect(inPod.first?.container?.podName == "web-7d9f")
        #expect(inPod.first?.container?.namespace == "shop")
        #expect(inPod.first?.container?.containerName == "app")
        #expect(inPod.first?.process.exe == "/dev/shm/true")
        let onHost = evaluator.evaluate(onExec("/dev/shm/true", container: nil))
        #expect(onHost.map(\.ruleID) == ["R1000"])
        #expect(onHost.first?.container == nil)
        #expect(onHost.first?.node == "node-1")
        // Same rule and behaviour, different workload: different alert ids.
        #expect(inPod.first?.id != onHost.first?.id)
        // Container-only rules stay silent on the host.
        for event in [
            onExec("/usr/local/bin/new", upper: true, container: nil), onPtrace(16, container: nil), onBPF(5, container: nil),
            onNamespace("setns", source: "/proc/1/ns/mnt", container: nil), onExec("/usr/bin/apt", ["apt", "install"], container: nil),
        ] {
            #expect(evaluator.evaluate(event).isEmpty, "\(event.payload)")
        }
        // Rules for both: the host alert has no container.
        for event in [
            onModule("finit_module", "x", container: nil), onOpen("/etc/shadow", exe: "/tmp/dump", container: nil),
            onExec("/bin/sh", socket: true, container: nil), onDNS("pool.supportxmr.com.", container: nil),
        ] {
            let alerts = evaluator.evaluate(event)
            #expect(alerts.count == 1, "\(event.payload)")
            #expect(alerts.allSatisfy { $0.container == nil })
        }
    }

    @Test func benignWorkloadRaisesNothing() throws {
        var evaluator = RuleEvaluator(ruleSet: try shippedRules())
        var t: UInt64 = 100 * second
        func at(_ event: Event) -> Event {
            var event = event
            t += 50_000_000
            event.time = t
            return event
        }
        var stream: [Event] = [
            onExec("/bin/sh", ["/bin/sh", "-c", "/work/job.sh"]),
            onExec("/bin/ls", ["ls", "-la", "/app"]),
            onOpen("/etc/ld.so.cache", exe: "/bin/ls"), onOpen("/etc/ld.so.preload", exe: "/bin/ls", result: -2),
            onOpen("/lib/x86_64-linux-gnu/libc.so.6", exe: "/bin/ls"),
            onOpen("/etc/passwd", exe: "/bin/ls"), onOpen("/etc/group", exe: "/bin/ls"), onOpen("/etc/nsswitch.conf", exe: "/bin/ls"),
            onExec("/bin/cat", ["cat", "/etc/hostname", "/etc/os-release"]),
            onOpen("/etc/hostname"), onOpen("/etc/os-release"), onOpen("/app/config.yaml"),
            onExec("/bin/sleep", ["sleep", "1"]),
            onExec("/bin/busybox", ["sleep", "1"]),
            onExec("/usr/bin/wget", ["wget", "-qO-", "http://localhost:8080/healthz"]),
            onDNS("localhost"), onConnect("127.0.0.1", 8080, exe: "/usr/bin/wget"), onConnect("::1", 8080, family: .inet6, exe: "/usr/bin/wget"),
            onDNS("kubernetes.default.svc.cluster.local."), onDNS("api.github.com."),
            onConnect("10.96.0.10", 53, proto: .udp), onConnect("10.96.0.1", 443), onConnect("140.82.112.3", 443),
            make(.accept(NetworkFlow(localAddress: "10.1.2.3", localPort: 80, remoteAddress: "10.1.9.9", remotePort: 51000)), exe: "/usr/sbin/nginx"),
            make(.memfd(MemfdCreate(name: "jit-cache", flags: 1)), exe: "/usr/bin/node"),
            make(.exit(Exit(code: 0)), exe: "/bin/sleep"),
        ]
        // nginx: master reads its config, workers open content and append to logs.
        stream += [
            onExec("/usr/sbin/nginx", ["nginx", "-g", "daemon off;"]),
            onOpen("/etc/nginx/nginx.conf", exe: "/usr/sbin/nginx"), onOpen("/etc/nginx/conf.d/default.conf", exe: "/usr/sbin/nginx"),
            onOpen("/etc/ssl/certs/ca-certificates.crt", exe: "/usr/sbin/nginx"),
            onOpen("/var/log/nginx/access.log", flags: O_WRONLY | O_CREAT, exe: "/usr/sbin/nginx"),
            onOpen("/var/run/nginx.pid", flags: O_WRONLY | O_CREAT | O_TRUNC, exe: "/usr/sbin/nginx"),
            onOpen("/usr/share/nginx/html/index.html", exe: "/usr/sbin/nginx"),
            onOpen("/proc/self/status", exe: "/usr/sbin/nginx"), onOpen("/proc/1/stat", exe: "/usr/sbin/nginx"),
        ]
        // The same on the host: kubelet-ish activity.
        stream += [
            onExec("/usr/bin/ls", container: nil), onOpen("/etc/passwd", container: nil),
            onOpen("/etc/shadow", exe: "/usr/sbin/unix_chkpwd", container: nil),
            onDNS("kubernetes.default.svc.cluster.local.", container: nil),
        ]
        var alerts: [Alert] = []
        for event in stream { alerts += evaluator.evaluate(at(event)) }
        #expect(alerts.isEmpty, "\(alerts.map { "\($0.ruleID): \($0.message)" })")
    }

    /// The README's example capture (replayed by `make run` and the end-to-end tests) raises exactly its
    /// three documented alerts with the shipped rules.
    @Test func exampleCaptureRaisesItsThreeAlerts() throws {
        let path = shippedRulesDirectory().dropLast("rules".count) + "docs/examples/capture.jsonl"
        let lines = try String(contentsOfFile: String(path), encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        var evaluator = RuleEvaluator(ruleSet: try shippedRules())
        var alerts: [Alert] = []
        for line in lines { alerts += evaluator.evaluate(try JSONDecoder().decode(Event.self, from: Data(line.utf8))) }
        #expect(alerts.map(\.ruleID) == ["R1000", "R1007", "R1002"])
        #expect(alerts.map(\.message) == [
            "Exec from malicious source: /dev/shm/true (/dev/shm/true) runs from a runtime-data directory or file descriptor",
            "Crypto miner: /tmp/xmrig contacted pool.supportxmr.com, a known mining pool port or domain (dns)",
            "Kernel module load via finit_module (module 'rootkit') by /usr/sbin/insmod",
        ])
        #expect(alerts.last?.container == nil)
    }

    // MARK: R1003

    private func sshSequence(
        key: String = "/root/.ssh/id_rsa", port: UInt16, keyPid: Int32 = 500, connectPid: Int32 = 500, gap: UInt64 = second / 2,
        proto: TransportProtocol = .tcp, family: AddressFamily = .inet, container: ContainerRef? = pod, rules: RuleSet? = nil
    ) throws -> [Alert] {
        var evaluator = RuleEvaluator(ruleSet: try rules ?? shippedRules())
        let start: UInt64 = 50 * second
        var alerts = evaluator.evaluate(onOpen(key, exe: "/usr/bin/exfil", pid: keyPid, time: start, container: container))
        alerts += evaluator.evaluate(
            onConnect("198.51.100.4", port, proto: proto, family: family, exe: "/usr/bin/exfil", pid: connectPid, time: start + gap,
                    container: container))
        return alerts
    }

    @Test func r1003FiresForKeyReadThenConnectToANonSSHPort() throws {
        let alerts = try sshSequence(port: 4444)
        #expect(alerts.map(\.ruleID) == ["R1003"])
        let alert = try #require(alerts.first)
        #expect(alert.message == "Malicious SSH connection: /usr/bin/exfil (pid 500) read SSH keys or config, then connected to 198.51.100.4:4444, which is not an allowed SSH port")
        #expect(!alert.fix.isEmpty)
        #expect(alert.container == pod)
        #expect(alert.eventKind == .connect)
        // Other SSH files.
        for key in ["/home/dev/.ssh/config", "/etc/ssh/ssh_config", "/root/.ssh/authorized_keys", "/srv/keys/id_ed25519", "/tmp/known_hosts"] {
            #expect(try sshSequence(key: key, port: 2222).map(\.ruleID) == ["R1003"], "\(key)")
        }
        // The host: attributed to no container.
        let host = try sshSequence(port: 4444, container: nil)
        #expect(host.map(\.ruleID) == ["R1003"])
        #expect(host.first?.container == nil)
        // IPv6.
        #expect(try sshSequence(port: 8022, family: .inet6).map(\.ruleID) == ["R1003"])
    }

    @Test func r1003Window() throws {
        #expect(try sshSequence(port: 4444, gap: 1_999_000_000).map(\.ruleID) == ["R1003"])
        #expect(try sshSequence(port: 4444, gap: 2 * second).map(\.ruleID) == ["R1003"])
        #expect(try sshSequence(port: 4444, gap: 2 * second + 1_000_000).isEmpty)
        #expect(try sshSequence(port: 4444, gap: 30 * second).isEmpty)
    }

    @Test func r1003NeedsTheSamePid() throws {
        #expect(try sshSequence(port: 4444, keyPid: 500, connectPid: 501).isEmpty)
        #expect(try sshSequence(port: 4444, keyPid: 500, connectPid: 500).map(\.ruleID) == ["R1003"])
        // Same pid in another container is another process.
        var evaluator = RuleEvaluator(ruleSet: try shippedRules())
        var other = pod
        other.containerID = "other"
        _ = evaluator.evaluate(onOpen("/root/.ssh/id_rsa", pid: 500, time: 50 * second, container: other))
        #expect(evaluator.evaluate(onConnect("198.51.100.4", 4444, pid: 500, time: 50 * second + 1, container: pod)).isEmpty)
    }

    @Test func r1003AllowedPortsAndLookAlikes() throws {
        #expect(try sshSequence(port: 22).isEmpty)  // ssh to the standard port
        #expect(try sshSequence(port: 4444, proto: .udp).isEmpty)
        #expect(try sshSequence(port: 0, family: .unix).isEmpty)  // ssh-agent socket
        #expect(try sshSequence(key: "/etc/sshd/notes.txt", port: 4444).isEmpty)
        #expect(try sshSequence(key: "/root/.sshrc", port: 4444).isEmpty)
        #expect(try sshSequence(key: "/etc/hosts", port: 4444).isEmpty)
        // Connect without a key read first, and connect before the key read.
        var evaluator = RuleEvaluator(ruleSet: try shippedRules())
        #expect(evaluator.evaluate(onConnect("198.51.100.4", 4444, pid: 9, time: 5 * second)).isEmpty)
        #expect(evaluator.evaluate(onOpen("/root/.ssh/id_rsa", pid: 9, time: 5 * second + 1)).isEmpty)
        #expect(evaluator.evaluate(onConnect("198.51.100.4", 4444, pid: 9, time: 5 * second + 2)).map(\.ruleID) == ["R1003"])
    }

    @Test func r1003AllowedPortsCanBeOverridden() throws {
        let files = try shippedRuleFiles()
        let loaded = try RuleSet.load(files: files, parameters: ["R1003": ["allowedPorts": ["22", "2222"]]])
        #expect(loaded.rule(id: "R1003")?.parameters["allowedPorts"] == ["22", "2222"])
        #expect(try sshSequence(port: 2222, rules: loaded).isEmpty)
        #expect(try sshSequence(port: 22, rules: loaded).isEmpty)
        #expect(try sshSequence(port: 4444, rules: loaded).map(\.ruleID) == ["R1003"])

        let tuned = try shippedRules().withParameters(["R1003": ["allowedPorts": ["443"]]])
        #expect(try sshSequence(port: 443, rules: tuned).isEmpty)
        #expect(try sshSequence(port: 22, rules: tuned).map(\.ruleID) == ["R1003"])
        // From a binding's JSON.
        let binding = try shippedRules().withParameters(["R1003": ["allowedPorts": ParameterValue(.array([.number(22), .number(7022)]))]])
        #expect(try sshSequence(port: 7022, rules: binding).isEmpty)
        // Overrides are type-checked.
        #expect(throws: RuleEngineError.self) { try shippedRules().withParameters(["R1003": ["allowedPorts": ["ssh"]]]) }
    }

    @Test func allowListsCanBeExtendedFromALaterFile() throws {
        let user = """
            - list: ld_preload_allowed_values
              items: [/opt/app/libprofiler.so]
              append: true
            - list: miner_ports
              items: [14444]
              override: {items: replace}
            - rule:
                id: R1019
                exceptions:
                  - name: by_image
                    fields: [container.image]
                    values: [[registry.local/web:1.4]]
                override: {exceptions: append}
            """
        var sources: [(fileName: String, yaml: String)] = []
        for file in try shippedRuleFiles() { sources.append((file, try String(contentsOfFile: file, encoding: .utf8))) }
        sources.append(("local.yaml", user))
        var evaluator = RuleEvaluator(ruleSet: try RuleSet.load(sources: sources))
        #expect(evaluator.evaluate(onExec("/usr/bin/app", env: ["LD_PRELOAD=/opt/app/libprofiler.so"])).isEmpty)
        #expect(evaluator.evaluate(onExec("/usr/bin/app", env: ["LD_PRELOAD=/tmp/x.so"])).map(\.ruleID) == ["R1008"])
        #expect(evaluator.evaluate(onConnect("203.0.113.9", 3333)).isEmpty)
        #expect(evaluator.evaluate(onConnect("203.0.113.9", 14444)).map(\.ruleID) == ["R1007"])
        #expect(evaluator.evaluate(onExec("/usr/bin/apt-get", ["apt-get", "install", "x"])).isEmpty)
    }
}
