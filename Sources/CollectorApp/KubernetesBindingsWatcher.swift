import Basics
import EventModel
import Foundation
import KubernetesAPI
import Logging
import ServiceLifecycle

/// Follows the `RuntimeRuleAlertBinding` custom resources in the Kubernetes API and applies them through the
/// `BindingsController`, next to the bindings applied with patrolctl and the default ones, as a Service.
///
/// Two resources of group `kubescape.io`, version `v1`, each listed then watched (`KubernetesListWatch`):
/// `runtimerulealertbindings` (kind `RuntimeRuleAlertBinding`, cluster-scoped) and
/// `namespacedruntimerulealertbindings` (kind `NamespacedRuntimeRuleAlertBinding`, namespaced, watched across all
/// namespaces). A change in the API changes which rules fire at the next group of batches, without a restart;
/// deleting a custom resource removes only its binding. Each object is checked as `patrolctl apply` checks a
/// document (the same rule set): an invalid one is rejected with a log line naming it and its problems, and
/// counted in `patrol_bindings_cluster_rejected_total`; the others apply.
public final class KubernetesBindingsWatcher: Service, Sendable {
    public static let group = "kubescape.io"
    public static let version = "v1"
    /// Plural resource names; the CRDs in deploy/ must use these.
    public static let clusterResource = "runtimerulealertbindings"
    public static let namespacedResource = "namespacedruntimerulealertbindings"

    private let client: KubernetesAPIClient
    private let watches: [KubernetesListWatch<KubernetesObject>]
    private let logger: Logger

    init(configuration: KubernetesAPIConfiguration, bindings: BindingsController, logger: Logger) {
        var logger = logger
        logger[metadataKey: "kube_api"] = "\(configuration.baseURL)"
        self.logger = logger
        // One request per open watch, and one spare for a list while the other watch is open.
        let client = KubernetesAPIClient(
            configuration: configuration, concurrentRequests: 3,
            userAgent: "patrol-collector/\(PatrolVersion.current)", logger: logger)
        self.client = client
        watches = [Self.clusterResource, Self.namespacedResource].map { resource in
            KubernetesListWatch(
                client: client, resource: "/apis/\(Self.group)/\(Self.version)/\(resource)", name: resource,
                logger: logger,
                onList: { objects in
                    bindings.replaceClusterBindings(
                        resource: resource, objects.map { ($0.key, Self.bindingDocument($0)) })
                },
                onEvent: { type, object in
                    switch type {
                    case .added, .modified:
                        bindings.putClusterBinding(
                            resource: resource, key: object.key, yaml: Self.bindingDocument(object))
                    case .deleted:
                        bindings.removeClusterBinding(resource: resource, key: object.key)
                    }
                })
        }
    }

    /// Counters of both list-watches, by resource.
    public var stats: [String: KubernetesListWatchStats] {
        Dictionary(uniqueKeysWithValues: watches.map { ($0.name, $0.stats) })
    }

    public func run() async throws {
        logger.info(
            "watching rule bindings in the Kubernetes API",
            metadata: ["resources": "\(watches.map(\.name))", "group": "\(Self.group)/\(Self.version)"])
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for watch in self.watches { group.addTask { await watch.run() } }
            }
        }
        client.shutdown()
    }

    /// The object as a binding document the `Bindings` reader takes: JSON is YAML, and the namespaced kind is the
    /// same binding with a namespace. Server-filled metadata (uid, resourceVersion, managedFields) is ignored by
    /// the reader; `status` is dropped.
    static func bindingDocument(_ object: KubernetesObject) -> String {
        guard var members = object.json.objectValue else { return object.json.jsonText }
        if object.kind == "NamespacedRuntimeRuleAlertBinding" { members["kind"] = .string("RuntimeRuleAlertBinding") }
        members["status"] = nil
        return JSONValue.object(members).jsonText
    }
}
