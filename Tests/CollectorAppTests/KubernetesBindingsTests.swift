import EventModel
import Foundation
import KubernetesAPI
import Logging
import TestSupport
import Testing

@testable import CollectorApp

/// Bindings as Kubernetes custom resources: the collector lists and watches them through a real HTTP server
/// speaking the API (`KubernetesAPITestServer`) and applies them next to patrolctl's, through the real ingest loop
/// (the `CollectorBindingsTests` harness). Issue 8, "the collector can watch bindings from the API".
@Suite struct KubernetesBindingsTests {
    typealias Harness = CollectorBindingsTests
    static let cluster = "kubescape.io/v1/runtimerulealertbindings"
    static let namespaced = "kubescape.io/v1/namespacedruntimerulealertbindings"

    static func binding(kind: String = "RuntimeRuleAlertBinding", podLabels: [String: String]? = nil, rule: String)
        -> String
    {
        let selector = podLabels.map { labels in
            ",\"podSelector\":{\"matchLabels\":{"
                + labels.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",") + "}}"
        } ?? ""
        return """
            {"apiVersion":"kubescape.io/v1","kind":"\(kind)","metadata":{"annotations":{"note":"from kubectl"}},\
            "spec":{"rules":[{"ruleName":"\(rule)"}]\(selector)},"status":{}}
            """
    }

    @Test("custom resources created, updated and deleted in the API change which rules fire, without a restart")
    func bindingsFollowTheAPI() async throws {
        let directory = try TemporaryDirectory(prefix: "kube-bindings")
        defer { directory.remove() }
        let collector = try await Harness.RunningCollector(storePath: directory.file("patrol.db"))
        let api = try KubernetesAPITestServer(token: "collector-token")
        defer { api.stop() }
        api.maxWatchDuration = .seconds(2)
        let tokenFile = directory.file("token")
        try Data("collector-token\n".utf8).write(to: URL(fileURLWithPath: tokenFile))
        // Both resources exist (the CRDs are installed), empty.
        api.putCustomObject(resource: Self.cluster, name: "placeholder", json: Self.binding(rule: "Crypto miner"))
        api.deleteCustomObject(resource: Self.cluster, name: "placeholder")
        api.putCustomObject(
            resource: Self.namespaced, namespace: "x", name: "placeholder", json: Self.binding(rule: "Crypto miner"))
        api.deleteCustomObject(resource: Self.namespaced, namespace: "x", name: "placeholder")

        let watcher = KubernetesBindingsWatcher(
            configuration: KubernetesAPIConfiguration(
                baseURL: api.baseURL, tokenFile: tokenFile, listInterval: .seconds(3600),
                requestTimeout: .seconds(5), retryDelay: .milliseconds(100), maxRetryDelay: .seconds(1)),
            bindings: collector.bindings, logger: Logger(label: "test.kube-bindings"))
        let bindings = collector.bindings
        let web = Harness.pod("shop", ["app": "web"], name: "web-1")
        let db = Harness.pod("shop", ["app": "db"], name: "db-1")
        let blog = Harness.pod("blog", ["app": "db"], name: "blog-1")

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await watcher.run() }
            defer { group.cancelAll() }
            try await waitFor("both lists") { watcher.stats.values.allSatisfy { $0.lists >= 1 } }
            // Nothing in the API: the default binding gives every pod R1000.
            #expect(Harness.ids(try await collector.send(Harness.shmExec(db))) == ["R1000"])

            // Created: only app=web pods get R1000.
            api.putCustomObject(
                resource: Self.cluster, name: "web-exec",
                json: Self.binding(podLabels: ["app": "web"], rule: "Exec from malicious source"))
            try await waitFor("web-exec") { bindings.clusterBindingKeys == ["runtimerulealertbindings/web-exec"] }
            #expect(Harness.ids(try await collector.send(Harness.shmExec(web))) == ["R1000"])
            #expect(try await collector.send(Harness.shmExec(db)).isEmpty)

            // A namespaced binding: R1007 in namespace shop only.
            api.putCustomObject(
                resource: Self.namespaced, namespace: "shop", name: "miners",
                json: Self.binding(kind: "NamespacedRuntimeRuleAlertBinding", rule: "Crypto miner"))
            try await waitFor("shop/miners") {
                bindings.clusterBindingKeys.contains("namespacedruntimerulealertbindings/shop/miners")
            }
            #expect(Harness.ids(try await collector.send(Harness.minerConnect(db))) == ["R1007"])
            #expect(try await collector.send(Harness.minerConnect(blog)).isEmpty)

            // Updated: web-exec now selects app=db.
            api.putCustomObject(
                resource: Self.cluster, name: "web-exec",
                json: Self.binding(podLabels: ["app": "db"], rule: "Exec from malicious source"))
            try await waitFor("the updated web-exec") {
                (try? await collector.send(Harness.shmExec(Harness.pod("blog", ["app": "db"], name: "probe"))))?
                    .isEmpty == false
            }
            #expect(Harness.ids(try await collector.send(Harness.shmExec(db))) == ["R1000"])
            #expect(try await collector.send(Harness.shmExec(web)).isEmpty)

            // Invalid: rejected with its reason, counted; the others stay in force.
            api.putCustomObject(
                resource: Self.cluster, name: "typo", json: Self.binding(rule: "Exec from malicous source"))
            try await waitFor("the rejection") { bindings.clusterRejections.count >= 1 }
            let rejection = bindings.clusterRejections.last ?? ""
            #expect(rejection.contains("runtimerulealertbindings/typo"), "\(rejection)")
            #expect(rejection.contains("Exec from malicous source"), "\(rejection)")
            #expect(bindings.clusterBindingKeys.count == 2)

            // patrolctl's bindings apply alongside; deleting a custom resource removes only its own binding.
            let applied = try await collector.apply("valid/severity-override.yaml")
            #expect(Harness.actions(applied) == ["miners-critical": .created])
            #expect(try await collector.send(Harness.minerConnect(blog)).first?.severity == .critical)
            api.deleteCustomObject(resource: Self.cluster, name: "web-exec")
            try await waitFor("web-exec to go") { bindings.clusterBindingKeys.count == 1 }
            #expect(try await collector.send(Harness.shmExec(db)).isEmpty)
            // `patrolctl bindings list` shows both kinds, each with where it came from; `get` finds the API's too.
            let listed = await bindings.list(namespace: nil).map { "\($0.namespace)/\($0.name) \($0.source)" }
            #expect(listed == ["/miners-critical patrolctl", "shop/miners kubernetes"])
            let spec = await bindings.get(name: "miners", namespace: "shop") ?? ""
            #expect(spec.contains("Crypto miner"), "\(spec)")

            // The watch expires (410 Gone): the collector lists again, and later changes still arrive.
            let before = watcher.stats[KubernetesBindingsWatcher.namespacedResource]?.lists ?? 0
            api.expireWatches()
            try await waitFor("a list after 410") {
                (watcher.stats[KubernetesBindingsWatcher.namespacedResource]?.lists ?? 0) > before
            }
            api.deleteCustomObject(resource: Self.namespaced, namespace: "shop", name: "miners")
            try await waitFor("shop/miners to go") { bindings.clusterBindingKeys.isEmpty }
            #expect(try await collector.bindings.delete(name: "miners-critical", namespace: ""))
            // Nothing applied anywhere: the default binding is back.
            #expect(Harness.ids(try await collector.send(Harness.shmExec(db))) == ["R1000"])
        }
        // Every request carried the service account's token.
        #expect(api.requests.allSatisfy { $0.header("Authorization") == "Bearer collector-token" })
        await collector.stop()
    }

    @Test("the kubernetes key: bindings on, API settings, unknown keys refused")
    func configuration() throws {
        let parsed = try CollectorConfiguration.parse(
            yaml: "kubernetes: {bindings: true, api: 'http://127.0.0.1:8001', caFile: /ca.pem}", source: "test.yaml")
        #expect(parsed.kubernetes.bindings)
        #expect(parsed.kubernetes.api == "http://127.0.0.1:8001" && parsed.kubernetes.caFile == "/ca.pem")
        #expect(parsed.kubernetes.tokenFile == nil)
        #expect(CollectorConfiguration().kubernetes.bindings == false)
        #expect(throws: (any Error).self) {
            _ = try CollectorConfiguration.parse(yaml: "kubernetes: {binding: true}", source: "test.yaml")
        }
    }

    @Test("a namespaced custom resource becomes a namespaced binding document")
    func documents() throws {
        let object = try JSONDecoder().decode(
            KubernetesObject.self,
            from: Data(
                (#"{"kind":"NamespacedRuntimeRuleAlertBinding","metadata":{"name":"a","namespace":"n","generation":3},"#
                    + #""status":{"x":1}}"#).utf8))
        #expect(object.key == "n/a")
        let document = KubernetesBindingsWatcher.bindingDocument(object)
        #expect(document.contains(#""kind":"RuntimeRuleAlertBinding""#))
        #expect(document.contains(#""generation":3"#))
        #expect(!document.contains("status"))
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
