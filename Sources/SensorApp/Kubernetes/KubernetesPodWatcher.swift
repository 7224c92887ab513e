import Basics
import Foundation
public import KubernetesAPI
import Logging
import ServiceLifecycle
import Synchronization

/// Counters of a `KubernetesPodWatcher`, for the sensor's status, metrics and tests.
public struct KubernetesAPIStats: Sendable, Hashable {
    /// Pod lists applied to the index (the first, the safety-net re-lists, and those after a 410).
    public var lists = 0
    /// Pod lists that failed (no answer, 401/403/5xx, bad JSON); the index kept its previous contents.
    public var listFailures = 0
    /// Watches opened, and those that failed (retried from the last resource version after a back-off).
    public var watches = 0
    public var watchFailures = 0
    /// ADDED, MODIFIED and DELETED pod events applied to the index.
    public var events = 0
    /// Watches that expired with 410 Gone, each followed by a list.
    public var expired = 0
    /// ReplicaSet and Job GETs sent to find their Deployment or CronJob (cache misses).
    public var ownerLookups = 0
    /// Of those, the ones that failed; the pod then names the ReplicaSet or Job itself, and it is asked again later.
    public var ownerLookupFailures = 0
    /// Pods in the index now.
    public var pods = 0
    /// Errors by reason (`transport`, `unauthorized`, `forbidden`, `not_found`, `gone`, `http_4xx`, `http_5xx`,
    /// `bad_json`, `token`).
    public var errors: [String: Int] = [:]
    /// What failed last, for logs and tests; nil once a list or watch succeeds again.
    public var lastError: String?
}

/// Keeps a `PodIndex` of the pods on this node current from the Kubernetes API, as a Service.
///
/// It lists this node's pods (`GET /api/v1/pods?fieldSelector=spec.nodeName=<node>`), then watches them from the
/// list's resource version and applies each ADDED, MODIFIED and DELETED as it streams in (`KubernetesListWatch`
/// does the list, the watch, re-watching, 410 Gone and back-off). A pod is known as soon as the scheduler binds it
/// to the node, before its containers start, so events find their labels from the first one. A full re-list every
/// `listInterval` (ten minutes by default) is only a safety net.
///
/// A pod's controller is followed one level where it is an intermediate object: a ReplicaSet's controller (a
/// Deployment) and a Job's (a CronJob) come from a GET of that object, cached by namespace and name and pruned at
/// each list to those a pod still refers to. Every API error is logged with the URL and what failed, counted, and
/// then ignored: capture never waits for the API, and events keep their annotations-only identity meanwhile.
public final class KubernetesPodWatcher: Service, Sendable {
    public let configuration: KubernetesAPIConfiguration
    public let index: PodIndex
    private let client: KubernetesAPIClient
    private let applier: PodApplier
    private let listWatch: KubernetesListWatch<PodJSON>
    private let logger: Logger

    public init(configuration: KubernetesAPIConfiguration, index: PodIndex, logger: Logger) {
        self.configuration = configuration
        self.index = index
        var logger = logger
        logger[metadataKey: "kube_api"] = "\(configuration.baseURL)"
        self.logger = logger
        // Two requests at once: the watch holds one for as long as it is open, owner GETs use the other.
        client = KubernetesAPIClient(
            configuration: configuration, concurrentRequests: 2, userAgent: "patrol-sensor/\(PatrolVersion.current)",
            logger: logger)
        let applier = PodApplier(client: client, index: index, logger: logger)
        self.applier = applier
        let node = KubernetesAPIClient.queryValue("spec.nodeName=\(configuration.nodeName)")
        listWatch = KubernetesListWatch(
            client: client, resource: "/api/v1/pods", query: "fieldSelector=\(node)", name: "pods", logger: logger,
            onList: { pods in await applier.replace(pods) },
            onEvent: { type, pod in await applier.apply(type, pod) })
    }

    public var stats: KubernetesAPIStats {
        let watch = listWatch.stats
        var stats = applier.stats
        stats.lists = watch.lists
        stats.listFailures = watch.listFailures
        stats.watches = watch.watches
        stats.watchFailures = watch.watchFailures
        stats.events = watch.events
        stats.expired = watch.expired
        stats.errors.merge(watch.errors, uniquingKeysWith: +)
        stats.lastError = watch.lastError ?? stats.lastError
        stats.pods = index.count
        return stats
    }

    public func run() async throws {
        logger.info(
            "watching this node's pods from the Kubernetes API",
            metadata: [
                "node": "\(configuration.nodeName)", "relist_interval": "\(configuration.listInterval)",
                "token_file": "\(configuration.tokenFile ?? "-")", "ca_file": "\(configuration.caFile ?? "-")",
            ])
        await cancelWhenGracefulShutdown { await self.listWatch.run() }
        client.shutdown()
    }

    /// Lists the node's pods once and replaces the index (no watch). Returns whether the list succeeded; a failure
    /// is logged and counted and leaves the index as it was.
    @discardableResult
    public func refresh() async -> Bool { await listWatch.list() != nil }
}

