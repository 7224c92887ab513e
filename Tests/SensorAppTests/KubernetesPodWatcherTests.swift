import Foundation
import Logging
import TestSupport
import KubernetesAPI
import Testing

@testable import SensorApp

/// The pod watcher against a real HTTP server speaking the Kubernetes API's JSON (`KubernetesAPITestServer`).
@Suite struct KubernetesPodWatcherTests {
    static let node = "node-a"

    /// A server with a Deployment's pod, a CronJob's pod, a StatefulSet's pod, a bare pod, a pod of a hand-made
    /// ReplicaSet, and a pod on another node.
    static func cluster(token: String? = "s3cret") throws -> KubernetesAPITestServer {
        let api = try KubernetesAPITestServer(token: token)
        api.addPod(
            .init(
                uid: "uid-web", name: "web-7d4b9-x2x", namespace: "shop", node: node,
                labels: ["app": "web", "tier": "frontend"], owner: .init(kind: "ReplicaSet", name: "web-7d4b9")))
        api.addReplicaSet(.init(name: "web-7d4b9", namespace: "shop", owner: .init(kind: "Deployment", name: "web")))
        api.addPod(
            .init(
                uid: "uid-report", name: "report-28391-abcde", namespace: "batch", node: node,
                labels: ["job-name": "report-28391"], owner: .init(kind: "Job", name: "report-28391")))
        api.addJob(.init(name: "report-28391", namespace: "batch", owner: .init(kind: "CronJob", name: "report")))
        api.addPod(
            .init(
                uid: "uid-db", name: "db-0", namespace: "shop", node: node, labels: ["app": "db"],
                owner: .init(kind: "StatefulSet", name: "db")))
        api.addPod(.init(uid: "uid-bare", name: "debug", namespace: "default", node: node))
        api.addPod(
            .init(
                uid: "uid-handmade", name: "handmade-abc", namespace: "default", node: node,
                owner: .init(kind: "ReplicaSet", name: "handmade")))
        api.addReplicaSet(.init(name: "handmade", namespace: "default"))
        api.addPod(.init(uid: "uid-elsewhere", name: "other", namespace: "shop", node: "node-b", labels: ["app": "x"]))
        return api
    }

    static func watcher(_ api: KubernetesAPITestServer, tokenFile: String?, listInterval: Duration = .seconds(30))
        -> KubernetesPodWatcher
    {
        KubernetesPodWatcher(
            configuration: KubernetesAPIConfiguration(
                baseURL: api.baseURL, tokenFile: tokenFile, nodeName: node, listInterval: listInterval,
                requestTimeout: .seconds(5),
                retryDelay: .milliseconds(100), maxRetryDelay: .seconds(1)),
            index: PodIndex(), logger: Logger(label: "test.kube"))
    }

