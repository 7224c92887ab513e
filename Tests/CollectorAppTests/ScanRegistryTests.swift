import Basics
import EventModel
import Testing

@testable import CollectorApp

/// The collector's registry of on-demand scans, as a state machine: which node can take a scan, which directive
/// goes to which sensor and for how long, and how statuses and findings move a scan to its end.
@Suite struct ScanRegistryTests {
    static let second: UInt64 = 1_000_000_000
    let now: UInt64 = 1_800_000_000 * ScanRegistryTests.second
    var nodes: [ScanRegistry.Candidate] {
        [
            .init(sensorID: "sensor-a", node: "worker-1", lastSeen: now - 5 * Self.second, scannerHealth: 0),
            .init(sensorID: "sensor-old", node: "worker-1", lastSeen: now - 3600 * Self.second, scannerHealth: 0),
            .init(sensorID: "sensor-b", node: "worker-2", lastSeen: now - 300 * Self.second, scannerHealth: 0),
            .init(sensorID: "sensor-c", node: "worker-3", lastSeen: now, scannerHealth: nil),
            .init(sensorID: "sensor-d", node: "worker-4", lastSeen: now, scannerHealth: 2),
        ]
    }

    func status(
        _ scans: [ScanReport], sensor: String = "sensor-a", boot: String = "boot-1", reason: String = ""
    ) -> SensorStatus {
        SensorStatus(sensorID: sensor, bootID: boot, time: now, scans: scans, scannerHealthReason: reason)
    }

    @Test func aScanGoesToTheNodesLatestSensorAndOnlyThere() throws {
        let registry = ScanRegistry()
        let scan = try registry.start(
            node: "worker-1", path: "/srv", containerID: "", candidates: nodes, now: now, id: "scan-1"
        ).get()
        #expect(scan.sensorID == "sensor-a")
        #expect(registry.directives(for: "sensor-a") == [.scan(scanID: "scan-1", path: "/srv", containerID: "")])
        #expect(registry.directives(for: "sensor-old").isEmpty)
        #expect(registry.scan(id: "scan-1")?.state(now: now, grace: .seconds(30)) == .queued)
    }

    @Test func unknownDisconnectedOrScannerlessNodesAreRefusedWithTheReason() {
        let registry = ScanRegistry(connectedWithin: .seconds(60))
        func refusal(_ node: String, path: String = "") -> ScanRegistry.Refusal? {
            if case .failure(let refusal) = registry.start(
                node: node, path: path, containerID: "", candidates: nodes, now: now)
            {
                return refusal
            }
            return nil
        }
        guard case .noSensor(let unknown)? = refusal("nowhere") else {
            Issue.record("an unknown node is not refused as such")
            return
        }
        #expect(unknown.contains("no sensor on node 'nowhere'") && unknown.contains("worker-1, worker-2"))
        guard case .noSensor(let stale)? = refusal("worker-2") else {
            Issue.record("a sensor not heard from for 300 s counts as connected")
            return
        }
        #expect(stale.contains("not connected: last heard from 300s ago"))
        guard case .scannerUnavailable(let off)? = refusal("worker-3") else {
            Issue.record("a sensor without a scanner is not refused")
            return
        }
        #expect(off.contains("has no malware scanner"))
        registry.record(status: status([], sensor: "sensor-d", reason: "broken.ndb: malformed database"), now: now)
        guard case .scannerUnavailable(let unhealthy)? = refusal("worker-4") else {
            Issue.record("an unhealthy scanner is not refused")
            return
        }
        #expect(unhealthy.hasSuffix("is unhealthy: broken.ndb: malformed database"))
        #expect(refusal("") == .invalid("a scan needs a node (--node)"))
        #expect(refusal("worker-1", path: "/srv/../etc") == .invalid("path '/srv/../etc' contains '..'"))
        #expect(registry.scans().isEmpty)
    }

