import AlertSinks
import EventModel
import Foundation
import Logging
import Store
import TestSupport

/// A store in a temporary directory plus outbox deliveries running in the background, as the collector
/// runs them; `commit` puts alerts into the outbox the way the ingest loop does.
struct DeliveryRig {
    let directory: TemporaryDirectory
    let store: Store
    let signal = OutboxSignal()

    static func make() async throws -> DeliveryRig {
        let directory = try TemporaryDirectory(prefix: "patrol-outbox")
        return DeliveryRig(directory: directory, store: try await Store.open(path: directory.file("patrol.db")))
    }

    func delivery(_ sink: any AlertSink, policy: OutboxDelivery.Policy = .fast, logger: Logger = quietLogger)
        -> OutboxDelivery
    {
        OutboxDelivery(sink: sink, store: store, signal: signal, policy: policy, logger: logger)
    }

    func commit(_ alerts: [Alert]) async throws {
        try await store.commit(IngestCommit(progress: [], counterDeltas: [:], alerts: alerts))
        signal.notify()
    }

    /// Runs `deliveries` while `body` runs, then cancels them.
    func running<T: Sendable>(_ deliveries: [OutboxDelivery], _ body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for delivery in deliveries { group.addTask { try await delivery.run() } }
            do {
                let result = try await body()
                group.cancelAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    func close() async {
        await store.close()
        directory.remove()
    }
}

extension OutboxDelivery.Policy {
    /// Short backoffs so retries happen within a test.
    static let fast = OutboxDelivery.Policy(
        batchSize: 100, initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(200))
}

let quietLogger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

/// Alerts with a distinct pod each: Alertmanager merges alerts with equal labels, and these must stay apart.
func distinctAlerts(_ count: Int, from start: Int = 0, time: UInt64 = WallClockNow.nanos) -> [Alert] {
    (start..<start + count).map { index in
        var alert = AlertFixtures.alert(index: index, time: time)
        alert.container?.podName = "web-\(index)"
        return alert
    }
}

enum WallClockNow {
    /// A recent event time (whole milliseconds: Alertmanager keeps milliseconds).
    static var nanos: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) * 1_000_000 - 60_000_000_000 }
}

/// Polls until `condition` holds or `timeout` passes (a guard against hanging, not a performance check).
func eventually(timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}
