import Basics

/// One observation from a sensor (or, for `.audit`, from the audit pipeline), as value types.
///
/// This is the single in-memory shape shared by the wire format, the rule engine and the sinks.
public struct Event: Sendable, Hashable, Codable {
    /// When it happened, nanoseconds since the epoch.
    public var time: EpochNanoseconds
    /// The node (host name) the sensor runs on.
    public var node: String
    public var process: ProcessInfo
    /// The container the process runs in; nil means the host.
    public var container: ContainerRef?
    public var payload: Payload
    /// How many identical events the sensor folded into this one inside its de-duplication window.
    public var count: UInt32

    public init(
        time: EpochNanoseconds, node: String, process: ProcessInfo, container: ContainerRef? = nil,
        payload: Payload, count: UInt32 = 1
    ) {
        self.time = time
        self.node = node
        self.process = process
        self.container = container
        self.payload = payload
        self.count = count
    }

    public var kind: EventKind { payload.kind }

    // Replay files are written by hand, so everything but `time` and the payload may be left out.
    private enum CodingKeys: String, CodingKey { case time, node, process, container, payload, count }

    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            time: try values.decode(UInt64.self, forKey: .time),
            node: try values.decodeIfPresent(String.self, forKey: .node) ?? "",
            process: try values.decodeIfPresent(ProcessInfo.self, forKey: .process) ?? ProcessInfo(),
            container: try values.decodeIfPresent(ContainerRef.self, forKey: .container),
            payload: try values.decode(Payload.self, forKey: .payload),
            count: try values.decodeIfPresent(UInt32.self, forKey: .count) ?? 1)
    }
}

/// The process that caused an event.
public struct ProcessInfo: Sendable, Hashable, Codable {
    public var pid: Int32
    public var ppid: Int32
    public var tid: Int32
    public var uid: UInt32
    public var gid: UInt32
    public var comm: String
    public var exe: String
    public var cwd: String
    /// The mount namespace inode, 0 when unknown.
    public var mountNamespace: UInt64

    public init(
        pid: Int32 = 0, ppid: Int32 = 0, tid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0, comm: String = "",
        exe: String = "", cwd: String = "", mountNamespace: UInt64 = 0
    ) {
        self.pid = pid
        self.ppid = ppid
        self.tid = tid
        self.uid = uid
        self.gid = gid
        self.comm = comm
        self.exe = exe
        self.cwd = cwd
        self.mountNamespace = mountNamespace
    }

    private enum CodingKeys: String, CodingKey { case pid, ppid, tid, uid, gid, comm, exe, cwd, mountNamespace }

    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            pid: try values.decodeIfPresent(Int32.self, forKey: .pid) ?? 0,
            ppid: try values.decodeIfPresent(Int32.self, forKey: .ppid) ?? 0,
            tid: try values.decodeIfPresent(Int32.self, forKey: .tid) ?? 0,
            uid: try values.decodeIfPresent(UInt32.self, forKey: .uid) ?? 0,
            gid: try values.decodeIfPresent(UInt32.self, forKey: .gid) ?? 0,
            comm: try values.decodeIfPresent(String.self, forKey: .comm) ?? "",
            exe: try values.decodeIfPresent(String.self, forKey: .exe) ?? "",
            cwd: try values.decodeIfPresent(String.self, forKey: .cwd) ?? "",
            mountNamespace: try values.decodeIfPresent(UInt64.self, forKey: .mountNamespace) ?? 0)
    }
}

/// Which container (and pod) an event belongs to.
public struct ContainerRef: Sendable, Hashable, Codable {
    /// `containerd`, `cri-o`, `docker`, `podman` or another runtime name.
    public var runtime: String
    public var containerID: String
    public var podUID: String
    public var podName: String
    public var namespace: String
    public var containerName: String
    public var image: String
    /// The pod's labels, from the Kubernetes API; empty when no API is configured or the pod is not known (yet).
    public var labels: [String: String]
    /// The pod's controlling owner with ReplicaSets and Jobs followed up to their Deployment or CronJob
    /// (`Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`, ...); empty when unknown or the pod is bare.
    public var ownerKind: String
    public var ownerName: String

    public init(
        runtime: String = "", containerID: String, podUID: String = "", podName: String = "", namespace: String = "",
        containerName: String = "", image: String = "", labels: [String: String] = [:], ownerKind: String = "",
        ownerName: String = ""
    ) {
        self.runtime = runtime
        self.containerID = containerID
        self.podUID = podUID
        self.podName = podName
        self.namespace = namespace
        self.containerName = containerName
        self.image = image
        self.labels = labels
        self.ownerKind = ownerKind
        self.ownerName = ownerName
    }

    private enum CodingKeys: String, CodingKey {
        case runtime, containerID, podUID, podName, namespace, containerName, image, labels, ownerKind, ownerName
    }

    // Replay files written before labels and owners existed (or by hand) leave them out.
    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            runtime: try values.decodeIfPresent(String.self, forKey: .runtime) ?? "",
            containerID: try values.decode(String.self, forKey: .containerID),
            podUID: try values.decodeIfPresent(String.self, forKey: .podUID) ?? "",
            podName: try values.decodeIfPresent(String.self, forKey: .podName) ?? "",
            namespace: try values.decodeIfPresent(String.self, forKey: .namespace) ?? "",
            containerName: try values.decodeIfPresent(String.self, forKey: .containerName) ?? "",
            image: try values.decodeIfPresent(String.self, forKey: .image) ?? "",
            labels: try values.decodeIfPresent([String: String].self, forKey: .labels) ?? [:],
            ownerKind: try values.decodeIfPresent(String.self, forKey: .ownerKind) ?? "",
            ownerName: try values.decodeIfPresent(String.self, forKey: .ownerName) ?? "")
    }
}
