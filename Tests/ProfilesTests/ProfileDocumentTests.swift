import Basics
import EventModel
import Store
import TestSupport
import Testing

@testable import Profiles

@Suite("Profiles as ApplicationProfile YAML, and in the store")
struct ProfileDocumentTests {
    /// A profile learned from the web server's behaviour, then final.
    func learnedRegistry() -> (ProfileRegistry, Workload) {
        let registry = ProfileRegistry(configuration: tenSeconds)
        let pod = Workload()
        learnWebServer(registry, pod)
        _ = registry.observe(pod.event(11, .syscalls(SyscallSet(syscalls: [0]))))
        return (registry, pod)
    }

    /// Behaviour to judge: half learned, half new.
    let probes: [Payload] = [
        exec("/usr/sbin/nginx", ["nginx", "-g", "daemon off;"]), exec("/bin/sh", ["sh"]),
        open("/var/log/nginx/access.log", O_WRONLY), open("/etc/nginx/nginx.conf", O_WRONLY),
        .syscalls(SyscallSet(syscalls: [1, unshareNumber])),
        .capability(CapabilityUse(capability: capSetuid, syscall: setuidNumber)),
        .capability(CapabilityUse(capability: 21, syscall: unshareNumber)),
        .dns(DNSQuery(name: "api.payments.example")), .dns(DNSQuery(name: "evil.example.")),
        connect("10.0.0.7", 443), connect("10.0.0.8", 443),
        .accept(NetworkFlow(localPort: 8080, remoteAddress: "1.2.3.4", remotePort: 9)),
        .accept(NetworkFlow(localPort: 9090, remoteAddress: "1.2.3.4", remotePort: 9)),
    ]

    func decisions(_ registry: ProfileRegistry, containerID: String) -> [[ProfileItem]] {
        var pod = Workload()
        pod.containerID = containerID
        return probes.map { registry.observe(pod.event(100, $0))?.unexpected ?? [] }
    }

    @Test("export then import into a fresh registry reproduces the same decisions")
    func roundTrip() throws {
        let (registry, pod) = learnedRegistry()
        let yaml = try ProfileDocument.yaml(registry.profiles(now: start))
        #expect(yaml.contains("apiVersion: kubescape.io/v1"))
        #expect(yaml.contains("kind: ApplicationProfile"))
        #expect(yaml.contains("name: deployment-web"))
        #expect(yaml.contains("- O_WRONLY"))
        #expect(yaml.contains("dnsName: api.payments.example"))

        let imported = try ProfileDocument.parse(yaml, source: "export.yaml")
        #expect(imported == registry.profiles(now: start))
        #expect(try ProfileDocument.yaml(imported) == yaml, "export is stable")

        let fresh = ProfileRegistry(configuration: tenSeconds)
        for profile in imported { fresh.install(profile) }
        let original = decisions(registry, containerID: "fresh-container-1")
        #expect(decisions(fresh, containerID: "fresh-container-1") == original)
        #expect(original.filter { !$0.isEmpty }.count == 7, "the new half is anomalous: \(original)")
        _ = pod
    }

    @Test("A KubeCop profile without Patrol's annotations imports as final")
    func kubecopDocument() throws {
        let yaml = """
            apiVersion: kubescape.io/v1
            kind: ApplicationProfile
            metadata:
              name: deployment-web
              namespace: shop
            spec:
              containers:
              - name: nginx
                execs:
                - path: /usr/sbin/nginx
                  args: [nginx, -g, daemon off;]
                opens:
                - path: /etc/nginx/nginx.conf
                  flags: [O_RDONLY, O_CLOEXEC]
                syscalls: [read, write, setuid]
                capabilities:
                - syscall: setuid
                  caps: [SETUID]
                dns:
                - dnsName: api.payments.example.
                  addresses: [10.0.0.7]
                networkActivity:
                  outgoing:
                  - protocol: TCP
                    port: 443
                    dstEndpoint: 10.0.0.7
            """
        let profiles = try ProfileDocument.parse(yaml, source: "kubecop.yaml")
        let profile = try #require(profiles.first)
        #expect(profile.workload == WorkloadKey(namespace: "shop", kind: "Deployment", name: "web"))
        let container = try #require(profile.container("nginx"))
        #expect(container.state == .final)
        #expect(container.behaviour.capabilities.contains(UInt64(setuidNumber) << 32 | UInt64(capSetuid)))
        #expect(container.behaviour.dns["api.payments.example"] == ["10.0.0.7"])

        let registry = ProfileRegistry(configuration: tenSeconds)
        registry.install(profile)
        let pod = Workload()
        #expect(registry.observe(pod.event(0, open("/etc/nginx/nginx.conf", O_CLOEXEC)))?.unexpected == [])
        #expect(registry.observe(pod.event(0, exec("/bin/sh", ["sh"])))?.unexpected.count == 1, "imported final: judges at once")
    }