    static func tokenFile(_ directory: TemporaryDirectory, _ token: String) throws -> String {
        let path = directory.file("token")
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("lists this node's pods with labels, and follows ReplicaSet → Deployment and Job → CronJob")
    func listsPodsAndOwners() async throws {
        let api = try Self.cluster()
        defer { api.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let watcher = Self.watcher(api, tokenFile: try Self.tokenFile(directory, "s3cret"))

        #expect(await watcher.refresh())
        let index = watcher.index
        #expect(index.count == 5)
        let web = try #require(index.pod(uid: "uid-web"))
        #expect(web.labels == ["app": "web", "tier": "frontend"])
        #expect(web.namespace == "shop" && web.name == "web-7d4b9-x2x")
        #expect(web.ownerKind == "Deployment" && web.ownerName == "web")
        let report = try #require(index.pod(uid: "uid-report"))
        #expect(report.ownerKind == "CronJob" && report.ownerName == "report")
        let db = try #require(index.pod(uid: "uid-db"))
        #expect(db.ownerKind == "StatefulSet" && db.ownerName == "db")
        let bare = try #require(index.pod(uid: "uid-bare"))
        #expect(bare.ownerKind.isEmpty && bare.ownerName.isEmpty && bare.labels.isEmpty)
        // A ReplicaSet nobody controls is the workload itself.
        let handmade = try #require(index.pod(uid: "uid-handmade"))
        #expect(handmade.ownerKind == "ReplicaSet" && handmade.ownerName == "handmade")
        // Another node's pod is not listed.
        #expect(index.pod(uid: "uid-elsewhere") == nil)
        // The list asked for this node only.
        let list = try #require(api.requests.first { $0.path == "/api/v1/pods" })
        #expect(list.queryItem("fieldSelector") == "spec.nodeName=node-a")

        // A second list asks the ReplicaSet and Job again only if they are not cached.
        #expect(await watcher.refresh())
        #expect(api.requestCount(path: "/apis/apps/v1/namespaces/shop/replicasets/web-7d4b9") == 1)
        #expect(api.requestCount(path: "/apis/batch/v1/namespaces/batch/jobs/report-28391") == 1)
        #expect(api.requestCount(path: "/api/v1/pods") == 2)
        let stats = watcher.stats
        #expect(stats.lists == 2 && stats.listFailures == 0 && stats.ownerLookups == 3 && stats.pods == 5)
    }

    @Test("a relabelled or deleted pod shows in the index after the next list")
    func relistReplacesIndex() async throws {
        let api = try Self.cluster(token: nil)
        defer { api.stop() }
        let watcher = Self.watcher(api, tokenFile: nil)
        #expect(await watcher.refresh())
        api.setLabels(["app": "web", "tier": "frontend", "canary": "true"], ofPod: "uid-web")
        api.removePod(uid: "uid-db")
        #expect(await watcher.refresh())
        #expect(watcher.index.pod(uid: "uid-web")?.labels["canary"] == "true")
        #expect(watcher.index.pod(uid: "uid-db") == nil)
    }

    @Test(
        "API errors are counted by reason, named in lastError, and keep the previous index",
        arguments: [
            (KubernetesAPITestServer.Failure.status(503), "http_5xx", "HTTP 503"),
            (.status(403), "forbidden", "HTTP 403"),
            (.status(401), "unauthorized", "HTTP 401"),
            (.badJSON, "bad_json", "not the expected JSON"),
            (.drop, "transport", "list pods"),
        ])
    func errorsAreCountedAndHarmless(failure: KubernetesAPITestServer.Failure, reason: String, text: String)
        async throws
    {
        let api = try Self.cluster(token: nil)
        defer { api.stop() }
        let watcher = Self.watcher(api, tokenFile: nil)
        #expect(await watcher.refresh())
        api.failure = failure
        #expect(await watcher.refresh() == false)
        #expect(await watcher.refresh() == false)
        var stats = watcher.stats
        #expect(stats.listFailures == 2)
        #expect(stats.errors[reason] == 2)
        #expect(stats.lastError?.contains(text) == true, "\(stats.lastError ?? "nil")")
        // What the last good list said still answers.
        #expect(watcher.index.pod(uid: "uid-web")?.ownerName == "web")
        api.failure = nil
        #expect(await watcher.refresh())
        stats = watcher.stats
        #expect(stats.lists == 2 && stats.lastError == nil)
    }

    @Test("a wrong token is a 401; the token file is read again before each list (rotation)")
    func tokenIsCheckedAndReread() async throws {
        let api = try Self.cluster(token: "old-token")
        defer { api.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tokenFile = try Self.tokenFile(directory, "wrong")
        let watcher = Self.watcher(api, tokenFile: tokenFile)
        #expect(await watcher.refresh() == false)
        #expect(watcher.stats.errors["unauthorized"] == 1)
        #expect(watcher.index.count == 0)

        _ = try Self.tokenFile(directory, "old-token")
        #expect(await watcher.refresh())
        #expect(watcher.index.count == 5)
        // The kubelet rotates the token: the server wants the new one, the file has it.
        api.token = "new-token"
        _ = try Self.tokenFile(directory, "new-token")
        #expect(await watcher.refresh())
        #expect(api.requests.last?.header("Authorization") == "Bearer new-token")
    }

    @Test("an owner lookup that fails names the ReplicaSet itself and is asked again at the next list")
    func ownerLookupFailure() async throws {
        let api = try KubernetesAPITestServer()
        defer { api.stop() }
        api.addPod(
            .init(
                uid: "uid-api", name: "api-6c9f-zz", namespace: "shop", node: Self.node,
                owner: .init(kind: "ReplicaSet", name: "api-6c9f")))
        let watcher = Self.watcher(api, tokenFile: nil)
        #expect(await watcher.refresh())
        var pod = try #require(watcher.index.pod(uid: "uid-api"))
        #expect(pod.ownerKind == "ReplicaSet" && pod.ownerName == "api-6c9f")
        #expect(watcher.stats.ownerLookupFailures == 1)
        #expect(watcher.stats.errors["not_found"] == 1)

        api.addReplicaSet(.init(name: "api-6c9f", namespace: "shop", owner: .init(kind: "Deployment", name: "api")))
        #expect(await watcher.refresh())
        pod = try #require(watcher.index.pod(uid: "uid-api"))
        #expect(pod.ownerKind == "Deployment" && pod.ownerName == "api")
    }

    /// Issue 8, acceptance 3: list, then watch; adds, updates and deletes arrive through the watch; a watch that
    /// expires with 410 Gone (an ERROR event on the open watch, then an HTTP 410 on reopening) is followed by a
    /// list, and later changes still arrive. Other nodes' pods never appear.
    @Test("lists then watches: adds, updates, deletes, 410 Gone → relist, other nodes never")
    func listsAndWatches() async throws {
        let api = try Self.cluster()
        defer { api.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // Short watches and frequent bookmarks, so the test sees watches end and reopen from the last version.
        api.maxWatchDuration = .seconds(1)
        api.bookmarkInterval = .milliseconds(100)
        // A safety-net period far longer than the test: every list seen here is the first or follows a 410.
        let tokenFile = try Self.tokenFile(directory, "s3cret")
        let watcher = Self.watcher(api, tokenFile: tokenFile, listInterval: .seconds(3600))
        let index = watcher.index
        let pods = "/api/v1/pods"
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await watcher.run() }
            defer { group.cancelAll() }
            try await waitUntil("the first list") { index.generation >= 1 }
            #expect(index.count == 5)

            // Added: labels, the Deployment behind the ReplicaSet, and the running image's digest.
            let digest = "sha256:" + String(repeating: "ab", count: 32)
            api.addPod(
                .init(
                    uid: "uid-new", name: "web-7d4b9-q8r", namespace: "shop", node: Self.node,
                    labels: ["app": "web", "tier": "frontend"], owner: .init(kind: "ReplicaSet", name: "web-7d4b9"),
                    containers: [
                        .init(name: "nginx", image: "nginx:1.27", containerID: "c0ffee01", imageDigest: digest)
                    ]))
            api.addPod(
                .init(uid: "uid-other-node", name: "web-7d4b9-zzz", namespace: "shop", node: "node-b",
                      labels: ["app": "web"]))
            try await waitUntil("the added pod") { index.pod(uid: "uid-new") != nil }
            let added = try #require(index.pod(uid: "uid-new"))
            #expect(added.labels == ["app": "web", "tier": "frontend"])
            #expect(added.ownerKind == "Deployment" && added.ownerName == "web")
            #expect(added.imageDigests == ["c0ffee01": digest])

            // Modified: new labels replace the old ones.
            api.setLabels(["app": "web", "tier": "frontend", "canary": "true"], ofPod: "uid-new")
            try await waitUntil("the relabelled pod") { index.pod(uid: "uid-new")?.labels["canary"] == "true" }

            // Deleted: gone from the index.
            api.removePod(uid: "uid-db")
            try await waitUntil("the deleted pod to go") { index.pod(uid: "uid-db") == nil }

            // Watches the server ends are reopened from the last version seen, without listing again.
            try await waitUntil("watches to be reopened") { api.watchCount(path: pods) >= 3 }
            #expect(api.listCount(path: pods) == 1)
            #expect(watcher.stats.events >= 3)
            let reopened = try #require(api.requests.last { $0.path == pods && $0.queryItem("watch") == "1" })
            #expect(reopened.queryItem("fieldSelector") == "spec.nodeName=\(Self.node)")
            #expect(reopened.queryItem("allowWatchBookmarks") == "true")
            #expect(Int(reopened.queryItem("resourceVersion") ?? "") ?? 0 > 100)

            // The open watch expires (ERROR event with a 410 Status): the watcher lists again.
            api.expireWatches()
            try await waitUntil("a list after the ERROR 410") { api.listCount(path: pods) >= 2 }
            api.addPod(.init(uid: "uid-after-410", name: "after", namespace: "shop", node: Self.node))
            try await waitUntil("a pod added after the relist") { index.pod(uid: "uid-after-410") != nil }

            // The watch breaks, the history expires meanwhile, and reopening it is refused with HTTP 410.
            let listsBefore = api.listCount(path: pods)
            let watchesBefore = api.watchCount(path: pods)
            api.failure = .drop
            try await waitUntil("a failed watch") { api.watchCount(path: pods) > watchesBefore + 1 }
            api.expireWatches()
            api.failure = nil
            try await waitUntil("a list after the HTTP 410") { api.listCount(path: pods) > listsBefore }
            #expect(watcher.stats.expired >= 2)
            api.setLabels(["app": "db"], ofPod: "uid-after-410")
            try await waitUntil("a change after the second relist") {
                index.pod(uid: "uid-after-410")?.labels == ["app": "db"]
            }
            #expect(index.pod(uid: "uid-new")?.labels["canary"] == "true")
            #expect(index.pod(uid: "uid-db") == nil)
        }
        // Only this node's pods, ever: every request carried the field selector, and no other node's pod came in.
        #expect(index.pod(uid: "uid-elsewhere") == nil && index.pod(uid: "uid-other-node") == nil)
        #expect(
            api.requests.filter { $0.path == pods }.allSatisfy {
                $0.queryItem("fieldSelector") == "spec.nodeName=\(Self.node)"
            })
    }

    @Test("watch errors are counted by reason and retried from the last version; the index keeps what it had")
    func watchFailuresAreRetried() async throws {
        let api = try Self.cluster(token: nil)
        defer { api.stop() }
        let watcher = Self.watcher(api, tokenFile: nil, listInterval: .seconds(3600))
        let index = watcher.index
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await watcher.run() }
            defer { group.cancelAll() }
            try await waitUntil("the first list") { index.generation >= 1 }
            try await waitUntil("the watch") { api.watchCount(path: "/api/v1/pods") >= 1 }
            api.failure = .status(503)
            // The open watch is cut (a transport error), then reopening it fails with 503, again and again.
            try await waitUntil("refused watches") { watcher.stats.errors["http_5xx", default: 0] >= 2 }
            #expect(watcher.stats.watchFailures >= 3)
            #expect(watcher.stats.lastError?.contains("HTTP 503") == true)
            #expect(index.pod(uid: "uid-web")?.ownerName == "web")
            api.addPod(.init(uid: "uid-late", name: "late", namespace: "shop", node: Self.node, labels: ["a": "b"]))
            api.failure = nil
            // Reopened from the version it had: the pod added during the outage arrives as an event, no list.
            try await waitUntil("the pod added during the outage") { index.pod(uid: "uid-late") != nil }
            #expect(api.listCount(path: "/api/v1/pods") == 1)
            try await waitUntil("the error to clear") { watcher.stats.lastError == nil }
        }
    }

    @Test("an ERROR event other than 410 is a failure: retried from the last version after a back-off, no list")
    func watchErrorEventsAreRetried() async throws {
        let api = try Self.cluster(token: nil)
        defer { api.stop() }
        let watcher = Self.watcher(api, tokenFile: nil, listInterval: .seconds(3600))
        let index = watcher.index
        let pods = "/api/v1/pods"
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await watcher.run() }
            defer { group.cancelAll() }
            try await waitUntil("the watch") { api.watchCount(path: pods) >= 1 }
            api.watchErrorCode = 500
            try await waitUntil("failed watches") { watcher.stats.errors["http_5xx", default: 0] >= 2 }
            #expect(watcher.stats.lastError?.contains("ERROR event 500") == true, "\(watcher.stats.lastError ?? "")")
            #expect(watcher.stats.expired == 0)
            api.addPod(.init(uid: "uid-late", name: "late", namespace: "shop", node: Self.node))
            api.watchErrorCode = nil
            try await waitUntil("the pod added meanwhile") { index.pod(uid: "uid-late") != nil }
            #expect(api.listCount(path: pods) == 1)
        }
    }

    @Test("configuration: explicit flags, in-cluster defaults, or off")
    func configuration() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try Data("t".utf8).write(to: URL(fileURLWithPath: directory.file("token")))
        try Data("ca".utf8).write(to: URL(fileURLWithPath: directory.file("ca.crt")))
        let inCluster = try #require(
            KubernetesAPIConfiguration.resolve(
                apiURL: nil, tokenFile: nil, caFile: nil, nodeName: "n",
                environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "6443"],
                serviceAccountDirectory: directory.path))
        #expect(inCluster.baseURL == "https://10.96.0.1:6443")
        #expect(inCluster.tokenFile == directory.file("token") && inCluster.caFile == directory.file("ca.crt"))
        let ipv6 = KubernetesAPIConfiguration.resolve(
            apiURL: nil, tokenFile: nil, caFile: nil, nodeName: "n",
            environment: ["KUBERNETES_SERVICE_HOST": "fd00::1"],
            serviceAccountDirectory: directory.path)
        #expect(ipv6?.baseURL == "https://[fd00::1]:443")
        let explicit = KubernetesAPIConfiguration.resolve(
            apiURL: "http://127.0.0.1:8001/", tokenFile: nil, caFile: nil, nodeName: "n",
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1"], serviceAccountDirectory: directory.path)
        #expect(explicit?.baseURL == "http://127.0.0.1:8001" && explicit?.tokenFile == nil)
        #expect(
            KubernetesAPIConfiguration.resolve(
                apiURL: nil, tokenFile: "/x", caFile: nil, nodeName: "n", environment: [:],
                serviceAccountDirectory: directory.path) == nil)
        // The list interval is bounded.
        let tooShort = KubernetesAPIConfiguration(baseURL: "http://x", nodeName: "n", listInterval: .zero)
        #expect(tooShort.listInterval == .seconds(1))
    }
}

/// Polls `condition` every 50 ms for up to 20 s (a bound for a loaded machine, not a measured threshold).
func waitUntil(_ what: String, _ condition: @Sendable () -> Bool) async throws {
    for _ in 0..<400 {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out waiting for \(what)")
}
