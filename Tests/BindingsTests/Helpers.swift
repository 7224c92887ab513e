import Bindings
import EventModel
import Foundation
import RuleEngine

/// The repository root, found from this file's path (tests load the shipped files in `rules/`).
let repoRoot: String = {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    parts.removeLast(3)  // Tests/BindingsTests/Helpers.swift
    return parts.joined(separator: "/")
}()

let fixtures = repoRoot + "/Tests/BindingsTests/Fixtures"

/// The shipped rule files, in name order, as the collector loads `rules/`.
func shippedRuleFiles() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: repoRoot + "/rules").filter { $0.hasSuffix(".yaml") }.sorted()
        .map { repoRoot + "/rules/" + $0 }
}

let shippedRules = Result { try RuleSet.load(files: try shippedRuleFiles()) }

func rules() throws -> RuleSet { try shippedRules.get() }

func fixture(_ name: String) throws -> [Binding] {
    try BindingLoader.load(paths: [fixtures + "/" + name], ruleSet: try rules())
}

func defaultBinding() throws -> [Binding] {
    try BindingLoader.load(paths: [repoRoot + "/rules/bindings/default.yaml"], ruleSet: try rules())
}

func pod(_ namespace: String, _ labels: [String: String] = [:], name: String = "p") -> ContainerRef {
    ContainerRef(
        runtime: "containerd", containerID: "c-\(namespace)-\(name)", podUID: "uid-\(name)", podName: name,
        namespace: namespace, containerName: "main", image: "busybox", labels: labels)
}

/// R1000: exec of a binary staged in /dev/shm.
func shmExec(_ container: ContainerRef?, time: UInt64 = 1_000_000_000) -> Event {
    Event(
        time: time, node: "node-a", process: ProcessInfo(pid: 40, ppid: 1, tid: 40, comm: "x", exe: "/dev/shm/x"),
        container: container, payload: .exec(Exec(path: "/dev/shm/x", argv: ["/dev/shm/x"])))
}

/// R1007: a connection to a mining pool port.
func minerConnect(_ container: ContainerRef?, time: UInt64 = 1_000_000_000) -> Event {
    Event(
        time: time, node: "node-a", process: ProcessInfo(pid: 41, comm: "xmrig", exe: "/usr/bin/xmrig"),
        container: container,
        payload: .connect(
            NetworkFlow(
                proto: .tcp, localAddress: "10.0.0.5", localPort: 40000, remoteAddress: "198.51.100.7", remotePort: 3333
            )))
}

/// R1003 step 1: a private SSH key read by pid 42.
func sshKeyOpen(_ container: ContainerRef?, time: UInt64) -> Event {
    Event(
        time: time, node: "node-a", process: ProcessInfo(pid: 42, comm: "ssh", exe: "/usr/bin/ssh"),
        container: container,
        payload: .open(FileOpen(path: "/root/.ssh/id_rsa", flags: 0, result: 3)))
}

/// R1003 step 2: pid 42 connects over TCP to `port`.
func sshConnect(_ container: ContainerRef?, port: UInt16, time: UInt64) -> Event {
    Event(
        time: time, node: "node-a", process: ProcessInfo(pid: 42, comm: "ssh", exe: "/usr/bin/ssh"),
        container: container,
        payload: .connect(
            NetworkFlow(
                proto: .tcp, localAddress: "10.0.0.5", localPort: 40001, remoteAddress: "203.0.113.9", remotePort: port)
        ))
}

/// R1006: unshare from a container process.
func unshareEvent(_ container: ContainerRef?) -> Event {
    Event(
        time: 1_000_000_000, node: "node-a", process: ProcessInfo(pid: 43, comm: "unshare", exe: "/usr/bin/unshare"),
        container: container, payload: .namespaceChange(NamespaceChange(syscall: "unshare", flags: 0x2000_0000)))
}

/// Rule ids of the alerts, sorted.
func ids(_ alerts: [Alert]) -> [String] { alerts.map(\.ruleID).sorted() }

/// The problems of a rejected load, or [] when it loaded.
func problems(_ body: () throws(BindingsError) -> [Binding]) -> [BindingProblem] {
    do {
        _ = try body()
        return []
    } catch {
        return error.problems
    }
}
