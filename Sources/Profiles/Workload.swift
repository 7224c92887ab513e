import EventModel

/// The workload a profile belongs to: pods of one Deployment, StatefulSet, DaemonSet or CronJob share it.
///
/// The sensor already follows ReplicaSet to Deployment and Job to CronJob (`ContainerRef.ownerKind`), and the
/// collector does it for events whose sensor could not (`kubernetes.owners`), so a rolling update or the next
/// scheduled run keeps the profile. A pod without an owner (or whose owner is not
/// known because no Kubernetes API is configured) is its own workload, of kind `Pod`.
public struct WorkloadKey: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var namespace: String
    public var kind: String
    public var name: String

    public init(namespace: String, kind: String, name: String) {
        self.namespace = namespace
        self.kind = kind
        self.name = name
    }

    /// The workload of a container; nil for host processes and containers that belong to no pod.
    public init?(container: ContainerRef) {
        guard !container.namespace.isEmpty else { return nil }
        if !container.ownerKind.isEmpty, !container.ownerName.isEmpty {
            self.init(namespace: container.namespace, kind: container.ownerKind, name: container.ownerName)
        } else if !container.podName.isEmpty {
            self.init(namespace: container.namespace, kind: "Pod", name: container.podName)
        } else {
            return nil
        }
    }

    /// `namespace/Kind/name`, the form `patrolctl profiles` takes and prints.
    public var description: String { "\(namespace)/\(kind)/\(name)" }

    /// Parses `namespace/Kind/name`.
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        self.init(namespace: String(parts[0]), kind: String(parts[1]), name: String(parts[2]))
    }

    /// The name KubeCop gave the workload's ApplicationProfile object: `<kind>-<name>`, lower case kind.
    public var objectName: String { "\(kind.lowercased())-\(name)" }

    public static func < (a: WorkloadKey, b: WorkloadKey) -> Bool {
        (a.namespace, a.kind, a.name) < (b.namespace, b.kind, b.name)
    }
}

/// One container of a workload: the unit a profile's behaviour is kept for.
public struct ProfileKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var workload: WorkloadKey
    public var container: String

    public init(workload: WorkloadKey, container: String) {
        self.workload = workload
        self.container = container
    }

    public var description: String { "\(workload) container \(container)" }

    public static func < (a: ProfileKey, b: ProfileKey) -> Bool {
        (a.workload, a.container) < (b.workload, b.container)
    }
}
