import Foundation
import Synchronization

/// A small Kubernetes API server for tests, on `HTTPTestServer`: pods (list and watch, with the `spec.nodeName`
/// field selector), ReplicaSets and Jobs (lists and GETs by namespace and name), custom resources (list and watch,
/// cluster-scoped or across namespaces), a bearer token check, and injectable failures (a status such as
/// 401/403/503, a body that is not JSON, a dropped connection).
///
/// Every change made through its API (`addPod`, `updatePod`, `removePod`, `putCustomObject`, ...) gets the next
/// resource version and is recorded as a watch event, so a watch from a list's version sees exactly the changes
/// made after that list. Watches are chunked streams of newline-separated `{"type":..,"object":..}` events, with
/// BOOKMARK events every `bookmarkInterval` when asked for, ending at `timeoutSeconds` (capped by
/// `maxWatchDuration`). `expireWatches()` plays the API server compacting its history: running watches get an
/// `ERROR` event with a 410 `Status` and end, and watches from an older version are refused with 410 (as an HTTP
/// status or an `ERROR` event, see `expiry`).
///
/// ```swift
/// let api = try KubernetesAPITestServer(token: "secret")
/// api.addPod(.init(uid: uid, name: "web-7d4b9-x2x", namespace: "shop", node: "node-a", labels: ["app": "web"],
///                  owner: .init(kind: "ReplicaSet", name: "web-7d4b9")))
/// api.addReplicaSet(.init(name: "web-7d4b9", namespace: "shop", owner: .init(kind: "Deployment", name: "web")))
/// api.failure = .status(503)   // every request fails until set back to nil
/// api.failure = nil
/// api.expireWatches()            // the watcher must list again
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
        /// Its containers as `status.containerStatuses` reports them once they run.
        public var containers: [Container]

        public init(
            uid: String, name: String, namespace: String, node: String, labels: [String: String] = [:],
            owner: OwnerReference? = nil, containers: [Container] = []
        ) {
            self.uid = uid
            self.name = name
            self.namespace = namespace
            self.node = node
            self.labels = labels
            self.owner = owner
            self.containers = containers
        }
    }

    /// A running container of a pod.
    public struct Container: Sendable, Hashable {
        public var name: String
        /// The image as the pod spec names it (`nginx:1.27`).
        public var image: String
        /// The runtime's container ID without the `containerd://` prefix the API adds.
        public var containerID: String
        /// The image's repository digest, `sha256:…`; the API reports it as `<repository>@sha256:…`.
        public var imageDigest: String

        public init(name: String, image: String, containerID: String, imageDigest: String) {
            self.name = name
            self.image = image
            self.containerID = containerID
            self.imageDigest = imageDigest
        }
    }

    /// How a watch from an expired resource version is refused.
    public enum Expiry: Sendable, Hashable {
        /// HTTP 410 Gone with a `Status` body (what the API server does when its watch cache cannot serve it).
        case httpStatus
        /// 200 and a stream holding one `ERROR` event with a 410 `Status` (what it does otherwise).
        case errorEvent
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

    /// One recorded change, already rendered with its resource version.
    private struct Event: Sendable {
        var version: Int
        /// `pods` or `<group>/<version>/<plural>`.
        var collection: String
        var type: String
        var node: String
        var json: String
    }

    /// A custom object as stored: rendered JSON with its version.
    private struct CustomObject: Sendable {
        var namespace: String
        var name: String
        var json: String
    }

    private struct State {
        var pods: [Pod] = []
        /// The rendered pods (with their resource versions), by UID.
        var renderedPods: [String: String] = [:]
        var replicaSets: [Controlled] = []
        var jobs: [Controlled] = []
        /// `<group>/<version>/<plural>` → `namespace/name` → object.
        var custom: [String: [String: CustomObject]] = [:]
        var failure: Failure?
        var token: String?
        var version = 100
        var events: [Event] = []
        /// Watches from a version below this are refused with 410.
        var oldestWatchable = 0
        /// Bumped by `expireWatches()`; a running watch that sees it change ends with ERROR 410.
        var expiries = 0
        var expiry = Expiry.httpStatus
        var watchErrorCode: Int?
        var bookmarkInterval: Duration = .milliseconds(200)
        var maxWatchDuration: Duration = .seconds(60)
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

    /// While set, every request fails this way, and open watches are cut.
    public var failure: Failure? {
        get { storage.state.withLock { $0.failure } }
        set { storage.state.withLock { $0.failure = newValue } }
    }

    public var token: String? {
        get { storage.state.withLock { $0.token } }
        set { storage.state.withLock { $0.token = newValue } }
    }

    /// How watches from an expired version are refused (default: HTTP 410).
    public var expiry: Expiry {
        get { storage.state.withLock { $0.expiry } }
        set { storage.state.withLock { $0.expiry = newValue } }
    }

    /// While set, watches (open and new) send an `ERROR` event with a `Status` of this code (say 500, an etcd
    /// failure) and end.
    public var watchErrorCode: Int? {
        get { storage.state.withLock { $0.watchErrorCode } }
        set { storage.state.withLock { $0.watchErrorCode = newValue } }
    }

    /// Time between BOOKMARK events on watches that allow them.
    public var bookmarkInterval: Duration {
        get { storage.state.withLock { $0.bookmarkInterval } }
        set { storage.state.withLock { $0.bookmarkInterval = newValue } }
    }

    /// The longest a watch stays open whatever `timeoutSeconds` asks, so tests see watches end and reopen.
    public var maxWatchDuration: Duration {
        get { storage.state.withLock { $0.maxWatchDuration } }
        set { storage.state.withLock { $0.maxWatchDuration = newValue } }
    }

    /// The latest resource version.
    public var resourceVersion: Int { storage.state.withLock { $0.version } }

    /// Forgets the change history as an API server compacting etcd does: running watches end with an ERROR event
    /// carrying a 410 `Status`, and watches from any version handed out so far are refused with 410 Gone.
    public func expireWatches() {
        storage.state.withLock { state in
            state.version += 1
            state.oldestWatchable = state.version
            state.expiries += 1
            state.events.removeAll()
        }
    }

    public func addPod(_ pod: Pod) {
        storage.state.withLock { state in
            state.pods.removeAll { $0.uid == pod.uid }
            state.pods.append(pod)
            Self.record(pod, type: "ADDED", in: &state)
        }
    }

    /// Replaces the pod with the same UID (a MODIFIED event).
    public func updatePod(_ pod: Pod) {
        storage.state.withLock { state in
            guard let index = state.pods.firstIndex(where: { $0.uid == pod.uid }) else { return }
            state.pods[index] = pod
            Self.record(pod, type: "MODIFIED", in: &state)
        }
    }

    public func removePod(uid: String) {
        storage.state.withLock { state in
            guard let index = state.pods.firstIndex(where: { $0.uid == uid }) else { return }
            let pod = state.pods.remove(at: index)
            Self.record(pod, type: "DELETED", in: &state)
            state.renderedPods[uid] = nil
        }
    }

    public func setLabels(_ labels: [String: String], ofPod uid: String) {
        guard var pod = storage.state.withLock({ state in state.pods.first { $0.uid == uid } }) else { return }
        pod.labels = labels
        updatePod(pod)
    }

    /// Creates or replaces a custom object (ADDED or MODIFIED). `object` is its JSON (`apiVersion`, `kind`,
    /// `metadata.name`, `spec`, ...); `metadata.namespace`, `uid`, `resourceVersion` and `generation` are filled in.
    /// `resource` is `<group>/<version>/<plural>`, such as `kubescape.io/v1/runtimerulealertbindings`.
    public func putCustomObject(resource: String, namespace: String = "", name: String, json object: String) {
        storage.state.withLock { state in
            let key = "\(namespace)/\(name)"
            let existed = state.custom[resource]?[key] != nil
            state.version += 1
            var dictionary =
                (try? JSONSerialization.jsonObject(with: Data(object.utf8))) as? [String: Any] ?? [:]
            var metadata = dictionary["metadata"] as? [String: Any] ?? [:]
            metadata["name"] = name
            if !namespace.isEmpty { metadata["namespace"] = namespace }
            metadata["uid"] = metadata["uid"] ?? "uid-\(resource.split(separator: "/").last ?? "")-\(key)"
            metadata["resourceVersion"] = String(state.version)
            metadata["generation"] = state.version
            dictionary["metadata"] = metadata
            let json = Self.encode(dictionary)
            state.custom[resource, default: [:]][key] = CustomObject(namespace: namespace, name: name, json: json)
            state.events.append(
                Event(
                    version: state.version, collection: resource, type: existed ? "MODIFIED" : "ADDED", node: "",
                    json: json))
        }
    }

    /// Deletes a custom object (a DELETED event carrying its last state).
    public func deleteCustomObject(resource: String, namespace: String = "", name: String) {
        storage.state.withLock { state in
            let key = "\(namespace)/\(name)"
            guard let object = state.custom[resource]?.removeValue(forKey: key) else { return }
            state.version += 1
            var dictionary =
                (try? JSONSerialization.jsonObject(with: Data(object.json.utf8))) as? [String: Any] ?? [:]
            var metadata = dictionary["metadata"] as? [String: Any] ?? [:]
            metadata["resourceVersion"] = String(state.version)
            dictionary["metadata"] = metadata
            state.events.append(
                Event(
                    version: state.version, collection: resource, type: "DELETED", node: "",
                    json: Self.encode(dictionary)))
        }
    }

    /// Lists (GETs without `watch`) of the collection at `path`, such as `/api/v1/pods`.
    public func listCount(path: String) -> Int {
        requests.filter { $0.path == path && $0.queryItem("watch") == nil }.count
    }

    /// Watches opened on the collection at `path`.
    public func watchCount(path: String) -> Int {
        requests.filter { $0.path == path && ($0.queryItem("watch") == "1" || $0.queryItem("watch") == "true") }
            .count
    }
    public func addReplicaSet(_ replicaSet: Controlled) { storage.state.withLock { $0.replicaSets.append(replicaSet) } }
    public func addJob(_ job: Controlled) { storage.state.withLock { $0.jobs.append(job) } }

    /// Requests whose path is `path` (query excluded).
    public func requestCount(path: String) -> Int { requests.filter { $0.path == path }.count }

    // MARK: - Serving

    private static func record(_ pod: Pod, type: String, in state: inout State) {
        state.version += 1
        let json = encode(podObject(pod, version: state.version))
        if type != "DELETED" { state.renderedPods[pod.uid] = json }
        state.events.append(Event(version: state.version, collection: "pods", type: type, node: pod.node, json: json))
    }

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
        let watching = request.queryItem("watch") == "1" || request.queryItem("watch") == "true"
        let parts = request.path.split(separator: "/").map(String.init)
        switch parts.count {
        case 3 where parts == ["api", "v1", "pods"]:
            var node: String?
            if let selector = request.queryItem("fieldSelector") {
                guard selector.hasPrefix("spec.nodeName=") else {
                    return status(400, reason: "BadRequest", message: "unsupported field selector \(selector)")
                }
                node = String(selector.dropFirst("spec.nodeName=".count))
            }
            if watching { return watch(request, collection: "pods", node: node, storage: storage) }
            let pods = snapshot.pods.filter { node == nil || $0.node == node }
            return list("PodList", pods.compactMap { snapshot.renderedPods[$0.uid] }, version: snapshot.version)
        case 4 where parts[0] == "apis" && parts[3] == "replicasets" && parts[1...2] == ["apps", "v1"]:
            return list(
                "ReplicaSetList", snapshot.replicaSets.map { encode(controlledObject($0, kind: "ReplicaSet")) },
                version: snapshot.version)
        case 4 where parts[0] == "apis" && parts[3] == "jobs" && parts[1...2] == ["batch", "v1"]:
            return list(
                "JobList", snapshot.jobs.map { encode(controlledObject($0, kind: "Job")) }, version: snapshot.version)
        case 4 where parts[0] == "apis" && snapshot.custom.keys.contains(parts[1...3].joined(separator: "/")):
            // A custom resource across namespaces (or cluster-scoped).
            let resource = parts[1...3].joined(separator: "/")
            if watching { return watch(request, collection: resource, node: nil, storage: storage) }
            let objects = (snapshot.custom[resource] ?? [:]).sorted { $0.key < $1.key }.map(\.value.json)
            return list("List", objects, version: snapshot.version)
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

    /// A watch: the events after the requested version, then new ones as they are recorded, until the timeout.
    private static func watch(
        _ request: HTTPTestServer.Request, collection: String, node: String?, storage: Storage
    ) -> HTTPTestServer.Response {
        guard let from = request.queryItem("resourceVersion").flatMap({ Int($0) }) else {
            return status(400, reason: "BadRequest", message: "this test server needs a numeric resourceVersion")
        }
        let (refused, expiry, expiries, bookmarkInterval, maxDuration) = storage.state.withLock { state in
            (from < state.oldestWatchable, state.expiry, state.expiries, state.bookmarkInterval, state.maxWatchDuration)
        }
        let goneMessage = "too old resource version: \(from)"
        if refused && expiry == .httpStatus { return status(410, reason: "Expired", message: goneMessage) }
        let bookmarks = request.queryItem("allowWatchBookmarks") == "true"
        let requested = request.queryItem("timeoutSeconds").flatMap { Int($0) }.map { Duration.seconds($0) }
        let duration = min(requested ?? maxDuration, maxDuration)
        let kind = collection == "pods" ? "Pod" : "Object"
        return HTTPTestServer.Response(
            headers: [("Content-Type", "application/json")],
            action: .stream { writer in
                if refused {
                    writer.write(goneEvent(goneMessage))
                    return true
                }
                let start = ContinuousClock.now
                var sent = from
                var lastBookmark = start
                while writer.isOpen && ContinuousClock.now - start < duration {
                    let (events, current, expired, failing, errorCode) = storage.state.withLock { state in
                        (
                            state.events.filter {
                                $0.version > sent && $0.collection == collection && (node == nil || $0.node == node)
                            }, state.version, state.expiries != expiries, state.failure != nil, state.watchErrorCode
                        )
                    }
                    if let errorCode {
                        writer.write(errorEvent(errorCode, reason: "InternalError", message: "injected watch error"))
                        return true
                    }
                    // An injected failure is an outage: open watches break too (the connection closes without
                    // the final chunk, as when an API server goes away).
                    if failing { return false }
                    if expired {
                        writer.write(goneEvent("the watch's history was compacted"))
                        return true
                    }
                    for event in events {
                        let line = "{\"type\":\"\(event.type)\",\"object\":\(event.json)}\n"
                        guard writer.write(line) else { return false }
                    }
                    sent = max(sent, current)
                    if bookmarks && ContinuousClock.now - lastBookmark >= bookmarkInterval {
                        lastBookmark = ContinuousClock.now
                        let bookmark = encode([
                            "type": "BOOKMARK",
                            "object": [
                                "kind": kind, "apiVersion": "v1", "metadata": ["resourceVersion": String(current)],
                            ] as [String: Any],
                        ])
                        guard writer.write(bookmark + "\n") else { return false }
                    }
                    HTTPTestServer.sleep(.milliseconds(5))
                }
                return true
            })
    }

    private static func goneEvent(_ message: String) -> String {
        errorEvent(410, reason: "Expired", message: message)
    }

    private static func errorEvent(_ code: Int, reason: String, message: String) -> String {
        encode([
            "type": "ERROR",
            "object": [
                "kind": "Status", "apiVersion": "v1", "metadata": [:] as [String: Any], "status": "Failure",
                "message": message, "reason": reason, "code": code,
            ] as [String: Any],
        ]) + "\n"
    }

    private static func status(_ code: Int, reason: String, message: String) -> HTTPTestServer.Response {
        var response = json([
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code,
        ])
        response.status = code
        return response
    }

    /// A list of already-rendered items at `version`.
    private static func list(_ kind: String, _ items: [String], version: Int) -> HTTPTestServer.Response {
        .json(
            "{\"kind\":\"\(kind)\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"\(version)\"},"
                + "\"items\":[\(items.joined(separator: ","))]}")
    }

    private static func json(_ object: [String: Any]) -> HTTPTestServer.Response { .json(encode(object)) }

    private static func encode(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
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

    private static func podObject(_ pod: Pod, version: Int) -> [String: Any] {
        var metadata: [String: Any] = [
            "name": pod.name, "namespace": pod.namespace, "uid": pod.uid, "resourceVersion": String(version),
            "labels": pod.labels, "creationTimestamp": "2026-01-01T00:00:00Z",
        ]
        if let owner = pod.owner { metadata["ownerReferences"] = [ownerObject(owner)] }
        let containers = pod.containers.isEmpty
            ? [Container(name: "app", image: "busybox", containerID: "", imageDigest: "")] : pod.containers
        // Enough of a real pod that a client which ignores unknown fields is exercised.
        var status: [String: Any] = ["phase": "Running", "podIP": "10.244.0.7"]
        let running = pod.containers.filter { !$0.containerID.isEmpty }
        if !running.isEmpty {
            status["containerStatuses"] = running.map { container -> [String: Any] in
                let repository = container.image.split(separator: ":").first.map(String.init) ?? container.image
                return [
                    "name": container.name, "image": container.image, "ready": true, "restartCount": 0,
                    "started": true, "containerID": "containerd://\(container.containerID)",
                    "imageID": "docker.io/library/\(repository)@\(container.imageDigest)",
                    "state": ["running": ["startedAt": "2026-01-01T00:00:01Z"]],
                ]
            }
        }
        return [
            "kind": "Pod", "apiVersion": "v1", "metadata": metadata,
            "spec": [
                "nodeName": pod.node, "restartPolicy": "Always",
                "containers": containers.map { ["name": $0.name, "image": $0.image] },
            ] as [String: Any],
            "status": status,
        ]
    }

    private static func controlledObject(_ object: Controlled, kind: String) -> [String: Any] {
        var metadata: [String: Any] = ["name": object.name, "namespace": object.namespace, "uid": UUID().uuidString]
        if let owner = object.owner { metadata["ownerReferences"] = [ownerObject(owner)] }
        return ["kind": kind, "metadata": metadata, "spec": [:] as [String: Any]]
    }
}