    @Test("Invalid profile documents are rejected with the document and field", arguments: [
        ("kind: ApplicationProfile\napiVersion: v1\nmetadata: {name: deployment-web, namespace: shop}\nspec: {containers: []}",
         "document 1: apiVersion: expected kubescape.io/v1"),
        ("apiVersion: kubescape.io/v1\nkind: ApplicationProfile\nmetadata: {name: deployment-web}\nspec: {containers: []}",
         "metadata.namespace: missing"),
        ("apiVersion: kubescape.io/v1\nkind: ApplicationProfile\nmetadata: {name: web, namespace: shop}\nspec: {containers: []}",
         "metadata.name: 'web' does not name a workload"),
        ("apiVersion: kubescape.io/v1\nkind: ApplicationProfile\nmetadata: {name: pod-a, namespace: shop}\nspec: {containers: [{name: a, syscalls: [read, frobnicate]}]}",
         "spec.containers[0].syscalls[1]: unknown syscall 'frobnicate'"),
        ("apiVersion: kubescape.io/v1\nkind: ApplicationProfile\nmetadata: {name: pod-a, namespace: shop}\nspec: {containers: [{name: a, opens: [{path: /x, flags: [O_BOGUS]}]}]}",
         "spec.containers[0].opens[0].flags: unknown open flag 'O_BOGUS'"),
        ("apiVersion: kubescape.io/v1\nkind: ApplicationProfile\nmetadata: {name: pod-a, namespace: shop}\nspec: {containers: [{name: a}, {name: a}]}",
         "spec.containers[1].name: container 'a' is listed twice"),
        ("apiVersion: kubescape.io/v1\nkind: ApplicationProfile\nmetadata: {name: pod-a, namespace: shop}\nspec: {containers: [{name: a, capabilities: [{syscall: setuid, caps: [CAP_FLY]}]}]}",
         "spec.containers[0].capabilities[0].caps[0]: unknown capability 'CAP_FLY'"),
        ("apiVersion: kubescape.io/v1\nkind: ApplicationProfile\nmetadata: {name: pod-a, namespace: shop}\nspec: {containers: [{name: a, networkActivity: {outgoing: [{protocol: SCTP, port: 1}]}}]}",
         "spec.containers[0].networkActivity.outgoing[0].protocol: expected TCP or UDP"),
        ("apiVersion: kubescape.io/v1\nkind: ApplicationProfile\nmetadata: {name: pod-a, namespace: shop}\nspec: {containers: [{name: a, execs: [{args: [x]}]}]}",
         "spec.containers[0].execs[0].path: missing"),
        ("apiVersion: kubescape.io/v1\nkind: ApplicationProfile\nmetadata: {name: pod-a, namespace: shop}\nspec: {containers: [{name: a, networkActivity: {outgoing: [{protocol: TCP, port: 70000}]}}]}",
         "spec.containers[0].networkActivity.outgoing[0].port"),
        ("apiVersion: [unclosed", "not valid YAML"),
    ])
    func rejected(yaml: String, reason: String) {
        #expect {
            _ = try ProfileDocument.parse(yaml, source: "bad.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("bad.yaml") && text.contains(reason)
        }
    }

    @Test("A restarted collector keeps every profile's state and deadline, and judges the same")
    func survivesRestart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (registry, pod) = learnedRegistry()
        var learning = Workload()
        learning.deployment = "late"
        learning.containerID = "late-container"
        _ = registry.observe(learning.event(50, exec("/app", ["app"])))

        let store = try await Store.open(path: directory.file("patrol.db"))
        #expect(try await registry.save(to: store) == 2)
        #expect(try await registry.save(to: store) == 0, "nothing changed since")
        let original = decisions(registry, containerID: "after-restart")
        await store.close()

        let reopened = try await Store.open(path: directory.file("patrol.db"))
        let restarted = ProfileRegistry(configuration: tenSeconds)
        let restored = try await restarted.restore(from: reopened)
        #expect(restored.loaded == 2)
        #expect(restored.skipped.isEmpty)
        let states = restarted.profiles(now: start + 51_000_000_000).map { ($0.workload.name, $0.containers.first?.state) }
        #expect(states.map(\.0) == ["late", "web"])
        #expect(states.map(\.1) == [.learning, .final], "no profile falls back to learning, none ends early")
        #expect(decisions(restarted, containerID: "after-restart") == original)
        #expect(try await restarted.save(to: reopened) == 0, "a restore is not a change")
        _ = pod

        #expect(try await restarted.reset(WorkloadKey(namespace: "shop", kind: "Deployment", name: "web"), in: reopened))
        #expect(try await reopened.profiles().map(\.name) == ["late"])
        await reopened.close()
    }
}
