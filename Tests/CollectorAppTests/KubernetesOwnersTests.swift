import EventModel
import Foundation
import KubernetesAPI
import Logging
import TestSupport
import Testing

@testable import CollectorApp

/// Events whose sensor could only name a ReplicaSet or a Job (no RBAC for them, or no API at all) get the
/// Deployment or CronJob in the collector, from the Kubernetes API (`kubernetes.owners`), before rules see them:
/// through a real HTTP server speaking the API (`KubernetesAPITestServer`) and the real ingest loop (the
/// `CollectorBindingsTests` harness). Issue 8, "the collector resolves owners (ReplicaSet → Deployment) the same
/// way".
@Suite struct KubernetesOwnersTests {
    typealias Harness = CollectorBindingsTests

    static func container(_ namespace: String, _ name: String, ownerKind: String, ownerName: String) -> ContainerRef {
        var container = Harness.pod(namespace, ["app": name], name: name)
        container.ownerKind = ownerKind
        container.ownerName = ownerName
        return container
    }

    @Test("a ReplicaSet becomes its Deployment and a Job its CronJob from the cache; misses are fetched once")
    func ownersResolvedThroughIngest() async throws {
        let directory = try TemporaryDirectory(prefix: "kube-owners")
        defer { directory.remove() }
        let api = try KubernetesAPITestServer(token: "collector-token")
        defer { api.stop() }
        let tokenFile = directory.file("token")
        try Data("collector-token\n".utf8).write(to: URL(fileURLWithPath: tokenFile))
        api.addReplicaSet(.init(name: "web-7d4b9", namespace: "shop", owner: .init(kind: "Deployment", name: "web")))
        // Made by hand: no controller, so the ReplicaSet is the workload.
        api.addReplicaSet(.init(name: "bare-5f6c", namespace: "shop"))
        api.addJob(.init(name: "backup-28990", namespace: "ops", owner: .init(kind: "CronJob", name: "backup")))

        // A retry interval far longer than the test: a failed lookup is asked once here.
        let owners = KubernetesOwners(
            configuration: KubernetesAPIConfiguration(
                baseURL: api.baseURL, tokenFile: tokenFile, requestTimeout: .seconds(5), maxRetryDelay: .seconds(3600)),
            logger: Logger(label: "test.kube-owners"))
        let collector = try await Harness.RunningCollector(storePath: directory.file("patrol.db"), owners: owners)
        let resolver = owners.resolver

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await owners.run() }
            defer { group.cancelAll() }

            // The first event finds nothing cached: it keeps the ReplicaSet (ingest never waits for the API)...
            let web = Self.container("shop", "web-7d4b9-x2x", ownerKind: "ReplicaSet", ownerName: "web-7d4b9")
            let first = try await collector.send(Harness.shmExec(web))
            #expect(Harness.ids(first) == ["R1000"])
            #expect(first.first?.container?.ownerKind == "ReplicaSet")
            #expect(first.first?.container?.ownerName == "web-7d4b9")
            // ...and the lookup happens in the background; later events of the workload name the Deployment.
            try await waitFor("web-7d4b9's owner") { resolver.stats.cached == 1 }
            let later = try await collector.send(Harness.shmExec(web), Harness.shmExec(web))
            #expect(later.count == 2)
            #expect(later.allSatisfy { $0.container?.ownerKind == "Deployment" && $0.container?.ownerName == "web" })
            // Other fields of the container are untouched.
            #expect(later.first?.container?.podName == "web-7d4b9-x2x" && later.first?.container?.namespace == "shop")

            // A Job becomes its CronJob the same way.
            let backup = Self.container("ops", "backup-28990-abc", ownerKind: "Job", ownerName: "backup-28990")
            _ = try await collector.send(Harness.shmExec(backup))
            try await waitFor("backup-28990's owner") { resolver.stats.cached == 2 }
            let job = try await collector.send(Harness.shmExec(backup))
            #expect(job.first?.container?.ownerKind == "CronJob" && job.first?.container?.ownerName == "backup")

            // A bare ReplicaSet stays itself.
            let bare = Self.container("shop", "bare-5f6c-q", ownerKind: "ReplicaSet", ownerName: "bare-5f6c")
            _ = try await collector.send(Harness.shmExec(bare))
            try await waitFor("bare-5f6c's lookup") { resolver.stats.cached == 3 }
            let alone = try await collector.send(Harness.shmExec(bare))
            #expect(alone.first?.container?.ownerKind == "ReplicaSet")
            #expect(alone.first?.container?.ownerName == "bare-5f6c")

            // A ReplicaSet the API does not know (or will not show): it stays, and is not asked again per event.
            let gone = Self.container("shop", "old-1a2b-z", ownerKind: "ReplicaSet", ownerName: "old-1a2b")
            _ = try await collector.send(Harness.shmExec(gone))
            try await waitFor("the failed lookup") { resolver.stats.lookupFailures == 1 }
            let still = try await collector.send(Harness.shmExec(gone), Harness.shmExec(gone))
            #expect(still.count == 2)
            #expect(still.allSatisfy { $0.container?.ownerKind == "ReplicaSet" })
            #expect(still.allSatisfy { $0.container?.ownerName == "old-1a2b" })
            #expect(resolver.stats.errors["not_found"] == 1)

            // A Deployment-owned event (a sensor that resolved it) is left alone, with no GET.
            let statefulDB = Self.container("shop", "db-0", ownerKind: "StatefulSet", ownerName: "db")
            let db = try await collector.send(Harness.shmExec(statefulDB))
            #expect(db.first?.container?.ownerKind == "StatefulSet")
        }
        // One GET per object, however many events named it.
        #expect(api.requestCount(path: "/apis/apps/v1/namespaces/shop/replicasets/web-7d4b9") == 1)
        #expect(api.requestCount(path: "/apis/apps/v1/namespaces/shop/replicasets/old-1a2b") == 1)
        #expect(api.requestCount(path: "/apis/batch/v1/namespaces/ops/jobs/backup-28990") == 1)
        #expect(api.requests.count == 4)
        #expect(api.requests.allSatisfy { $0.header("Authorization") == "Bearer collector-token" })
        await collector.stop()
    }

    @Test("the kubernetes.owners key: off by default, on with bindings unless turned off")
    func configuration() throws {
        func parse(_ yaml: String) throws -> CollectorConfiguration.KubernetesSettings {
            try CollectorConfiguration.parse(yaml: yaml, source: "test.yaml").kubernetes
        }
        #expect(CollectorConfiguration().kubernetes.resolvesOwners == false)
        let alone = try parse("kubernetes: {owners: true, api: 'http://127.0.0.1:8001'}")
        #expect(alone.resolvesOwners && !alone.bindings)
        #expect(try parse("kubernetes: {bindings: true}").resolvesOwners)
        #expect(try parse("kubernetes: {bindings: true, owners: false}").resolvesOwners == false)
        #expect(throws: (any Error).self) { _ = try parse("kubernetes: {owners: yes please}") }
    }
}

/// Polls `condition` every 50 ms for up to 20 s (a bound for a loaded machine, not a measured threshold).
private func waitFor(_ what: String, _ condition: @Sendable () async -> Bool) async throws {
    for _ in 0..<400 {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out waiting for \(what)")
}
