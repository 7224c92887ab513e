import Basics
import EventModel
import KubernetesAPI
import Logging
import Metrics
import ServiceLifecycle

/// Names the Deployment (or CronJob) as the owner of events whose sensor could only name the ReplicaSet (or Job):
/// a sensor without RBAC for them, or one without the API. `kubernetes.owners` (docs/kubernetes.md).
///
/// The ingest loop calls `resolve` for every event before profiles and rules see it; that only reads the
/// `KubernetesOwnerResolver`'s cache. A miss leaves the event as it is and asks for the object to be fetched in the
/// background by this Service, so later events of the same workload get its Deployment. Ingest never waits for the
/// API.
public final class KubernetesOwners: Service, Sendable {
    public let resolver: KubernetesOwnerResolver
    private let logger: Logger
    private let resolved = Counter(label: "patrol_kubernetes_owners_total", dimensions: [("result", "resolved")])
    private let missed = Counter(label: "patrol_kubernetes_owners_total", dimensions: [("result", "miss")])

    init(configuration: KubernetesAPIConfiguration, logger: Logger) {
        var logger = logger
        logger[metadataKey: "kube_api"] = "\(configuration.baseURL)"
        self.logger = logger
        // One GET at a time: misses are fetched one after another by `run`.
        let client = KubernetesAPIClient(
            configuration: configuration, concurrentRequests: 1,
            userAgent: "patrol-collector/\(PatrolVersion.current)", logger: logger)
        resolver = KubernetesOwnerResolver(client: client, retryAfter: configuration.maxRetryDelay, logger: logger)
    }

    /// Replaces a ReplicaSet or Job owner by its cached controller. Returns whether the event changed.
    @discardableResult
    func resolve(_ event: inout Event) -> Bool {
        guard let container = event.container,
            let key = KubernetesOwnerResolver.key(
                namespace: container.namespace, kind: container.ownerKind, name: container.ownerName)
        else { return false }
        guard let owner = resolver.cached(key) else {
            missed.increment()
            resolver.request(key)
            return false
        }
        resolved.increment()
        guard owner.kind != container.ownerKind || owner.name != container.ownerName else { return false }
        var updated = container
        updated.ownerKind = owner.kind
        updated.ownerName = owner.name
        event.container = updated
        return true
    }

    public func run() async throws {
        logger.info("resolving events' ReplicaSet and Job owners from the Kubernetes API")
        await cancelWhenGracefulShutdown {
            await self.resolver.runRequests { _, result in
                let outcome: String
                switch result {
                case .success: outcome = "ok"
                case .failure(let error): outcome = error.code.rawValue
                }
                Counter(label: "patrol_kubernetes_owner_lookups_total", dimensions: [("result", outcome)]).increment()
            }
        }
        resolver.client.shutdown()
    }
}
