import Foundation
import Synchronization

/// A small Kubernetes API server for tests, on `HTTPTestServer`: the pods list (with the `spec.nodeName` field
/// selector), ReplicaSets and Jobs (lists and GETs by namespace and name), a bearer token check, and injectable
/// failures (a status such as 401/403/503, a body that is not JSON, a dropped connection).
///
/// ```swift
/// let api = try KubernetesAPITestServer(token: "secret")
/// api.addPod(.init(uid: uid, name: "web-7d4b9-x2x", namespace: "shop", node: "node-a", labels: ["app": "web"],
///                  owner: .init(kind: "ReplicaSet", name: "web-7d4b9")))
/// api.addReplicaSet(.init(name: "web-7d4b9", namespace: "shop", owner: .init(kind: "Deployment", name: "web")))
/// api.failure = .status(503)   // every request fails until set back to nil
/// ```
public final class KubernetesAPITestServer: Sendable {
    public struct OwnerReference: Sendable, Hashable {
        public var kind: String
        public var name: String
        /// Nil picks the kind's usual API version (`apps/v1`, `batch/v1`, `v1`).
        public var apiVersion: String?
        public var controller: Bool

        public init(kind: String, name: String, apiVersion: String? = nil, controller: Bool = true) {
            self.kind = kind
            self.name = name
            self.apiVersion = apiVersion
            self.controller = controller
        }
    }

    public struct Pod: Sendable, Hashable {
        public var uid: String
        public var name: String
        public var namespace: String
        public var node: String
        public var labels: [String: String]
        public var owner: OwnerReference?

        public init(
            uid: String, name: String, namespace: String, node: String, labels: [String: String] = [:],
            owner: OwnerReference? = nil
        ) {
            self.uid = uid
            self.name = name
            self.namespace = namespace
            self.node = node
            self.labels = labels
            self.owner = owner
        }
    }

    /// A ReplicaSet or a Job: what matters is who controls it.
    public struct Controlled: Sendable, Hashable {
        public var name: String
        public var namespace: String
        public var owner: OwnerReference?

        public init(name: String, namespace: String, owner: OwnerReference? = nil) {
            self.name = name
            self.namespace = namespace
            self.owner = owner
        }
    }

    public enum Failure: Sendable, Hashable {
        /// Answer with this status and a `Status` object, as the API server does.
        case status(Int)
        /// Answer 200 with a body that is not JSON.
        case badJSON
        /// Close the connection without answering.
        case drop
    }

    private struct State {
        var pods: [Pod] = []
        var replicaSets: [Controlled] = []
        var jobs: [Controlled] = []
        var failure: Failure?
        var token: String?
    }
    /// Shared with the server's handler (a Mutex cannot be captured by a closure itself).
    private final class Storage: Sendable {
        let state: Mutex<State>
        init(_ state: State) { self.state = Mutex(state) }
    }
    private let storage: Storage
    private let http: HTTPTestServer

    /// `token`: the bearer token every request must carry (401 otherwise); nil accepts any request.
    public init(token: String? = nil) throws {
        let storage = Storage(State(token: token))
        self.storage = storage
        http = try HTTPTestServer { request in Self.answer(request, storage: storage) }
    }

    public var baseURL: String { http.baseURL }
    /// Every request received, oldest first.
    public var requests: [HTTPTestServer.Request] { http.requests }
    public func stop() { http.stop() }

    /// While set, every request fails this way.
    public var failure: Failure? {
        get { storage.state.withLock { $0.failure } }
        set { storage.state.withLock { $0.failure = newValue } }
    }

    public var token: String? {
        get { storage.state.withLock { $0.token } }
        set { storage.state.withLock { $0.token = newValue } }
    }

    public func addPod(_ pod: Pod) { storage.state.withLock { $0.pods.append(pod) } }
    public func removePod(uid: String) { storage.state.withLock { $0.pods.removeAll { $0.uid == uid } } }
    public func setLabels(_ labels: [String: String], ofPod uid: String) {
        storage.state.withLock { state in
            for index in state.pods.indices where state.pods[index].uid == uid { state.pods[index].labels = labels }
        }
    }
    public func addReplicaSet(_ replicaSet: Controlled) { storage.state.withLock { $0.replicaSets.append(replicaSet) } }
    public func addJob(_ job: Controlled) { storage.state.withLock { $0.jobs.append(job) } }

    /// Requests whose path is `path` (query excluded).
    public func requestCount(path: String) -> Int { requests.filter { $0.path == path }.count }

    // MARK: - Serving

