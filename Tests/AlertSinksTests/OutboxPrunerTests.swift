import AlertSinks
import EventModel
import Store
import TestSupport
import Testing

@Suite struct OutboxPrunerTests {
    /// Alerts leave the outbox only when every configured sink has delivered them and they are out of the
    /// retention; a sink that is behind keeps them, and alerts inside the retention stay as history.
    @Test func prunesOnlyDeliveredAlertsPastTheRetention() async throws {
        let rig = try await DeliveryRig.make()
        let day: UInt64 = 86_400 * 1_000_000_000
        let now = 100 * day
        try await rig.commit((0..<1200).map { AlertFixtures.alert(index: $0, time: now - 30 * day) })
        try await rig.commit((1200..<1300).map { AlertFixtures.alert(index: $0, time: now - day) })
        try await rig.store.setSinkCursor("csv", to: 1300)
        try await rig.store.setSinkCursor("syslog", to: 700)
        let pruner = OutboxPruner(
            store: rig.store, sinks: ["csv", "syslog"], retention: .init(maxAge: .seconds(7 * 86_400), maxAlerts: nil),
            batchSize: 100, logger: quietLogger)
        // syslog has only 700: the 500 old alerts after it stay until it has them.
        #expect(try await pruner.pruneOnce(now: now) == 700)
        #expect(try await rig.store.outboxRowCount() == 600)
        try await rig.store.setSinkCursor("syslog", to: 1300)
        #expect(try await pruner.pruneOnce(now: now) == 500)
        // The last day's alerts are history inside the retention, delivered or not.
        let history = try await rig.store.outbox(after: 0, limit: 1000).map(\.alert.id)
        #expect(history == (1200..<1300).map { "alert-\($0)" })
        #expect(try await pruner.pruneOnce(now: now) == 0)
        // A count limit applies on top.
        let capped = OutboxPruner(
            store: rig.store, sinks: ["csv", "syslog"], retention: .init(maxAge: nil, maxAlerts: 10),
            logger: quietLogger)
        #expect(try await capped.pruneOnce(now: now) == 90)
        #expect(try await rig.store.outbox(after: 0, limit: 1000).map(\.position) == Array(1291...1300))
        await rig.close()
    }
}
