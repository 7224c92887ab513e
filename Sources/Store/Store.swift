import Basics
import EventModel
import Foundation

/// Where one sensor boot's batches stand: everything up to `contiguous` is ingested, plus the sequences
/// in `above` that arrived out of order. Saved in the same transaction as the batch's effects.
public struct SensorProgress: Sendable, Hashable, Codable {
    public var sensorID: String
    public var bootID: String
    public var contiguous: UInt64
    public var above: [UInt64]

    public init(sensorID: String, bootID: String, contiguous: UInt64, above: [UInt64] = []) {
        self.sensorID = sensorID
        self.bootID = bootID
        self.contiguous = contiguous
        self.above = above
    }
}

/// Everything one accepted batch changes, committed atomically: after this returns, the batch may be acked.
public struct IngestCommit: Sendable {
    public var progress: [SensorProgress]
    /// Counter deltas, such as `events_ingested`.
    public var counterDeltas: [String: UInt64]
    /// Alerts raised while evaluating the batch; they enter the outbox.
    public var alerts: [Alert]

    public init(progress: [SensorProgress], counterDeltas: [String: UInt64], alerts: [Alert]) {
        self.progress = progress
        self.counterDeltas = counterDeltas
        self.alerts = alerts
    }
}

/// An alert in the outbox with its position. Positions only grow; each sink keeps a cursor into them.
public struct OutboxEntry: Sendable {
    public var position: Int64
    public var alert: Alert
}

/// The embedded store: SQLite in WAL mode, holding sensor progress, counters and the alert outbox.
///
/// Every call runs on the store's own thread, so SQLite never blocks the cooperative pool and the
/// connection needs no locking.
public final class Store: @unchecked Sendable {
    // `connection` is touched only on `executor`'s single thread.
    private let connection: SQLiteConnection
    private let executor: BlockingExecutor
    public let path: String

    private init(connection: SQLiteConnection, executor: BlockingExecutor) {
        self.connection = connection
        self.executor = executor
        self.path = connection.path
    }

    /// Opens (creating if needed) the store at `path`; `:memory:` gives a private in-memory store.
    public static func open(path: String) async throws(StoreError) -> Store {
        let executor = BlockingExecutor(name: "store")
        do {
            let connection = try await executor.run { () throws -> SQLiteConnection in
                let connection = try SQLiteConnection(path: path)
                try connection.execute("PRAGMA journal_mode=WAL")
                // NORMAL keeps every committed transaction across a process crash (SIGKILL); only a
                // power loss can lose the last ones, which is the usual trade for WAL.
                try connection.execute("PRAGMA synchronous=NORMAL")
                try Schema.migrate(connection)
                return connection
            }
            return Store(connection: connection, executor: executor)
        } catch let error as StoreError {
            executor.shutdown()
            throw error
        } catch {
            executor.shutdown()
            throw StoreError(.open, "cannot open store at \(path)", cause: .error(error))
        }
    }

    public func close() async {
        _ = try? await executor.run { self.connection.close() }
        executor.shutdown()
    }

