import Basics
import EventModel
import Foundation
import Synchronization

/// Malware scans started through the admin service (`patrolctl scans start`), and what the sensors said about them.
///
/// Kept in memory: a collector restart forgets its scans (a sensor still runs one it was given, and its findings
/// still become alerts, which are stored). The flow (docs/malware.md#on-demand-scans):
///
/// 1. `start` checks that the node has a connected sensor with a working scanner and queues the scan.
/// 2. `directives(for:)` puts a `ScanDirective` into every reply to that sensor (batch acks, hello and status
///    replies) until a status lists the scan: a reply lost on the way costs nothing, and the sensor ignores a scan id
///    it has already taken.
/// 3. `record(status:)` takes the sensor's progress (state, counters) from each status; `record(events:)` links the
///    `scan_result` events carrying the scan id as findings.
///
/// A scan the sensor says is finished is shown as running until all its findings have arrived (they travel in
/// batches, apart from the status), or until `findingsGrace` has passed, so `scans get` never shows a finished scan
/// with findings still on the way.
final class ScanRegistry: Sendable {
    /// A sensor as the registry needs it to accept a scan.
    struct Candidate: Sendable, Hashable {
        var sensorID: String
        var node: String
        /// When the collector last heard from it (nanoseconds since the epoch).
        var lastSeen: EpochNanoseconds
        /// `scanner_health` from its latest status (0 healthy, 1 degraded, 2 unhealthy); nil: no scanner reported.
        var scannerHealth: UInt64?
    }

    /// Why a scan was not started.
    enum Refusal: Error, Equatable {
        /// No sensor on the node, or none heard from recently; the message says which.
        case noSensor(String)
        /// The sensor has no scanner, or it is unhealthy.
        case scannerUnavailable(String)
        case invalid(String)
    }

    struct Finding: Sendable, Hashable {
        var path: String
        var signature: String
        var sha256: String
        var sizeBytes: UInt64
        var partOfImage: Bool
        var container: ContainerRef?
    }

    struct Scan: Sendable {
        var id: String
        var node: String
        var sensorID: String
        var path: String
        var containerID: String
        var requestedAt: EpochNanoseconds
        /// The sensor's latest word on it; nil until a status lists it.
        var report: ScanReport?
        /// The sensor boot that took the scan.
        var bootID: String?
        /// When the collector learned the sensor had finished (its own clock), for the findings grace.
        var sensorFinishedAt: EpochNanoseconds?
        var findings: [Finding] = []
        /// Set by the collector itself: the sensor restarted before the scan ended.
        var collectorError: String?

        /// The state to show at `now` (see the type's comment for the findings grace).
        func state(now: EpochNanoseconds, grace: Duration) -> ScanReport.State {
            if collectorError != nil { return .failed }
            guard let report else { return .queued }
            if report.state == .finished, Set(findings.map(\.path)).count < Int(clamping: report.findings),
                let finished = sensorFinishedAt, now < finished &+ Self.nanoseconds(grace)
            {
                return .running
            }
            return report.state
        }

        var error: String { collectorError ?? report?.error ?? "" }

        /// What the scan covers, for people: `/srv`, `container 3f2a…:/app`, `container 3f2a…`, `host`.
        var target: String {
            if !containerID.isEmpty {
                let short = String(containerID.prefix(12))
                return path.isEmpty ? "container \(short)" : "container \(short):\(path)"
            }
            return path.isEmpty ? "host" : path
        }

        static func nanoseconds(_ duration: Duration) -> UInt64 {
            let (seconds, attoseconds) = duration.components
            return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        }
    }

    private struct State {
        var scans: [String: Scan] = [:]
        /// Ids, oldest first.
        var order: [String] = []
        /// The latest scanner health reason per sensor (not in the store's registry).
        var scannerReasons: [String: String] = [:]
    }

    private let state = Mutex(State())
    /// A sensor heard from within this long counts as connected.
    let connectedWithin: Duration
    let findingsGrace: Duration
    /// Scans kept; the oldest finished ones are forgotten beyond it.
    let capacity: Int

    init(connectedWithin: Duration = .seconds(60), findingsGrace: Duration = .seconds(30), capacity: Int = 1000) {
        self.connectedWithin = connectedWithin
        self.findingsGrace = findingsGrace
        self.capacity = capacity
    }

