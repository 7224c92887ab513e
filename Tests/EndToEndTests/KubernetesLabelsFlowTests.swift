import Foundation
import Testing
import TestSupport

/// Pod labels and the owner a sensor learnt from the Kubernetes API travel through the real transport to the
/// collector's rule engine and come out in the alert document.
@Suite struct KubernetesLabelsFlowTests {
    @Test(.timeLimit(.minutes(2))) func alertShowsPodLabelsAndOwner() async throws {
        let harness = try Harness("kube-labels")
        defer { harness.directory.remove() }
        let container = #"{"runtime":"containerd","containerID":"4f1c2b","podName":"web-7d4b9-x2x","#
            + #""namespace":"shop","containerName":"nginx","podUID":"pod-uid-1","image":"nginx:1.25","#
            + #""labels":{"app":"web","tier":"frontend"},"ownerKind":"Deployment","ownerName":"web"}"#
        let replay = harness.directory.file("labelled.jsonl")
        let line = #"{"time":1732579200000000000,"node":"node-1","#
            + #""process":{"pid":100,"ppid":1,"uid":0,"comm":"true","exe":"/bin/sh","cwd":"/"},"#
            + #""container":\#(container),"payload":{"exec":{"path":"/dev/shm/true","argv":["/dev/shm/true"]}}}"#
        try (line + "\n").write(toFile: replay, atomically: true, encoding: .utf8)

        let collector = try harness.collector(["--stdout"])
        let sensor = try harness.sensor(replay: replay)
        #expect(await sensor.waitForExit(timeout: .seconds(60)) == 0, "sensor log:\n\(sensor.standardError.suffix(2000))")
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(60)) == 0, "collector log:\n\(collector.standardError.suffix(2000))")

        let alerts = collector.standardOutput.split(separator: "\n").compactMap { line in
            try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
        let alert = try #require(alerts.first { $0["rule_id"] as? String == "R1000" }, "\(collector.standardOutput)")
        let object = try #require(alert["container"] as? [String: Any])
        #expect(object["labels"] as? [String: String] == ["app": "web", "tier": "frontend"])
        #expect(object["owner"] as? [String: String] == ["kind": "Deployment", "name": "web"])
        #expect(object["pod"] as? String == "web-7d4b9-x2x")
    }
}
