import EventModel
import RuleEngine
import Testing

let podContainer = ContainerRef(
    runtime: "containerd", containerID: "c0ffee", podUID: "uid-1", podName: "web-1", namespace: "shop",
    containerName: "nginx", image: "nginx:1.25")

func execEvent(
    _ path: String, argv: [String]? = nil, env: [String] = [], upper: Bool = false, pid: Int32 = 100,
    uid: UInt32 = 0, time: UInt64 = 1_000_000_000, container: ContainerRef? = podContainer
) -> Event {
    Event(
        time: time, node: "node-a",
        process: ProcessInfo(pid: pid, ppid: 1, tid: pid, uid: uid, comm: String(path.split(separator: "/").last ?? ""), exe: "/bin/sh", cwd: "/root"),
        container: container,
        payload: .exec(Exec(path: path, argv: argv ?? [path], env: env, upperLayer: upper)))
}

func openEvent(
    _ path: String, flags: UInt32 = 0, pid: Int32 = 100, time: UInt64 = 1_000_000_000, exe: String = "/usr/bin/cat",
    container: ContainerRef? = podContainer
) -> Event {
    Event(
        time: time, node: "node-a", process: ProcessInfo(pid: pid, comm: "cat", exe: exe), container: container,
        payload: .open(FileOpen(path: path, flags: flags, result: 3)))
}

func connectEvent(
    _ address: String, _ port: UInt16, pid: Int32 = 100, time: UInt64 = 1_000_000_000, proto: TransportProtocol = .tcp,
    container: ContainerRef? = podContainer
) -> Event {
    Event(
        time: time, node: "node-a", process: ProcessInfo(pid: pid, comm: "ssh", exe: "/usr/bin/ssh"), container: container,
        payload: .connect(NetworkFlow(proto: proto, localAddress: "10.0.0.5", localPort: 40000, remoteAddress: address, remotePort: port)))
}

func dnsEvent(_ name: String, answers: [String] = []) -> Event {
    Event(
        time: 1, node: "node-a", process: ProcessInfo(pid: 7, comm: "curl", exe: "/usr/bin/curl"), container: podContainer,
        payload: .dns(DNSQuery(name: name, queryType: 1, answers: answers)))
}

func auditEvent(_ json: [String: JSONValue]) -> Event {
    Event(time: 5, node: "", process: ProcessInfo(), payload: .audit(AuditRecord(document: .object(json), sourceID: "file:1")))
}

/// A rule file with one rule for `events` and `condition`.
func oneRule(_ condition: String, events: String = "[exec]", extra: String = "") -> String {
    """
    - rule:
        id: T1
        name: Test rule
        severity: high
        events: \(events)
        condition: '\(condition.replacingQuotes)'
        output: "hit %proc.exe"
    \(extra)
    """
}

extension String {
    var replacingQuotes: String { self.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''") }
}

/// True when a single rule with `condition` fires for `event`.
func fires(_ condition: String, _ event: Event, events: String = "[exec]", lists: String = "") throws -> Bool {
    let kindsLine = events
    let yaml = lists + "\n" + """
        - rule:
            id: T1
            name: Test rule
            severity: high
            events: \(kindsLine)
            condition: '\(condition.replacingQuotes)'
            output: "hit"
        """
    let set = try RuleSet.load(yaml: yaml, fileName: "test.yaml")
    var evaluator = RuleEvaluator(ruleSet: set)
    return !evaluator.evaluate(event).isEmpty
}

/// The error loading `yaml` gives.
func loadError(_ yaml: String, file: String = "bad.yaml") -> RuleEngineError? {
    do {
        _ = try RuleSet.load(yaml: yaml, fileName: file)
        return nil
    } catch {
        return error
    }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}
