import EventModel
import Foundation
import Logging
import TestSupport
import KubernetesAPI
import Testing

@testable import SensorApp

/// Labels and owners from the Kubernetes API on events captured live from real runc containers.
///
/// The container's `io.kubernetes.pod.uid` annotation (and its kubelet-style cgroup path) carries a pod UID that the
/// test API server also serves, with labels and a ReplicaSet whose controller is a Deployment, as a kubelet's node
/// would look. The API is then made to fail: capture must not notice beyond losing the labels of pods it has not
/// listed yet.
@Suite(.serialized) struct KubernetesIdentityTests {
    @Test(.timeLimit(.minutes(3))) func execCarriesPodLabelsAndOwnerAndSurvivesAnOutage() async throws {
        guard getuid() == 0 else {
            print("skipping KubernetesIdentityTests: needs root to load BPF and run runc (uid \(getuid()))")
            return
        }
        if let reason = RuncContainer.unavailableReason {
            print("skipping KubernetesIdentityTests: \(reason)")
            return
        }
        let node = "test-node"
        let api = try KubernetesAPITestServer(token: "sensor-token")
        defer { api.stop() }
        let directory = try TemporaryDirectory(prefix: "patrol-kube")
        defer { directory.remove() }
        try Data("sensor-token\n".utf8).write(to: URL(fileURLWithPath: directory.file("token")))

        let webUID = RuncContainer.newPodUID()
        api.addPod(
            .init(
                uid: webUID, name: "web-7d4b9-x2x", namespace: "shop", node: node,
                labels: ["app": "web", "tier": "frontend"], owner: .init(kind: "ReplicaSet", name: "web-7d4b9")))
        api.addReplicaSet(.init(name: "web-7d4b9", namespace: "shop", owner: .init(kind: "Deployment", name: "web")))

        let watcher = KubernetesPodWatcher(
            configuration: KubernetesAPIConfiguration(
                baseURL: api.baseURL, tokenFile: directory.file("token"), nodeName: node, listInterval: .seconds(1),
                requestTimeout: .seconds(5),
                retryDelay: .milliseconds(100), maxRetryDelay: .seconds(1)),
            index: PodIndex(), logger: Logger(label: "test.kube"))
        let resolver = ContainerResolver(pods: watcher.index)
        let capture = try await offPool {
            try LiveCapture(
                configuration: LiveCaptureConfiguration(dedupWindow: .zero), node: node, resolver: resolver)
        }
        let collected = Collected()
        let web = RuncContainer.Options(
            podName: "web-7d4b9-x2x", namespace: "shop", podUID: webUID, containerName: "nginx")
        // Started while the API is down: the API learns of it only after the outage.
        let lateUID = RuncContainer.newPodUID()
        let late = RuncContainer.Options(podName: "late-pod", namespace: "shop", podUID: lateUID, containerName: "app")

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await capture.run(batchSize: 16) { collected.append($0) } }
            group.addTask { try await watcher.run() }
            defer { group.cancelAll() }
            try await waitUntil("the first pod list") { watcher.index.generation >= 1 }

            // 1. The API knows the pod: the exec carries its labels and its Deployment.
            try await RuncContainer.with(web) { container in
                try await waitUntilNamed(container, resolver)
                _ = try await container.exec(["/bin/busybox", "echo", "kube-marker-web"])
            }
            let webEvent = try await marker("kube-marker-web", in: collected)
            #expect(webEvent.container?.podUID == webUID)
            #expect(webEvent.container?.podName == "web-7d4b9-x2x")
            #expect(webEvent.container?.containerName == "nginx")
            #expect(webEvent.container?.labels == ["app": "web", "tier": "frontend"])
            #expect(webEvent.container?.ownerKind == "Deployment")
            #expect(webEvent.container?.ownerName == "web")

            // 2. The API fails (503) while a new pod starts: its events keep flowing with the identity the
            //    annotations give, and the failures are counted.
            api.failure = .status(503)
            let failuresBefore = watcher.stats.errors["http_5xx", default: 0]
            api.addPod(
                .init(
                    uid: lateUID, name: "late-pod", namespace: "shop", node: node, labels: ["app": "late"],
                    owner: .init(kind: "StatefulSet", name: "late")))
            // The open watch is cut too: the pod cannot arrive until the API answers again.
            try await waitUntil("a failed request") { watcher.stats.errors["http_5xx", default: 0] > failuresBefore }
            try await RuncContainer.with(late) { container in
                try await waitUntilNamed(container, resolver)
                _ = try await container.exec(["/bin/busybox", "echo", "kube-marker-outage"])
                let outageEvent = try await marker("kube-marker-outage", in: collected)
                #expect(outageEvent.container?.podUID == lateUID)
                #expect(outageEvent.container?.podName == "late-pod")
                #expect(outageEvent.container?.namespace == "shop")
                #expect(outageEvent.container?.containerName == "app")
                #expect(outageEvent.container?.labels == [:])
                #expect(outageEvent.container?.ownerKind == "")
                #expect(watcher.stats.errors["http_5xx", default: 0] >= 1)
                #expect(watcher.stats.lastError?.contains("HTTP 503") == true)

                // 3. The API is back: the reopened watch brings the pod, and later events carry its labels.
                api.failure = nil
                try await waitUntil("the pod to be listed after the outage") {
                    watcher.index.pod(uid: lateUID) != nil
                }
                _ = try await container.exec(["/bin/busybox", "echo", "kube-marker-recovered"])
            }
            let recovered = try await marker("kube-marker-recovered", in: collected)
            #expect(recovered.container?.labels == ["app": "late"])
            #expect(recovered.container?.ownerKind == "StatefulSet")
            #expect(recovered.container?.ownerName == "late")
        }
        // Host activity stays the host's, API or not.
        #expect(collected.all.contains { $0.container == nil })
    }
}

private func marker(_ name: String, in collected: Collected) async throws -> Event {
    for _ in 0..<200 {
        let found = collected.all.first { event in
            guard case .exec(let exec) = event.payload else { return false }
            return exec.argv.last == name && exec.argv.count == 3
        }
        if let found { return found }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw KubernetesTestFailure(description: "the exec of \(name) never reached the capture")
}

/// Events that arrive before the runtime has written the container's state carry only its id (docs/containers.md);
/// wait until the resolver has read it, so the checks below are about the API, not about that gap. The container
/// name is the sign: the pod name may already come from the API.
private func waitUntilNamed(_ container: RuncContainer, _ resolver: ContainerResolver) async throws {
    try await waitUntil("the runtime state of \(container.id)") {
        let resolved = resolver.container(forCgroup: container.cgroupID ?? 0, pid: container.initPID)
        return !(resolved?.containerName ?? "").isEmpty
    }
}

private struct KubernetesTestFailure: Error, CustomStringConvertible {
    var description: String
}
