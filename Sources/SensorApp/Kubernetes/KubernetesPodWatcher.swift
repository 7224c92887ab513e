import Basics
import Foundation
import Logging
import OutboundHTTP
import ServiceLifecycle
import Synchronization

/// Counters of a `KubernetesPodWatcher`, for the sensor's status, metrics and tests.
public struct KubernetesAPIStats: Sendable, Hashable {
    /// Pod lists applied to the index.
    public var lists = 0
    /// Pod lists that failed (no answer, 401/403/5xx, bad JSON); the index kept its previous contents.
    public var listFailures = 0
    /// ReplicaSet and Job GETs sent to find their Deployment or CronJob (cache misses).
    public var ownerLookups = 0
    /// Of those, the ones that failed; the pod then names the ReplicaSet or Job itself, and it is asked again later.
    public var ownerLookupFailures = 0
    /// Pods in the index after the last successful list.
    public var pods = 0
    /// Errors by reason (`transport`, `unauthorized`, `forbidden`, `not_found`, `http_4xx`, `http_5xx`,
    /// `bad_json`, `token`).
    public var errors: [String: Int] = [:]
    /// What failed last, for logs and tests; nil once a list succeeds again.
    public var lastError: String?
}

/// Keeps a `PodIndex` of the pods on this node fresh from the Kubernetes API, as a Service.
///
/// It re-lists (`GET /api/v1/pods?fieldSelector=spec.nodeName=<node>&resourceVersion=0`) every `listInterval`
/// rather than watching: `OutboundHTTP` returns whole responses, not streams, and a node holds at most a few hundred
/// pods, so a list every 30 s is a few hundred kilobytes, served from the API server's cache
/// (`resourceVersion=0`). A pod that events name but the index lacks (a pod that just started) brings the next list
/// forward, at most once per `minimumListInterval`, so new pods get their labels within seconds rather than at the
/// next period.
///
/// A pod's controller is followed one level where it is an intermediate object: a ReplicaSet's controller (a
/// Deployment) and a Job's (a CronJob) come from a GET of that object, cached by namespace and name for as long as
/// a listed pod still refers to it. Every API error is logged with the URL and what failed, counted, and then
/// ignored: capture never waits for the API, and events keep their annotations-only identity meanwhile.
public final class KubernetesPodWatcher: Service, Sendable {
    public let configuration: KubernetesAPIConfiguration
    public let index: PodIndex
    private let client: HTTPClient
    private let logger: Logger

    private struct Owner: Sendable, Hashable {
        var kind: String
        var name: String
    }

    private struct State {
        var stats = KubernetesAPIStats()
        /// `namespace/Kind/name` of a ReplicaSet or Job → its controller (or itself when it has none).
        var owners: [String: Owner] = [:]
        /// Whether the last list failed, so a lasting outage logs one warning, not one per attempt.
        var failing = false
    }
    private let state = Mutex(State())
    /// Owner lookups fail once per ReplicaSet or Job per list (for example without RBAC for them): a few lines a
    /// minute say so, the rest are counted.
    private let ownerLogThrottle = LogThrottle(limit: 3, per: .seconds(60))

    public init(configuration: KubernetesAPIConfiguration, index: PodIndex, logger: Logger) {
        self.configuration = configuration
        self.index = index
        var logger = logger
        logger[metadataKey: "kube_api"] = "\(configuration.baseURL)"
        self.logger = logger
        // The HTTP client runs curl on its own thread, never on the cooperative pool; one request at a time is
        // plenty for a list every few seconds.
        client = HTTPClient(
            configuration: .init(
                maxConcurrentRequests: 1, defaultTimeout: configuration.requestTimeout,
                connectTimeout: min(configuration.requestTimeout, .seconds(5)),
                tls: TLSOptions(caFile: configuration.caFile), maxResponseBodySize: 64 << 20,
                userAgent: "patrol-sensor/\(PatrolVersion.current)"),
            logger: logger)
    }

    public var stats: KubernetesAPIStats {
        state.withLock { state in
            var stats = state.stats
            stats.pods = index.count
            return stats
        }
    }

