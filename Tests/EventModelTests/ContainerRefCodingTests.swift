import EventModel
import Foundation
import Testing

/// Replay files and JSON captures name containers by hand, before and after labels and owners existed.
@Suite struct ContainerRefCodingTests {
    @Test("a container without labels or owner decodes with them empty; with them, they are kept")
    func labelsAndOwnerAreOptional() throws {
        let old = #"{"runtime":"containerd","containerID":"c1","podName":"web","namespace":"shop","#
            + #""containerName":"nginx","podUID":"u1","image":"nginx:1.25"}"#
        let plain = try JSONDecoder().decode(ContainerRef.self, from: Data(old.utf8))
        #expect(plain.podName == "web" && plain.labels.isEmpty && plain.ownerKind.isEmpty && plain.ownerName.isEmpty)
        #expect(!plain.runningAtSensorStart, "files from before the flag: not known to predate the sensor")

        let minimal = try JSONDecoder().decode(ContainerRef.self, from: Data(#"{"containerID":"c2"}"#.utf8))
        #expect(minimal == ContainerRef(containerID: "c2"))

        let labelled = ContainerRef(
            containerID: "c3", podUID: "u3", labels: ["app": "web"], ownerKind: "Deployment", ownerName: "web")
        let again = try JSONDecoder().decode(ContainerRef.self, from: JSONEncoder().encode(labelled))
        #expect(again == labelled)
        let running = ContainerRef(containerID: "c4", runningAtSensorStart: true)
        let runningAgain = try JSONDecoder().decode(ContainerRef.self, from: JSONEncoder().encode(running))
        #expect(runningAgain.runningAtSensorStart && runningAgain == running)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ContainerRef.self, from: Data(#"{"podName":"no-id"}"#.utf8))
        }
    }

    @Test("copies of a container are independent values: changing one leaves the others as they were")
    func copiesAreIndependent() throws {
        let original = ContainerRef(
            runtime: "containerd", containerID: "c1", podUID: "u1", podName: "web", namespace: "shop",
            containerName: "nginx", image: "nginx:1.25", labels: ["app": "web"], ownerKind: "Deployment",
            ownerName: "web")
        var copy = original
        #expect(copy == original)
        copy.labels["tier"] = "front"
        copy.image = "nginx:1.26"
        #expect(original.labels == ["app": "web"] && original.image == "nginx:1.25")
        #expect(copy.labels == ["app": "web", "tier": "front"] && copy.image == "nginx:1.26")
        #expect(copy != original)
        var running = original
        running.runningAtSensorStart = true
        #expect(!original.runningAtSensorStart && running != original)
        // Equal values built separately are equal and hash alike (sets and dictionaries key on them).
        let twin = ContainerRef(
            runtime: "containerd", containerID: "c1", podUID: "u1", podName: "web", namespace: "shop",
            containerName: "nginx", image: "nginx:1.25", labels: ["app": "web"], ownerKind: "Deployment",
            ownerName: "web")
        #expect(twin == original && Set([twin, original, copy]).count == 2)
        // JSON carries every field under its name, as before.
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(original)) as? [String: Any]
        #expect(
            Set((object ?? [:]).keys) == [
                "runtime", "containerID", "podUID", "podName", "namespace", "containerName", "image", "labels",
                "ownerKind", "ownerName", "runningAtSensorStart",
            ])
        #expect(object?["image"] as? String == "nginx:1.25")
        // Printed (logs, test failures) with its fields, like any plain struct.
        #expect(String(describing: original).contains(#"containerID: "c1""#))
        #expect(String(describing: original).contains(#"ownerKind: "Deployment""#))
    }
}
