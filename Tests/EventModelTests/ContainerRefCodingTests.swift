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

        let minimal = try JSONDecoder().decode(ContainerRef.self, from: Data(#"{"containerID":"c2"}"#.utf8))
        #expect(minimal == ContainerRef(containerID: "c2"))

        let labelled = ContainerRef(
            containerID: "c3", podUID: "u3", labels: ["app": "web"], ownerKind: "Deployment", ownerName: "web")
        let again = try JSONDecoder().decode(ContainerRef.self, from: JSONEncoder().encode(labelled))
        #expect(again == labelled)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ContainerRef.self, from: Data(#"{"podName":"no-id"}"#.utf8))
        }
    }
}
