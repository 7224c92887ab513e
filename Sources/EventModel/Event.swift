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
///
/// The ten fields live in one shared, copy-on-write storage object: every event of a pod carries the same
/// container, so a copy of an event (decoding, rule evaluation, alerts, queues) costs one reference count instead
/// of one per field. Reads and writes look like stored properties; a write to a shared value copies it first.
public struct ContainerRef: Sendable, Hashable, Codable {
    // Mutated only through `unique()`, when no other value refers to it; never shared mutable state.
    private final class Storage: @unchecked Sendable {
        var runtime: String
        var containerID: String
        var podUID: String
        var podName: String
        var namespace: String
        var containerName: String
        var image: String
        var labels: [String: String]
        var ownerKind: String
        var ownerName: String
        var runningAtSensorStart: Bool

        init(
            runtime: String, containerID: String, podUID: String, podName: String, namespace: String,
            containerName: String, image: String, labels: [String: String], ownerKind: String, ownerName: String,
            runningAtSensorStart: Bool
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
            self.runningAtSensorStart = runningAtSensorStart
        }

        func copy() -> Storage {
            Storage(
                runtime: runtime, containerID: containerID, podUID: podUID, podName: podName, namespace: namespace,
                containerName: containerName, image: image, labels: labels, ownerKind: ownerKind,
                ownerName: ownerName, runningAtSensorStart: runningAtSensorStart)
        }
    }

    private var storage: Storage

    @inline(__always)
    private mutating func unique() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    /// `containerd`, `cri-o`, `docker`, `podman` or another runtime name.
    public var runtime: String {
        get { storage.runtime }
        set { unique().runtime = newValue }
    }
    public var containerID: String {
        get { storage.containerID }
        set { unique().containerID = newValue }
    }
    public var podUID: String {
        get { storage.podUID }
        set { unique().podUID = newValue }
    }
    public var podName: String {
        get { storage.podName }
        set { unique().podName = newValue }
    }
    public var namespace: String {
        get { storage.namespace }
        set { unique().namespace = newValue }
    }
    public var containerName: String {
        get { storage.containerName }
        set { unique().containerName = newValue }
    }
    public var image: String {
        get { storage.image }
        set { unique().image = newValue }
    }
    /// The pod's labels, from the Kubernetes API; empty when no API is configured or the pod is not known (yet).
    public var labels: [String: String] {
        get { storage.labels }
        set { unique().labels = newValue }
    }
    /// The pod's controlling owner with ReplicaSets and Jobs followed up to their Deployment or CronJob
    /// (`Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`, ...); empty when unknown or the pod is bare.
    public var ownerKind: String {
        get { storage.ownerKind }
        set { unique().ownerKind = newValue }
    }
    public var ownerName: String {
        get { storage.ownerName }
        set { unique().ownerName = newValue }
    }
    /// True when the container was already running when the sensor started, so what it did before is missing;
    /// the collector then learns its profile as `partial`.
    public var runningAtSensorStart: Bool {
        get { storage.runningAtSensorStart }
        set { unique().runningAtSensorStart = newValue }
    }

    public init(
        runtime: String = "", containerID: String, podUID: String = "", podName: String = "", namespace: String = "",
        containerName: String = "", image: String = "", labels: [String: String] = [:], ownerKind: String = "",
        ownerName: String = "", runningAtSensorStart: Bool = false
    ) {
        storage = Storage(
            runtime: runtime, containerID: containerID, podUID: podUID, podName: podName, namespace: namespace,
            containerName: containerName, image: image, labels: labels, ownerKind: ownerKind, ownerName: ownerName,
            runningAtSensorStart: runningAtSensorStart)
    }

    /// True when both values share one storage (so they are equal without comparing fields). Copies of one
    /// value share it until one of them is changed; the wire encoder uses this to find an event's container in
    /// the batch's table without comparing strings.
    @inline(__always)
    public func sharesStorage(with other: ContainerRef) -> Bool { storage === other.storage }

    /// An identity for the shared storage, valid while this value (or a copy) is alive: equal identities mean
    /// equal values.
    @inline(__always)
    public var storageIdentity: ObjectIdentifier { ObjectIdentifier(storage) }

    public static func == (lhs: ContainerRef, rhs: ContainerRef) -> Bool {
        if lhs.storage === rhs.storage { return true }
        let a = lhs.storage
        let b = rhs.storage
        return a.containerID == b.containerID && a.runtime == b.runtime && a.podUID == b.podUID
            && a.podName == b.podName && a.namespace == b.namespace && a.containerName == b.containerName
            && a.image == b.image && a.labels == b.labels && a.ownerKind == b.ownerKind && a.ownerName == b.ownerName
            && a.runningAtSensorStart == b.runningAtSensorStart
    }

    public func hash(into hasher: inout Hasher) {
        let s = storage
        hasher.combine(s.runtime)
        hasher.combine(s.containerID)
        hasher.combine(s.podUID)
        hasher.combine(s.podName)
        hasher.combine(s.namespace)
        hasher.combine(s.containerName)
        hasher.combine(s.image)
        hasher.combine(s.labels)
        hasher.combine(s.ownerKind)
        hasher.combine(s.ownerName)
        hasher.combine(s.runningAtSensorStart)
    }

    private enum CodingKeys: String, CodingKey {
        case runtime, containerID, podUID, podName, namespace, containerName, image, labels, ownerKind, ownerName
        case runningAtSensorStart
    }

    // Replay files written before labels, owners and runningAtSensorStart existed (or by hand) leave them out.
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
            ownerName: try values.decodeIfPresent(String.self, forKey: .ownerName) ?? "",
            runningAtSensorStart: try values.decodeIfPresent(Bool.self, forKey: .runningAtSensorStart) ?? false)
    }

    // Written field by field in declaration order, as the synthesised encoder of the former plain struct did.
    public func encode(to encoder: any Encoder) throws {
        let s = storage
        var values = encoder.container(keyedBy: CodingKeys.self)
        try values.encode(s.runtime, forKey: .runtime)
        try values.encode(s.containerID, forKey: .containerID)
        try values.encode(s.podUID, forKey: .podUID)
        try values.encode(s.podName, forKey: .podName)
        try values.encode(s.namespace, forKey: .namespace)
        try values.encode(s.containerName, forKey: .containerName)
        try values.encode(s.image, forKey: .image)
        try values.encode(s.labels, forKey: .labels)
        try values.encode(s.ownerKind, forKey: .ownerKind)
        try values.encode(s.ownerName, forKey: .ownerName)
        try values.encode(s.runningAtSensorStart, forKey: .runningAtSensorStart)
    }
}

// `print`, `dump` and test failure messages show the eleven fields, as for a plain struct, not the storage object.
extension ContainerRef: CustomReflectable {
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "runtime": runtime, "containerID": containerID, "podUID": podUID, "podName": podName,
                "namespace": namespace, "containerName": containerName, "image": image, "labels": labels,
                "ownerKind": ownerKind, "ownerName": ownerName, "runningAtSensorStart": runningAtSensorStart,
            ], displayStyle: .struct)
    }
}
