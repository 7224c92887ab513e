import EventModel
import Foundation
import Testing
import TestSupport
@testable import AlertSinks

@Suite struct AlertDocumentTests {
    @Test func jsonLineParsesAndCarriesEveryField() throws {
        let alert = AlertFixtures.alert(index: 7)
        let line = AlertDocument.json(alert)
        #expect(!line.contains("\n"))
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["id"] as? String == "alert-7")
        #expect(object["rule_id"] as? String == "R1000")
        #expect(object["severity"] as? String == "high")
        #expect(object["message"] as? String == alert.message)
        #expect(object["fix"] as? String == alert.fix)
        #expect(object["time"] as? String == "2023-11-14T22:13:20.123456Z")
        let container = try #require(object["container"] as? [String: Any])
        #expect(container["pod"] as? String == "web.v2")
        #expect(container["namespace"] as? String == "default")
        let process = try #require(object["process"] as? [String: Any])
        #expect(process["pid"] as? Int == 42)
        #expect((object["fields"] as? [String: String])?["path"] == "/dev/shm/true")
    }

    @Test("pod labels and the owner appear in the container object when the API supplied them")
    func labelsAndOwner() throws {
        var alert = AlertFixtures.alert()
        alert.container?.labels = ["app": "web", "tier": "front\"end"]
        alert.container?.ownerKind = "Deployment"
        alert.container?.ownerName = "web"
        let object = try #require(
            JSONSerialization.jsonObject(with: Data(AlertDocument.json(alert).utf8)) as? [String: Any])
        let container = try #require(object["container"] as? [String: Any])
        #expect(container["labels"] as? [String: String] == ["app": "web", "tier": "front\"end"])
        #expect(container["owner"] as? [String: String] == ["kind": "Deployment", "name": "web"])
        // Without them (no API configured), the keys are left out.
        let plain = try #require(
            JSONSerialization.jsonObject(with: Data(AlertDocument.json(AlertFixtures.alert()).utf8)) as? [String: Any])
        let plainContainer = try #require(plain["container"] as? [String: Any])
        #expect(plainContainer["labels"] == nil && plainContainer["owner"] == nil)
    }

    @Test func controlCharactersAreEscaped() throws {
        let alert = AlertFixtures.alert(message: "tab\there \u{1} bell \\ slash")
        let line = AlertDocument.json(alert)
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "tab\there \u{1} bell \\ slash")
    }
}