    func onStoreThread<T: Sendable>(_ work: @escaping @Sendable (SQLiteConnection) throws -> T) async throws(StoreError) -> T {
        do {
            return try await executor.run { try work(self.connection) }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.query, "store operation failed", cause: .error(error))
        }
    }

    // MARK: Ingest

    public func sensorProgress() async throws(StoreError) -> [SensorProgress] {
        try await onStoreThread { db in
            var result: [SensorProgress] = []
            try db.run("SELECT sensor_id, boot_id, contiguous, above FROM sensor_progress") { row in
                let above = (try? JSONDecoder().decode([UInt64].self, from: Data(row.blob(3)))) ?? []
                result.append(
                    SensorProgress(
                        sensorID: row.text(0), bootID: row.text(1), contiguous: UInt64(row.integer(2)), above: above))
            }
            return result
        }
    }

    /// Commits one batch's effects in a single transaction.
    public func commit(_ ingest: IngestCommit) async throws(StoreError) {
        let encodedAlerts = try Self.encode(ingest.alerts)
        try await onStoreThread { db in
            try db.execute("BEGIN IMMEDIATE")
            do {
                for progress in ingest.progress {
                    let above = try JSONEncoder().encode(progress.above)
                    try db.run(
                        """
                        INSERT INTO sensor_progress(sensor_id, boot_id, contiguous, above) VALUES(?, ?, ?, ?)
                        ON CONFLICT(sensor_id, boot_id) DO UPDATE SET contiguous = excluded.contiguous, above = excluded.above
                        """,
                        [.text(progress.sensorID), .text(progress.bootID), .integer(Int64(progress.contiguous)),
                         .blob(Array(above))])
                }
                for (name, delta) in ingest.counterDeltas where delta > 0 {
                    try db.run(
                        "INSERT INTO counters(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                        [.text(name), .integer(Int64(delta))])
                }
                for (alert, body) in zip(ingest.alerts, encodedAlerts) {
                    try db.run(
                        "INSERT INTO outbox(alert_id, rule_id, namespace, time_ns, body) VALUES(?, ?, ?, ?, ?)",
                        [.text(alert.id), .text(alert.ruleID), .text(alert.container?.namespace ?? ""),
                         .integer(Int64(bitPattern: alert.time)), .blob(body)])
                }
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }

    public func counters() async throws(StoreError) -> [String: UInt64] {
        try await onStoreThread { db in
            var result: [String: UInt64] = [:]
            try db.run("SELECT name, value FROM counters") { row in result[row.text(0)] = UInt64(row.integer(1)) }
            return result
        }
    }

    // MARK: Outbox

    /// Alerts after `position`, oldest first.
    public func outbox(after position: Int64, limit: Int) async throws(StoreError) -> [OutboxEntry] {
        try await onStoreThread { db in
            var result: [OutboxEntry] = []
            try db.run(
                "SELECT position, body FROM outbox WHERE position > ? ORDER BY position LIMIT ?",
                [.integer(position), .integer(Int64(limit))]
            ) { row throws(StoreError) in
                result.append(OutboxEntry(position: row.integer(0), alert: try Self.decode(row.blob(1))))
            }
            return result
        }
    }

    /// The newest outbox position, 0 when empty.
    public func outboxHead() async throws(StoreError) -> Int64 {
        try await onStoreThread { db in
            var head: Int64 = 0
            try db.run("SELECT COALESCE(MAX(position), 0) FROM outbox") { row in head = row.integer(0) }
            return head
        }
    }

    /// How many alerts lie in `(after, through]`: what skipping that range drops.
    public func outboxCount(after position: Int64, through end: Int64) async throws(StoreError) -> Int {
        try await onStoreThread { db in
            var count: Int64 = 0
            try db.run(
                "SELECT COUNT(*) FROM outbox WHERE position > ? AND position <= ?", [.integer(position), .integer(end)]
            ) { row in count = row.integer(0) }
            return Int(count)
        }
    }

    public func sinkCursor(_ sink: String) async throws(StoreError) -> Int64 {
        try await onStoreThread { db in
            var cursor: Int64 = 0
            try db.run("SELECT position FROM sink_cursors WHERE sink = ?", [.text(sink)]) { row in
                cursor = row.integer(0)
            }
            return cursor
        }
    }

    public func setSinkCursor(_ sink: String, to position: Int64) async throws(StoreError) {
        try await onStoreThread { db in
            try db.run(
                "INSERT INTO sink_cursors(sink, position) VALUES(?, ?) ON CONFLICT(sink) DO UPDATE SET position = excluded.position",
                [.text(sink), .integer(position)])
        }
    }

    // MARK: Alert encoding

    private static func encode(_ alerts: [Alert]) throws(StoreError) -> [[UInt8]] {
        alerts.map(AlertCoding.encode)
    }

    private static func decode(_ body: [UInt8]) throws(StoreError) -> Alert {
        try AlertCoding.decode(body)
    }
}