    @Test func theDirectiveIsRepeatedUntilAStatusListsTheScanThenProgressAndFindingsFinishIt() throws {
        let registry = ScanRegistry(findingsGrace: .seconds(30))
        _ = try registry.start(node: "worker-1", path: "/srv", containerID: "", candidates: nodes, now: now, id: "s1")
            .get()
        // Replies whose directive was lost: the next reply carries it again.
        #expect(registry.directives(for: "sensor-a").count == 1)
        registry.record(status: status([]), now: now)
        #expect(registry.directives(for: "sensor-a").count == 1)

        registry.record(
            status: status([ScanReport(scanID: "s1", state: .running, filesSeen: 40, filesScanned: 10)]), now: now)
        #expect(registry.directives(for: "sensor-a").isEmpty)
        var scan = try #require(registry.scan(id: "s1"))
        #expect(scan.state(now: now, grace: .seconds(30)) == .running)
        #expect(scan.report?.filesScanned == 10)

        // Finished with one finding whose event has not arrived yet: still shown running, for at most the grace.
        registry.record(
            status: status([
                ScanReport(
                    scanID: "s1", state: .finished, filesSeen: 41, filesScanned: 41, findings: 1, startedAt: now,
                    finishedAt: now)
            ]), now: now)
        scan = try #require(registry.scan(id: "s1"))
        #expect(scan.state(now: now, grace: .seconds(30)) == .running)
        #expect(scan.state(now: now + 31 * Self.second, grace: .seconds(30)) == .finished)

        let result = ScanResult(
            scanID: "s1", path: "/srv/eicar.com", signature: "Patrol.Test.EICAR.UNOFFICIAL", sha256: "ab12",
            sizeBytes: 68, partOfImage: false)
        let event = Event(time: now, node: "worker-1", process: EventModel.ProcessInfo(), payload: .scanResult(result))
        let other = ScanResult(
            scanID: "scheduled-1", path: "/x", signature: "y", sha256: "z", sizeBytes: 1, partOfImage: false)
        let unrelated = Event(
            time: now, node: "worker-1", process: EventModel.ProcessInfo(), payload: .scanResult(other))
        registry.record(events: [event, event, unrelated], sensorID: "sensor-a")
        // The same batch again (its ack was lost) adds nothing.
        registry.record(events: [event], sensorID: "sensor-a")
        scan = try #require(registry.scan(id: "s1"))
        #expect(scan.findings.map(\.path) == ["/srv/eicar.com"])
        #expect(scan.findings.first?.sha256 == "ab12")
        #expect(scan.state(now: now, grace: .seconds(30)) == .finished)
    }

    @Test func aSensorThatRestartsMidScanFailsItAndARefusalCarriesTheSensorsReason() throws {
        let registry = ScanRegistry()
        _ = try registry.start(node: "worker-1", path: "", containerID: "", candidates: nodes, now: now, id: "s1")
            .get()
        _ = try registry.start(node: "worker-1", path: "/nope", containerID: "", candidates: nodes, now: now, id: "s2")
            .get()
        registry.record(
            status: status([
                ScanReport(scanID: "s1", state: .running),
                ScanReport(scanID: "s2", state: .failed, error: "no signature database loaded"),
            ]), now: now)
        #expect(registry.scan(id: "s2")?.state(now: now, grace: .seconds(30)) == .failed)
        #expect(registry.scan(id: "s2")?.error == "no signature database loaded")

        registry.record(hello: SensorHello(sensorID: "sensor-a", bootID: "boot-2", version: "1"))
        let lost = try #require(registry.scan(id: "s1"))
        #expect(lost.state(now: now, grace: .seconds(30)) == .failed)
        #expect(lost.error.contains("the sensor restarted"))
        // A finished scan stays finished across the restart.
        #expect(registry.scan(id: "s2")?.error == "no signature database loaded")
        #expect(registry.scans(node: "worker-1").map(\.id) == ["s1", "s2"])
        #expect(registry.scans(node: "worker-2").isEmpty)
    }
}
