import EventModel
import Foundation
import TestSupport
import Testing

@testable import Store

@Suite struct AlertCodingTests {
    static var fullAlert: Alert {
        var alert = AlertFixtures.alert(index: 3)
        alert.container?.labels = ["app": "web", "tier": "front\"end"]
        alert.container?.ownerKind = "Deployment"
        alert.container?.ownerName = "web"
        alert.process.pid = -1
        alert.process.mountNamespace = .max
        alert.fields["emoji"] = "🚨 ünïcode"
        alert.count = 7
        alert.tags = []
        alert.firstSeen = 1_700_000_000_000_000_001
        alert.lastSeen = 1_700_000_060_000_000_002
        alert.malware = MalwareDetails(
            signature: "Eicar-Signature", path: "/var/lib/containerd/x/upper/tmp/eicar.com", sha256: String(repeating: "ab", count: 32),
            sizeBytes: 68, inImage: false)
        return alert
    }

    @Test func roundTripsEveryField() throws {
        for alert in [
            Self.fullAlert, AlertFixtures.alert(index: 1),
            {
                var a = Self.fullAlert
                a.container = nil
                return a
            }(),
        ] {
            #expect(try AlertCoding.decode(AlertCoding.encode(alert)) == alert)
        }
    }

    /// Rows of format 1 (before first/last seen and malware details) still decode, without those fields.
    @Test func decodesVersionOneRows() throws {
        var alert = Self.fullAlert
        alert.firstSeen = nil
        alert.lastSeen = nil
        alert.malware = nil
        var bytes = AlertCoding.encode(alert)
        #expect(bytes.suffix(3) == [0, 0, 0])
        bytes.removeLast(3)
        bytes[0] = 1
        #expect(try AlertCoding.decode(bytes) == alert)
    }

    /// Rows written as JSON before the binary format still decode.
    @Test func decodesEarlierJSONRows() throws {
        let alert = Self.fullAlert
        #expect(try AlertCoding.decode(Array(try JSONEncoder().encode(alert))) == alert)
    }

    @Test func truncatedOrUnknownRowsAreCorruptNotACrash() {
        let bytes = AlertCoding.encode(Self.fullAlert)
        for length in [1, 5, bytes.count / 2, bytes.count - 1] {
            #expect(throws: StoreError.self) { try AlertCoding.decode(Array(bytes.prefix(length))) }
        }
        #expect(throws: StoreError.self) { try AlertCoding.decode([9, 1, 2]) }
        #expect(throws: StoreError.self) { try AlertCoding.decode([]) }
    }

    /// The codec lists fields by hand: a field added to these types must be added to AlertCoding (and its
    /// version bumped) before this passes again, or the outbox would silently drop it.
    @Test func codecCoversEveryField() {
        let alert = Self.fullAlert
        #expect(Mirror(reflecting: alert).children.count == 17)
        #expect(Mirror(reflecting: alert.process).children.count == 9)
        // 11 with `runningAtSensorStart`, which the codec leaves out on purpose: it only tells the collector's
        // profiles that the sensor saw the container late, and means nothing to a sink (decoded alerts have false).
        #expect(Mirror(reflecting: alert.container!).children.count == 11)
    }
}