    private static func answer(_ request: HTTPTestServer.Request, storage: Storage) -> HTTPTestServer.Response {
        let snapshot = storage.state.withLock { $0 }
        if let token = snapshot.token, request.header("Authorization") != "Bearer \(token)" {
            return status(401, reason: "Unauthorized", message: "Unauthorized")
        }
        switch snapshot.failure {
        case .status(let code)?: return status(code, reason: "Injected", message: "injected failure \(code)")
        case .badJSON?: return .json("{\"kind\": \"PodList\", \"items\": [ {\"metadata\": ")
        case .drop?: return .drop
        case nil: break
        }
        guard request.method == "GET" else { return status(405, reason: "MethodNotAllowed", message: "GET only") }
        let parts = request.path.split(separator: "/").map(String.init)
        switch parts.count {
        case 3 where parts == ["api", "v1", "pods"]:
            var pods = snapshot.pods
            if let selector = request.queryItem("fieldSelector") {
                guard selector.hasPrefix("spec.nodeName=") else {
                    return status(400, reason: "BadRequest", message: "unsupported field selector \(selector)")
                }
                let node = String(selector.dropFirst("spec.nodeName=".count))
                pods = pods.filter { $0.node == node }
            }
            return list("PodList", pods.map(podObject))
        case 4 where parts[0] == "apis" && parts[3] == "replicasets" && parts[1...2] == ["apps", "v1"]:
            return list("ReplicaSetList", snapshot.replicaSets.map { controlledObject($0, kind: "ReplicaSet") })
        case 4 where parts[0] == "apis" && parts[3] == "jobs" && parts[1...2] == ["batch", "v1"]:
            return list("JobList", snapshot.jobs.map { controlledObject($0, kind: "Job") })
        case 7 where parts[0] == "apis" && parts[3] == "namespaces":
            let (namespace, resource, name) = (parts[4], parts[5], parts[6])
            let found: (Controlled, String)?
            switch (parts[1], parts[2], resource) {
            case ("apps", "v1", "replicasets"):
                found = snapshot.replicaSets.first { $0.namespace == namespace && $0.name == name }
                    .map { ($0, "ReplicaSet") }
            case ("batch", "v1", "jobs"):
                found = snapshot.jobs.first { $0.namespace == namespace && $0.name == name }.map { ($0, "Job") }
            default: found = nil
            }
            guard let (object, kind) = found else {
                return status(404, reason: "NotFound", message: "\(resource) \"\(name)\" not found")
            }
            return json(controlledObject(object, kind: kind))
        default:
            return status(404, reason: "NotFound", message: "the server could not find the requested resource")
        }
    }

    private static func status(_ code: Int, reason: String, message: String) -> HTTPTestServer.Response {
        var response = json([
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code,
        ])
        response.status = code
        return response
    }

    private static func list(_ kind: String, _ items: [[String: Any]]) -> HTTPTestServer.Response {
        json(["kind": kind, "apiVersion": "v1", "metadata": ["resourceVersion": "1"], "items": items])
    }

    private static func json(_ object: [String: Any]) -> HTTPTestServer.Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return .json(String(decoding: data, as: UTF8.self))
    }

    private static func ownerObject(_ owner: OwnerReference) -> [String: Any] {
        let version =
            owner.apiVersion
            ?? (["ReplicaSet", "Deployment", "StatefulSet", "DaemonSet"].contains(owner.kind)
                ? "apps/v1" : ["Job", "CronJob"].contains(owner.kind) ? "batch/v1" : "v1")
        return [
            "apiVersion": version, "kind": owner.kind, "name": owner.name, "uid": UUID().uuidString.lowercased(),
            "controller": owner.controller, "blockOwnerDeletion": true,
        ]
    }

    private static func podObject(_ pod: Pod) -> [String: Any] {
        var metadata: [String: Any] = [
            "name": pod.name, "namespace": pod.namespace, "uid": pod.uid, "resourceVersion": "1",
            "labels": pod.labels,
        ]
        if let owner = pod.owner { metadata["ownerReferences"] = [ownerObject(owner)] }
        return [
            "metadata": metadata,
            // Enough of a real pod that a client which ignores unknown fields is exercised.
            "spec": ["nodeName": pod.node, "containers": [["name": "app", "image": "busybox"]]],
            "status": ["phase": "Running"],
        ]
    }

    private static func controlledObject(_ object: Controlled, kind: String) -> [String: Any] {
        var metadata: [String: Any] = ["name": object.name, "namespace": object.namespace, "uid": UUID().uuidString]
        if let owner = object.owner { metadata["ownerReferences"] = [ownerObject(owner)] }
        return ["kind": kind, "metadata": metadata, "spec": [:] as [String: Any]]
    }
}
