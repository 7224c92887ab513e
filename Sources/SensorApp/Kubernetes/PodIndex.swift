import Synchronization

/// What the Kubernetes API says about one pod, as far as events need it.
public struct PodMetadata: Sendable, Hashable {
    public var uid: String
    public var namespace: String
    public var name: String
    public var labels: [String: String]
    /// The workload that controls the pod (ReplicaSet → Deployment and Job → CronJob followed); empty for a bare
    /// pod.
    public var ownerKind: String
    public var ownerName: String

    public init(
        uid: String, namespace: String, name: String, labels: [String: String] = [:], ownerKind: String = "",
        ownerName: String = ""
    ) {
        self.uid = uid
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.ownerKind = ownerKind
        self.ownerName = ownerName
    }
}

/// Pod UID → `PodMetadata` for the pods on this node, replaced whole by each successful list.
///
/// Read once per event by the container resolver (a lock and a dictionary lookup), written every few seconds by
/// the `KubernetesPodWatcher`. A failed list leaves the previous contents: labels a little stale beat none, and a
/// deleted pod's UID never comes back, so an entry kept too long cannot be lent to another pod.
public final class PodIndex: Sendable {
    private struct State {
        var pods: [String: PodMetadata] = [:]
        /// Set when a lookup missed a UID not missed before; the watcher then lists early.
        var missed = false
        /// UIDs missed since the last list.
        var pending: Set<String> = []
        /// UIDs still missing after a list (static pods, whose mirror pod has another UID; containers not made by
        /// a kubelet). They do not bring lists forward again, or one such container would cause a list every
        /// couple of seconds forever.
        var absent: Set<String> = []
        var lists = 0
    }
    private let state = Mutex(State())
    private static let maxAbsent = 4096

    public init() {}

    /// The pod with this UID, or nil (the watcher is then asked to list again soon, once per UID).
    public func pod(uid: String) -> PodMetadata? {
        state.withLock { state in
            if let pod = state.pods[uid] { return pod }
            if !state.absent.contains(uid), state.pending.insert(uid).inserted { state.missed = true }
            return nil
        }
    }

    /// Replaces the contents with a fresh list.
    public func replace(with pods: [PodMetadata]) {
        var map: [String: PodMetadata] = [:]
        map.reserveCapacity(pods.count)
        for pod in pods where !pod.uid.isEmpty { map[pod.uid] = pod }
        state.withLock { state in
            state.absent.formUnion(state.pending)
            state.absent = state.absent.filter { map[$0] == nil }
            if state.absent.count > Self.maxAbsent { state.absent.removeAll() }
            state.pending.removeAll()
            state.pods = map
            state.lists += 1
        }
    }

    /// Whether a lookup missed a new UID since the last call; clears the mark.
    func takeMiss() -> Bool {
        state.withLock { state in
            defer { state.missed = false }
            return state.missed
        }
    }

    public var count: Int { state.withLock { $0.pods.count } }

    /// Successful lists applied so far (0: nothing known yet).
    public var generation: Int { state.withLock { $0.lists } }
}