    public func run() async throws {
        logger.info(
            "listing this node's pods from the Kubernetes API",
            metadata: [
                "node": "\(configuration.nodeName)", "interval": "\(configuration.listInterval)",
                "token_file": "\(configuration.tokenFile ?? "-")", "ca_file": "\(configuration.caFile ?? "-")",
            ])
        await cancelWhenGracefulShutdown { await self.loop() }
        client.shutdown()
    }

    private func loop() async {
        var lastList: ContinuousClock.Instant?
        // Checking at half the minimum interval lets an early list for a new pod start soon after it may; the
        // checks themselves are a clock read and a lock, no requests.
        let step = max(configuration.minimumListInterval / 2, .milliseconds(100))
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let due: Bool
            if let lastList {
                let since = now - lastList
                due =
                    since >= configuration.listInterval
                    || (since >= configuration.minimumListInterval && index.takeMiss())
            } else {
                due = true
            }
            if due {
                lastList = now
                await refresh()
            }
            try? await Task.sleep(for: step)
        }
    }

    /// Lists the node's pods once and replaces the index. Returns whether the list succeeded; a failure is logged
    /// and counted and leaves the index as it was.
    @discardableResult
    public func refresh() async -> Bool {
        let node = configuration.nodeName.addingPercentEncoding(withAllowedCharacters: Self.queryValueAllowed)
            ?? configuration.nodeName
        let url = "\(configuration.baseURL)/api/v1/pods?fieldSelector=spec.nodeName=\(node)&resourceVersion=0"
        let list: PodListJSON
        switch await fetch(PodListJSON.self, url: url, what: "list pods") {
        case .success(let value): list = value
        case .failure(let failure):
            record(failure, list: true)
            return false
        }
        var pods: [PodMetadata] = []
        pods.reserveCapacity(list.items.count)
        var usedOwners = Set<String>()
        for item in list.items {
            let meta = item.metadata
            guard let uid = meta.uid, !uid.isEmpty else { continue }
            let namespace = meta.namespace ?? ""
            let owner = await controller(of: meta, namespace: namespace, used: &usedOwners)
            pods.append(
                PodMetadata(
                    uid: uid, namespace: namespace, name: meta.name ?? "", labels: meta.labels ?? [:],
                    ownerKind: owner.kind, ownerName: owner.name))
        }
        index.replace(with: pods)
        let (recovered, first) = state.withLock { state -> (Bool, Bool) in
            state.stats.lists += 1
            state.stats.lastError = nil
            // Forget ReplicaSets and Jobs no listed pod refers to any more (rolled out, finished).
            state.owners = state.owners.filter { usedOwners.contains($0.key) }
            defer { state.failing = false }
            return (state.failing, state.stats.lists == 1)
        }
        if first && pods.isEmpty {
            // A node runs at least its DaemonSets' pods (this sensor's own, in a cluster): none usually means the
            // node name is not the one Kubernetes uses.
            logger.warning(
                "the Kubernetes API lists no pods on this node; is --node the Kubernetes node name?",
                metadata: ["node": "\(configuration.nodeName)"])
        }
        if recovered {
            logger.notice(
                "Kubernetes API answers again; pod labels and owners are current", metadata: ["pods": "\(pods.count)"])
        } else {
            logger.debug("pods listed", metadata: ["pods": "\(pods.count)"])
        }
        return true
    }

    // MARK: - Owners

    /// The pod's workload: its controller, with a ReplicaSet replaced by its Deployment and a Job by its CronJob.
    private func controller(of meta: ObjectMetaJSON, namespace: String, used: inout Set<String>) async -> Owner {
        guard let reference = meta.controllerReference else { return Owner(kind: "", name: "") }
        let direct = Owner(kind: reference.kind, name: reference.name)
        let path: String
        switch (reference.kind, reference.group) {
        case ("ReplicaSet", "apps"): path = "/apis/apps/v1/namespaces/\(namespace)/replicasets/\(reference.name)"
        case ("Job", "batch"): path = "/apis/batch/v1/namespaces/\(namespace)/jobs/\(reference.name)"
        default: return direct
        }
        let key = "\(namespace)/\(reference.kind)/\(reference.name)"
        used.insert(key)
        if let cached = state.withLock({ $0.owners[key] }) { return cached }
        state.withLock { $0.stats.ownerLookups += 1 }
        let what = "get \(reference.kind) \(namespace)/\(reference.name)"
        switch await fetch(ObjectJSON.self, url: configuration.baseURL + path, what: what) {
        case .success(let object):
            // A ReplicaSet made by hand (or a Job run by hand) has no controller: it is the workload itself.
            let owner = object.metadata.controllerReference.map { Owner(kind: $0.kind, name: $0.name) } ?? direct
            state.withLock { $0.owners[key] = owner }
            return owner
        case .failure(let failure):
            // Not cached: asked again at the next list. The pod names the ReplicaSet or Job meanwhile.
            state.withLock {
                $0.stats.ownerLookupFailures += 1
                $0.stats.errors[failure.reason, default: 0] += 1
            }
            if let suppressed = ownerLogThrottle.admit() {
                logger.warning(
                    "could not look up a pod's owner; using the \(reference.kind) itself",
                    metadata: [
                        "what": "\(failure.what)", "url": "\(failure.url)", "error": "\(failure.detail)",
                        "suppressed": "\(suppressed)",
                    ])
            }
            return direct
        }
    }

    // MARK: - HTTP

    private struct Failure: Error {
        var reason: String
        var what: String
        var url: String
        var detail: String
    }

    private func record(_ failure: Failure, list: Bool) {
        let alreadyFailing = state.withLock { state -> Bool in
            if list { state.stats.listFailures += 1 }
            state.stats.errors[failure.reason, default: 0] += 1
            let previous = state.stats.lastError
            state.stats.lastError = "\(failure.what): \(failure.detail)"
            defer { state.failing = true }
            return state.failing && previous == state.stats.lastError
        }
        let metadata: Logger.Metadata = [
            "what": "\(failure.what)", "url": "\(failure.url)", "reason": "\(failure.reason)",
            "error": "\(failure.detail)",
        ]
        // A lasting outage repeats the same error at every attempt: warn once, then keep it at debug.
        if alreadyFailing {
            logger.debug("Kubernetes API still failing; events carry annotations-only identity", metadata: metadata)
        } else {
            logger.warning("Kubernetes API request failed; events carry annotations-only identity", metadata: metadata)
        }
    }

    private func fetch<T: Decodable>(_ type: T.Type, url: String, what: String) async -> Result<T, Failure> {
        var request = HTTPRequest(method: .get, url: url, headers: ["Accept": "application/json"])
        if let tokenFile = configuration.tokenFile {
            // Read each time: the kubelet rotates projected service account tokens.
            guard let raw = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                return .failure(
                    Failure(reason: "token", what: what, url: url, detail: "cannot read token file \(tokenFile)"))
            }
            request.auth = .bearer(token: raw.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let response: HTTPResponse
        do {
            response = try await client.send(request)
        } catch {
            return .failure(Failure(reason: "transport", what: what, url: url, detail: "\(error)"))
        }
        guard response.isSuccess else {
            let reason: String
            var hint = ""
            switch response.status {
            case 401:
                reason = "unauthorized"
                hint = " (token missing, expired or not accepted)"
            case 403:
                reason = "forbidden"
                hint = " (the sensor's service account needs list/get on pods, get on replicasets and jobs)"
            case 404: reason = "not_found"
            case 500...: reason = "http_5xx"
            default: reason = "http_4xx"
            }
            return .failure(
                Failure(
                    reason: reason, what: what, url: url,
                    detail: "HTTP \(response.status)\(hint): \(Self.snippet(response.bodyText))"))
        }
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(response.body)))
        } catch {
            return .failure(
                Failure(
                    reason: "bad_json", what: what, url: url,
                    detail: "response is not the expected JSON (\(Self.snippet("\(error)"))): "
                        + Self.snippet(response.bodyText)))
        }
    }

    private static func snippet(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count <= 200 ? flat : String(flat.prefix(200)) + "…"
    }

    private static let queryValueAllowed: CharacterSet = {
        var set = CharacterSet.urlQueryAllowed
        set.remove(charactersIn: "&=+#")
        return set
    }()
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

struct ObjectJSON: Decodable {
    var metadata: ObjectMetaJSON
}

struct PodListJSON: Decodable {
    var items: [ObjectJSON]

    private enum CodingKeys: String, CodingKey { case items }
    init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        // `items` must be there (an answer without it is not a list), but may be null for an empty list.
        items = try values.decode([ObjectJSON]?.self, forKey: .items) ?? []
    }
}
