import Basics
import Foundation
public import Logging
import Synchronization

/// A workload as Patrol names it: the kind and name of the object that controls a pod, after following a
/// ReplicaSet to its Deployment and a Job to its CronJob.
public struct KubernetesOwner: Sendable, Hashable {
    public var kind: String
    public var name: String

    public init(kind: String, name: String) {
        self.kind = kind
        self.name = name
    }
}

/// Counters of a `KubernetesOwnerResolver`.
public struct KubernetesOwnerResolverStats: Sendable, Hashable {
    /// ReplicaSet and Job GETs sent (cache misses).
    public var lookups = 0
    /// Of those, the ones that failed (no answer, 403 without RBAC for them, 404, ...).
    public var lookupFailures = 0
    /// Errors by reason (`KubernetesAPIError.Code`).
    public var errors: [String: Int] = [:]
    /// What failed last, for logs and tests.
    public var lastError: String?
    /// Intermediate objects whose owner is cached now.
    public var cached = 0
}

/// Follows a pod's controller one level where it is an intermediate object: a ReplicaSet (`apps`) to the
/// Deployment that controls it, a Job (`batch`) to its CronJob. Each answer is a GET of that object, cached by
/// namespace, kind and name, because a ReplicaSet's controller never changes and thousands of events name the same
/// one. An object without a controller (a ReplicaSet made by hand) is the workload itself, and is cached as such.
///
/// Used two ways:
/// - the sensor's pod watcher `resolve`s as it applies a pod (a GET on a miss, at most once per list per object)
///   and `prune`s the cache at each list to what its pods still refer to;
/// - the collector's ingest loop only reads the cache (`cached`), never waiting for the API, and `request`s a miss;
///   `runRequests` fetches those one at a time in the background, and a failure is asked again only after
///   `retryAfter`, so a collector without RBAC for ReplicaSets sends one GET per object per interval, not one per
///   event.
///
/// Failed lookups are never cached: the caller keeps the ReplicaSet or Job as the owner meanwhile.
public final class KubernetesOwnerResolver: Sendable {
    /// An intermediate object, by namespace, kind and name.
    public struct Key: Sendable, Hashable, CustomStringConvertible {
        public var namespace: String
        public var kind: String
        public var name: String

        public init(namespace: String, kind: String, name: String) {
            self.namespace = namespace
            self.kind = kind
            self.name = name
        }

        public var description: String { "\(namespace)/\(kind)/\(name)" }
    }

    /// The key to look up for a controller reference, or nil when the controller is the workload itself (a
    /// Deployment, StatefulSet, DaemonSet, CronJob, or a ReplicaSet or Job of another API group). `group` nil
    /// (an event's owner, which carries no API version) takes the usual group of the kind.
    public static func key(namespace: String, kind: String, name: String, group: String? = nil) -> Key? {
        guard !name.isEmpty else { return nil }
        switch (kind, group) {
        case ("ReplicaSet", "apps"), ("ReplicaSet", nil), ("Job", "batch"), ("Job", nil):
            return Key(namespace: namespace, kind: kind, name: name)
        default: return nil
        }
    }

    public let client: KubernetesAPIClient
    /// How long a failed lookup is not asked again through `request`.
    public let retryAfter: Duration
    /// Cached owners beyond this empty the cache (the collector sees every node's objects; the sensor prunes).
    public let capacity: Int
    private let logger: Logger
    /// A lookup fails once per object per list or retry interval (for example without RBAC): a few lines a minute
    /// say so, the rest are counted.
    private let logThrottle = LogThrottle(limit: 3, per: .seconds(60))
    private let requests: AsyncStream<Key>
    private let requestContinuation: AsyncStream<Key>.Continuation

    private struct State {
        var owners: [Key: KubernetesOwner] = [:]
        /// Requested and not yet fetched.
        var pending = Set<Key>()
        /// Failed lookups and when, so `request` does not ask again before `retryAfter`.
        var failedAt: [Key: ContinuousClock.Instant] = [:]
        var stats = KubernetesOwnerResolverStats()
    }
    private let state = Mutex(State())

    public init(
        client: KubernetesAPIClient, retryAfter: Duration = .seconds(30), capacity: Int = 16384, logger: Logger
    ) {
        self.client = client
        self.retryAfter = retryAfter
        self.capacity = max(1, capacity)
        self.logger = logger
        // Bounded so a flood of distinct misses cannot grow memory while the API is slow; dropped ones are asked
        // again by a later event.
        (requests, requestContinuation) = AsyncStream.makeStream(of: Key.self, bufferingPolicy: .bufferingNewest(1024))
    }

    public var stats: KubernetesOwnerResolverStats {
        state.withLock { state in
            var stats = state.stats
            stats.cached = state.owners.count
            return stats
        }
    }

    /// The cached owner of `key`; nil when it was never fetched (or failed). Never waits for the API.
    public func cached(_ key: Key) -> KubernetesOwner? { state.withLock { $0.owners[key] } }

