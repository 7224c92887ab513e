import EventModel

/// Alerts for sink and store tests, with values chosen to stress quoting (commas, quotes, newlines).
public enum AlertFixtures {
    public static func alert(
        index: Int = 0, ruleID: String = "R1000", message: String = "Exec from /dev/shm: \"true\", pid 42",
        time: UInt64 = 1_700_000_000_123_456_789
    ) -> Alert {
        Alert(
            id: "alert-\(index)", ruleID: ruleID, ruleName: "Exec from malicious source", severity: .high,
            tags: ["exec", "fileless"], message: message, fix: "Remove the binary,\nthen rebuild the image",
            time: time + UInt64(index), node: "node-1", eventKind: .exec,
            process: ProcessInfo(pid: 42, ppid: 1, tid: 42, uid: 0, gid: 0, comm: "true", exe: "/dev/shm/true", cwd: "/"),
            container: ContainerRef(
                runtime: "runc", containerID: "abc123", podUID: "uid-1", podName: "web.v2", namespace: "default",
                containerName: "web", image: "busybox:1.36"),
            fields: ["path": "/dev/shm/true"])
    }
}