/// Turns listed and watched pods into `PodMetadata`, resolving owners; the list-watch calls it one at a time.
private final class PodApplier: Sendable {
    private struct State {
        var firstList = true
    }
    private let state = Mutex(State())
    private let client: KubernetesAPIClient
    private let index: PodIndex
    private let logger: Logger
    /// ReplicaSet → Deployment and Job → CronJob, with its cache; shared with the collector (`KubernetesAPI`).
    private let owners: KubernetesOwnerResolver

    init(client: KubernetesAPIClient, index: PodIndex, logger: Logger) {
        self.client = client
        self.index = index
        self.logger = logger
        owners = KubernetesOwnerResolver(client: client, logger: logger)
    }

    var stats: KubernetesAPIStats {
        let resolver = owners.stats
        var stats = KubernetesAPIStats()
        stats.ownerLookups = resolver.lookups
        stats.ownerLookupFailures = resolver.lookupFailures
        stats.errors = resolver.errors
        stats.lastError = resolver.lastError
        return stats
    }

    func replace(_ items: [PodJSON]) async {
        var pods: [PodMetadata] = []
        pods.reserveCapacity(items.count)
        var used = Set<KubernetesOwnerResolver.Key>()
        for item in items {
            if let pod = await metadata(item, used: &used) { pods.append(pod) }
        }
        index.replace(with: pods)
        // Forget ReplicaSets and Jobs no listed pod refers to any more (rolled out, finished).
        owners.prune(keeping: used)
        let first = state.withLock { state -> Bool in
            defer { state.firstList = false }
            return state.firstList
        }
        if first && pods.isEmpty {
            // A node runs at least its DaemonSets' pods (this sensor's own, in a cluster): none usually means the
            // node name is not the one Kubernetes uses.
            logger.warning(
                "the Kubernetes API lists no pods on this node; is --node the Kubernetes node name?",
                metadata: ["node": "\(client.configuration.nodeName)"])
        }
    }

    func apply(_ type: KubernetesWatchEventType, _ item: PodJSON) async {
        switch type {
        case .deleted:
            if let uid = item.metadata.uid { index.remove(uid: uid) }
        case .added, .modified:
            var used = Set<KubernetesOwnerResolver.Key>()
            if let pod = await metadata(item, used: &used) { index.upsert(pod) }
        }
    }

    private func metadata(_ item: PodJSON, used: inout Set<KubernetesOwnerResolver.Key>) async -> PodMetadata? {
        let meta = item.metadata
        guard let uid = meta.uid, !uid.isEmpty else { return nil }
        let namespace = meta.namespace ?? ""
        let owner = await controller(of: meta, namespace: namespace, used: &used)
        var digests: [String: String] = [:]
        for status in item.status?.containerStatuses ?? [] {
            guard let id = status.containerID, let image = status.imageID else { continue }
            // `containerd://<id>` → `<id>`; `docker.io/library/nginx@sha256:…` → `sha256:…`.
            let bareID = id.range(of: "://").map { String(id[$0.upperBound...]) } ?? id
            let digest = image.range(of: "@").map { String(image[$0.upperBound...]) } ?? image
            if !bareID.isEmpty && !digest.isEmpty { digests[bareID] = digest }
        }
        return PodMetadata(
            uid: uid, namespace: namespace, name: meta.name ?? "", labels: meta.labels ?? [:],
            ownerKind: owner.kind, ownerName: owner.name, imageDigests: digests)
    }

    /// The pod's workload: its controller, with a ReplicaSet replaced by its Deployment and a Job by its CronJob.
    /// A failed lookup names the ReplicaSet or Job itself, and is asked again at the pod's next event or list.
    private func controller(
        of meta: ObjectMetaJSON, namespace: String, used: inout Set<KubernetesOwnerResolver.Key>
    ) async -> KubernetesOwner {
        guard let reference = meta.controllerReference else { return KubernetesOwner(kind: "", name: "") }
        guard
            let key = KubernetesOwnerResolver.key(
                namespace: namespace, kind: reference.kind, name: reference.name, group: reference.group)
        else { return KubernetesOwner(kind: reference.kind, name: reference.name) }
        used.insert(key)
        return await owners.resolve(key)
    }
}

// MARK: - The few parts of the API objects the sensor reads

struct OwnerReferenceJSON: Decodable {
    var apiVersion: String?
    var kind: String
    var name: String
    var controller: Bool?

    /// The API group: `apps` for `apps/v1`, "" for the core group (`v1`).
    var group: String {
        guard let apiVersion, let slash = apiVersion.firstIndex(of: "/") else { return "" }
        return String(apiVersion[..<slash])
    }
}

struct ObjectMetaJSON: Decodable {
    var uid: String?
    var name: String?
    var namespace: String?
    var labels: [String: String]?
    var ownerReferences: [OwnerReferenceJSON]?

    /// The managing controller (`controller: true`); at most one per object.
    var controllerReference: OwnerReferenceJSON? { ownerReferences?.first { $0.controller == true } }
}

struct ContainerStatusJSON: Decodable, Sendable {
    var containerID: String?
    var imageID: String?
}

struct PodStatusJSON: Decodable, Sendable {
    var containerStatuses: [ContainerStatusJSON]?
}

struct PodJSON: Decodable, Sendable {
    var metadata: ObjectMetaJSON
    var status: PodStatusJSON?
}

extension OwnerReferenceJSON: Sendable {}
extension ObjectMetaJSON: Sendable {}