    /// Queues a scan on the sensor of `node` (a node name, or a sensor id). `candidates` are the sensors the
    /// collector knows; the one heard from last on the node is chosen.
    func start(
        node: String, path: String, containerID: String, candidates: [Candidate], now: EpochNanoseconds,
        id: String = ScanRegistry.newID()
    ) -> Result<Scan, Refusal> {
        guard !node.isEmpty else { return .failure(.invalid("a scan needs a node (--node)")) }
        if !path.isEmpty, !path.hasPrefix("/") && containerID.isEmpty {
            return .failure(.invalid("path '\(path)' is not absolute"))
        }
        if path.split(separator: "/").contains("..") {
            return .failure(.invalid("path '\(path)' contains '..'"))
        }
        let onNode = candidates.filter { $0.node == node || $0.sensorID == node }
        guard let sensor = onNode.max(by: { $0.lastSeen < $1.lastSeen }) else {
            let known = Set(candidates.map(\.node).filter { !$0.isEmpty }).sorted()
            return .failure(
                .noSensor(
                    "no sensor on node '\(node)' has connected to this collector"
                        + (known.isEmpty ? "" : " (known nodes: \(known.joined(separator: ", ")))")))
        }
        let window = Scan.nanoseconds(connectedWithin)
        guard now <= sensor.lastSeen || now - sensor.lastSeen <= window else {
            let ago = (now - sensor.lastSeen) / 1_000_000_000
            return .failure(
                .noSensor(
                    "the sensor on node '\(node)' (\(sensor.sensorID)) is not connected: last heard from \(ago)s ago"))
        }
        switch sensor.scannerHealth {
        case nil:
            return .failure(
                .scannerUnavailable(
                    "the sensor on node '\(node)' (\(sensor.sensorID)) has no malware scanner "
                        + "(started with --scan-database off, or no database found)"))
        case 2?:
            let reason = state.withLock { $0.scannerReasons[sensor.sensorID] } ?? ""
            return .failure(
                .scannerUnavailable(
                    "the scanner of the sensor on node '\(node)' (\(sensor.sensorID)) is unhealthy"
                        + (reason.isEmpty ? "" : ": \(reason)")))
        default:
            break
        }
        let scan = Scan(
            id: id, node: sensor.node.isEmpty ? node : sensor.node, sensorID: sensor.sensorID, path: path,
            containerID: containerID, requestedAt: now)
        state.withLock { state in
            state.scans[id] = scan
            state.order.append(id)
            if state.order.count > capacity {
                // Forget the oldest scans that can no longer change; running ones stay.
                let scans = state.scans
                let ended = state.order.filter { id in
                    guard let old = scans[id] else { return true }
                    return old.report?.state.isFinal == true || old.collectorError != nil
                }
                let forgotten = Set(ended.prefix(state.order.count - capacity))
                state.order.removeAll { forgotten.contains($0) }
                for id in forgotten { state.scans[id] = nil }
            }
        }
        return .success(scan)
    }

    /// The scan directives to send to `sensorID` now: its scans that no status has listed yet.
    func directives(for sensorID: String) -> [SensorDirective] {
        state.withLock { state in
            state.order.compactMap { id in
                guard let scan = state.scans[id], scan.sensorID == sensorID, scan.report == nil,
                    scan.collectorError == nil
                else { return nil }
                return .scan(scanID: scan.id, path: scan.path, containerID: scan.containerID)
            }
        }
    }

    /// Takes a sensor's status: progress of the scans it lists, its scanner's health reason. A scan the sensor had
    /// taken under another boot and not finished is failed: the new boot does not know it.
    func record(status: SensorStatus, now: EpochNanoseconds) {
        state.withLock { state in
            state.scannerReasons[status.sensorID] = status.scannerHealthReason
            let reports = Dictionary(status.scans.map { ($0.scanID, $0) }, uniquingKeysWith: { $1 })
            for id in state.order {
                guard var scan = state.scans[id], scan.sensorID == status.sensorID else { continue }
                if let report = reports[id] {
                    if report.state.isFinal, scan.report?.state.isFinal != true { scan.sensorFinishedAt = now }
                    scan.report = report
                    scan.bootID = status.bootID
                } else if Self.lostWithBoot(scan, bootID: status.bootID) {
                    scan.collectorError = "the sensor restarted (new boot \(status.bootID)) before the scan finished"
                }
                state.scans[id] = scan
            }
        }
    }

    /// A hello from a new boot ends the scans the old boot had taken and not finished.
    func record(hello: SensorHello) {
        state.withLock { state in
            for id in state.order {
                guard var scan = state.scans[id], scan.sensorID == hello.sensorID,
                    Self.lostWithBoot(scan, bootID: hello.bootID)
                else { continue }
                scan.collectorError = "the sensor restarted (new boot \(hello.bootID)) before the scan finished"
                state.scans[id] = scan
            }
        }
    }

    private static func lostWithBoot(_ scan: Scan, bootID: String) -> Bool {
        guard let taken = scan.bootID, taken != bootID, scan.collectorError == nil else { return false }
        return scan.report?.state.isFinal != true
    }

    /// Links `scan_result` events of committed batches to their scans. A batch sent again (a lost ack) adds nothing:
    /// a finding is kept once per path, hash and container.
    func record(events: [Event], sensorID: String) {
        let results = events.compactMap { event -> (ScanResult, ContainerRef?)? in
            guard case .scanResult(let result) = event.payload else { return nil }
            return (result, event.container)
        }
        if results.isEmpty { return }
        state.withLock { state in
            for (result, container) in results {
                guard var scan = state.scans[result.scanID], scan.sensorID == sensorID else { continue }
                let finding = Finding(
                    path: result.path, signature: result.signature, sha256: result.sha256,
                    sizeBytes: result.sizeBytes, partOfImage: result.partOfImage, container: container)
                if scan.findings.contains(where: {
                    $0.path == finding.path && $0.sha256 == finding.sha256
                        && $0.container?.containerID == finding.container?.containerID
                }) {
                    continue
                }
                scan.findings.append(finding)
                state.scans[result.scanID] = scan
            }
        }
    }

    /// Scans, oldest first; only those of `node` when given.
    func scans(node: String? = nil) -> [Scan] {
        state.withLock { state in
            state.order.compactMap { state.scans[$0] }.filter { node == nil || $0.node == node || $0.sensorID == node }
        }
    }

    func scan(id: String) -> Scan? { state.withLock { $0.scans[id] } }

    /// The latest scanner health reason a sensor reported ("" when healthy); nil before its first status.
    func scannerReason(sensorID: String) -> String? { state.withLock { $0.scannerReasons[sensorID] } }

    /// `scan-` and 12 hex digits.
    static func newID() -> String {
        "scan-" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
    }
}
