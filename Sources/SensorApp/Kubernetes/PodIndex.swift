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
    /// Running containers' IDs (without the `containerd://` prefix) → the image's digest (`sha256:…`), from
    /// `status.containerStatuses`: the image actually running, which a tag such as `nginx:1.27` does not pin.
    public var imageDigests: [String: String]

    public init(
        uid: String, namespace: String, name: String, labels: [String: String] = [:], ownerKind: String = "",
        ownerName: String = "", imageDigests: [String: String] = [:]
    ) {
        self.uid = uid
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.ownerKind = ownerKind
        self.ownerName = ownerName
        self.imageDigests = imageDigests
    }
}

/// Pod UID → `PodMetadata` for the pods on this node: filled by a list, then kept current by the watch's events.
///
/// Read once per event by the container resolver (a lock and a dictionary lookup), written by the
/// `KubernetesPodWatcher` as the API reports changes. A failed list or watch leaves the contents as they were:
/// labels a little stale beat none, and a deleted pod's UID never comes back, so an entry kept too long cannot be
/// lent to another pod.
public final class PodIndex: Sendable {
    private struct State {
        var pods: [String: PodMetadata] = [:]
        var lists = 0
    }
    private let state = Mutex(State())

    public init() {}

    /// The pod with this UID, or nil.
    public func pod(uid: String) -> PodMetadata? { state.withLock { $0.pods[uid] } }

    /// Replaces the contents with a fresh list.
    public func replace(with pods: [PodMetadata]) {
        var map: [String: PodMetadata] = [:]
        map.reserveCapacity(pods.count)
        for pod in pods where !pod.uid.isEmpty { map[pod.uid] = pod }
        state.withLock { state in
            state.pods = map
            state.lists += 1
        }
    }

    /// Adds or replaces one pod (a watch's ADDED or MODIFIED).
    public func upsert(_ pod: PodMetadata) {
        guard !pod.uid.isEmpty else { return }
        state.withLock { $0.pods[pod.uid] = pod }
    }

    /// Removes one pod (a watch's DELETED).
    public func remove(uid: String) { state.withLock { _ = $0.pods.removeValue(forKey: uid) } }

    public var count: Int { state.withLock { $0.pods.count } }

    /// Successful lists applied so far (0: nothing known yet).
    public var generation: Int { state.withLock { $0.lists } }
}