    /// The owner of `key`: from the cache, else fetched now. A failure is logged (throttled) and counted, and gives
    /// the object itself.
    public func resolve(_ key: Key) async -> KubernetesOwner {
        if let cached = cached(key) { return cached }
        switch await fetch(key) {
        case .success(let owner): return owner
        case .failure(let failure):
            if let suppressed = logThrottle.admit() {
                logger.warning(
                    "could not look up a pod's owner; using the \(key.kind) itself",
                    metadata: [
                        "what": "\(failure.what)", "url": "\(failure.url)", "error": "\(failure.message)",
                        "suppressed": "\(suppressed)",
                    ])
            }
            return KubernetesOwner(kind: key.kind, name: key.name)
        }
    }

    /// GETs the object, caches its controller and returns it; a failure is counted and not cached.
    public func fetch(_ key: Key) async -> Result<KubernetesOwner, KubernetesAPIError> {
        let path: String
        switch key.kind {
        case "ReplicaSet": path = "/apis/apps/v1/namespaces/\(key.namespace)/replicasets/\(key.name)"
        default: path = "/apis/batch/v1/namespaces/\(key.namespace)/jobs/\(key.name)"
        }
        state.withLock { $0.stats.lookups += 1 }
        switch await client.get(ObjectJSON.self, path: path, what: "get \(key.kind) \(key.namespace)/\(key.name)") {
        case .success(let object):
            let owner =
                object.metadata.controllerReference.map { KubernetesOwner(kind: $0.kind, name: $0.name) }
                ?? KubernetesOwner(kind: key.kind, name: key.name)
            state.withLock { state in
                if state.owners.count >= capacity { state.owners.removeAll(keepingCapacity: true) }
                state.owners[key] = owner
                state.failedAt[key] = nil
            }
            return .success(owner)
        case .failure(let failure):
            state.withLock { state in
                state.stats.lookupFailures += 1
                state.stats.errors[failure.code.rawValue, default: 0] += 1
                state.stats.lastError = failure.message
                if state.failedAt.count >= capacity { state.failedAt.removeAll(keepingCapacity: true) }
                state.failedAt[key] = .now
            }
            return .failure(failure)
        }
    }

    /// Forgets owners of objects not in `keys` (the sensor: ReplicaSets and Jobs no listed pod refers to any more).
    public func prune(keeping keys: Set<Key>) {
        state.withLock { state in state.owners = state.owners.filter { keys.contains($0.key) } }
    }

    /// Asks for `key` to be fetched by `runRequests`, unless it is cached, already asked for, or failed less than
    /// `retryAfter` ago. Returns whether it was queued. Never waits.
    @discardableResult
    public func request(_ key: Key) -> Bool {
        let queued = state.withLock { state -> Bool in
            guard state.owners[key] == nil, !state.pending.contains(key) else { return false }
            if let failed = state.failedAt[key], ContinuousClock.now - failed < retryAfter { return false }
            if state.pending.count >= capacity { return false }
            state.pending.insert(key)
            return true
        }
        guard queued else { return false }
        if case .dropped(let dropped) = requestContinuation.yield(key) {
            state.withLock { _ = $0.pending.remove(dropped) }
        }
        return true
    }

    /// Fetches requested keys one at a time until the task is cancelled; `onResult` sees each outcome (for
    /// metrics and logs).
    public func runRequests(
        onResult: @Sendable (Key, Result<KubernetesOwner, KubernetesAPIError>) -> Void = { _, _ in }
    ) async {
        await withTaskCancellationHandler {
            for await key in requests {
                if Task.isCancelled { break }
                let result = await fetch(key)
                state.withLock { _ = $0.pending.remove(key) }
                if case .failure(let failure) = result, !Task.isCancelled, let suppressed = logThrottle.admit() {
                    logger.warning(
                        "could not look up an event's owner; events keep the \(key.kind) until it is asked again",
                        metadata: [
                            "what": "\(failure.what)", "url": "\(failure.url)", "error": "\(failure.message)",
                            "retry_after": "\(retryAfter)", "suppressed": "\(suppressed)",
                        ])
                }
                onResult(key, result)
            }
        } onCancel: { [requestContinuation] in
            requestContinuation.finish()
        }
    }
}

// MARK: - The few parts of API objects the owner lookup reads

struct OwnerReferenceJSON: Decodable, Sendable {
    var apiVersion: String?
    var kind: String
    var name: String
    var controller: Bool?
}

struct OwnedMetaJSON: Decodable, Sendable {
    var ownerReferences: [OwnerReferenceJSON]?

    /// The managing controller (`controller: true`); at most one per object.
    var controllerReference: OwnerReferenceJSON? { ownerReferences?.first { $0.controller == true } }
}

struct ObjectJSON: Decodable, Sendable {
    var metadata: OwnedMetaJSON
}
