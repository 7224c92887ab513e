import Basics
import EventModel
import Foundation
import Synchronization

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
    // `connection` is touched only on `executor`'s single thread, `reader` only on `readExecutor`'s and
    // `checkpointer` only on `checkpointExecutor`'s.
    private let connection: SQLiteConnection
    private let executor: BlockingExecutor
    /// The sinks' reads of the outbox run on a connection and thread of their own (WAL readers never block
    /// the writer), so a sink decoding a batch never holds up an ingest commit. For `:memory:` (one private
    /// database per connection) it is the writer itself.
    private let reader: SQLiteConnection
    private let readExecutor: BlockingExecutor
    /// Checkpoints the WAL into the database off the commit path (nil for `:memory:`).
    private let checkpointer: SQLiteConnection?
    private let checkpointExecutor: BlockingExecutor?
    private let checkpointRunning = Atomic<Bool>(false)
    public let path: String

    /// WAL bytes after which a checkpoint is started: SQLite's own default threshold (1000 frames of 4 KiB pages),
    /// kept in bytes so the WAL on disk stays the same size whatever the page size.
    static let checkpointBytes = 1000 * 4096
    /// WAL length past which the store thread finishes a checkpoint itself, between two commits. Under steady
    /// commits the background checkpoint never finds every frame copied at a moment no commit follows, so the WAL
    /// never starts over and grows by every commit (234 MB for 100k alerts in `patrol-bench outbox`); a checkpoint
    /// on the writer's own thread copies the rest with no commit in between, and the next commit starts the WAL
    /// over, writing over the old frames instead of extending the file. One longer commit per this many bytes.
    static let walLimitBytes = 64 << 20
    /// `checkpointBytes` and `walLimitBytes` in frames of this database's page size.
    private let checkpointFrames: Int
    private let walLimitFrames: Int
    /// The WAL's length in frames at the last catch-up checkpoint; store thread only.
    private var caughtUpFrames = 0
    /// The last outbox position handed out (committed), as in `outbox_head`; store thread only.
    private var committedHead: Int64

    private init(
        connection: SQLiteConnection, executor: BlockingExecutor, reader: SQLiteConnection?,
        readExecutor: BlockingExecutor?, checkpointer: SQLiteConnection?, checkpointExecutor: BlockingExecutor?,
        pageSize: Int, walLimitBytes: Int, outboxHead: Int64
    ) {
        self.committedHead = outboxHead
        self.checkpointFrames = max(1, Self.checkpointBytes / max(512, pageSize))
        self.walLimitFrames = max(1, walLimitBytes / max(512, pageSize))
        self.connection = connection
        self.executor = executor
        self.reader = reader ?? connection
        self.readExecutor = readExecutor ?? executor
        self.checkpointer = checkpointer
        self.checkpointExecutor = checkpointExecutor
        self.path = connection.path
    }

    /// Opens (creating if needed) the store at `path`; `:memory:` gives a private in-memory store.
    public static func open(path: String) async throws(StoreError) -> Store {
        try await open(path: path, walLimitBytes: walLimitBytes)
    }

    /// `walLimitBytes` other than the default only for tests, which cannot write 64 MB of WAL quickly.
    static func open(path: String, walLimitBytes: Int) async throws(StoreError) -> Store {
        let executor = BlockingExecutor(name: "store")
        let inMemory = path == ":memory:" || path.isEmpty
        let readExecutor = inMemory ? nil : BlockingExecutor(name: "store-read")
        // The lowest CPU priority: a checkpoint beside the commits took a core from the ingest path's threads
        // (the store thread, and the task awaiting its commit), which set the slowest commits' latency.
        let checkpointExecutor = inMemory ? nil : BlockingExecutor(name: "store-checkpoint", niceness: 19)
        func shutdownAll() {
            executor.shutdown()
            readExecutor?.shutdown()
            checkpointExecutor?.shutdown()
        }
        do {
            let (connection, pageSize, head) = try await executor.run { () throws -> (SQLiteConnection, Int, Int64) in
                let connection = try SQLiteConnection(path: path)
                // 16 KiB pages: a commit of a batch's alerts appends fewer, larger WAL frames (fewer pwrites and
                // frame headers, fewer B-tree splits). Takes effect only when the file is created; an existing
                // store keeps its page size.
                try connection.execute("PRAGMA page_size=16384")
                try connection.execute("PRAGMA journal_mode=WAL")
                // NORMAL keeps every committed transaction across a process crash (SIGKILL); only a
                // power loss can lose the last ones, which is the usual trade for WAL.
                try connection.execute("PRAGMA synchronous=NORMAL")
                try Schema.migrate(connection)
                if !inMemory {
                    try connection.takeOverCheckpoints()
                    Self.zeroFillWAL(path: path + "-wal", through: walLimitBytes + Self.checkpointBytes)
                }
                var pageSize = 4096
                try connection.run("PRAGMA page_size") { row in pageSize = Int(row.integer(0)) }
                return (connection, pageSize, try Self.readOutboxHead(connection))
            }
            var reader: SQLiteConnection?
            var checkpointer: SQLiteConnection?
            if let readExecutor, let checkpointExecutor {
                reader = try await readExecutor.run { try SQLiteConnection(path: path) }
                checkpointer = try await checkpointExecutor.run { () throws -> SQLiteConnection in
                    let connection = try SQLiteConnection(path: path)
                    try connection.execute("PRAGMA synchronous=NORMAL")
                    return connection
                }
            }
            return Store(
                connection: connection, executor: executor, reader: reader, readExecutor: readExecutor,
                checkpointer: checkpointer, checkpointExecutor: checkpointExecutor, pageSize: pageSize,
                walLimitBytes: walLimitBytes, outboxHead: head)
        } catch let error as StoreError {
            shutdownAll()
            throw error
        } catch {
            shutdownAll()
            throw StoreError(.open, "cannot open store at \(path)", cause: .error(error))
        }
    }

    public func close() async {
        if let checkpointExecutor {
            _ = try? await checkpointExecutor.run { self.checkpointer?.close() }
            checkpointExecutor.shutdown()
        }
        if readExecutor !== executor {
            _ = try? await readExecutor.run { self.reader.close() }
            readExecutor.shutdown()
        }
        _ = try? await executor.run { self.connection.close() }
        executor.shutdown()
    }

    func onReadThread<T: Sendable>(
        _ work: @escaping @Sendable (SQLiteConnection) throws -> T
    ) async throws(StoreError) -> T {
        do {
            return try await readExecutor.run { try work(self.reader) }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.query, "store read failed", cause: .error(error))
        }
    }

    /// Called on the store thread after a commit: once the WAL is long enough, a passive checkpoint runs on the
    /// checkpoint thread (at most one at a time) while commits go on; past `walLimitBytes` the store thread
    /// finishes one itself, after which the WAL starts over.
    private func checkpointIfDue() {
        guard let checkpointExecutor else { return }
        let frames = connection.walFrames
        // A shorter WAL than at the last catch-up means it started over.
        if frames < caughtUpFrames { caughtUpFrames = 0 }
        if frames >= walLimitFrames, frames - caughtUpFrames >= checkpointFrames {
            // The background checkpoint runs at the lowest priority, so on busy cores it may hold SQLite's
            // checkpoint lock for a long time: stop it (it stops at the next frame it would copy) rather than find
            // the lock taken and let the WAL grow on.
            if checkpointRunning.exchange(true, ordering: .acquiringAndReleasing) {
                checkpointer?.interrupt()
                while checkpointRunning.exchange(true, ordering: .acquiringAndReleasing) { usleep(100) }
            }
            // No commit can run meanwhile (this is the store thread), so the checkpoint copies every frame (unless
            // a sink's read still holds an older snapshot: then this is tried again after `checkpointBytes` more)
            // and the next write transaction starts the WAL over.
            caughtUpFrames = frames
            try? connection.checkpointPassive()
            checkpointRunning.store(false, ordering: .releasing)
            return
        }
        guard frames >= checkpointFrames, !checkpointRunning.exchange(true, ordering: .acquiringAndReleasing)
        else { return }
        checkpointExecutor.submit {
            defer { self.checkpointRunning.store(false, ordering: .releasing) }
            try? self.checkpointer?.checkpointPassive()
        }
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
                var head = self.committedHead
                if !ingest.alerts.isEmpty {
                    // Positions are handed out here (not by AUTOINCREMENT) and the head written once per commit.
                    let insert = try db.prepared("INSERT INTO outbox(position, time_ns, body) VALUES(?, ?, ?)")
                    for (alert, body) in zip(ingest.alerts, encodedAlerts) {
                        head += 1
                        insert.bind(1, head)
                        insert.bind(2, Int64(bitPattern: alert.time))
                        try insert.execute(binding: 3, body)
                    }
                    let saveHead = try db.prepared("UPDATE outbox_head SET position = ?")
                    saveHead.bind(1, head)
                    try saveHead.execute()
                }
                try db.execute("COMMIT")
                self.committedHead = head
                self.checkpointIfDue()
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
        try await onReadThread { db in
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
        try await onReadThread { db in
            try Self.readOutboxHead(db)
        }
    }

    /// How many alerts lie in `(after, through]`: what skipping that range drops.
    public func outboxCount(after position: Int64, through end: Int64) async throws(StoreError) -> Int {
        try await onReadThread { db in
            var count: Int64 = 0
            try db.run(
                "SELECT COUNT(*) FROM outbox WHERE position > ? AND position <= ?", [.integer(position), .integer(end)]
            ) { row in count = row.integer(0) }
            return Int(count)
        }
    }

    /// Deletes at most `limit` outbox rows at or before `settled` (what every sink has delivered) that are
    /// older than `olderThan` (alert time) or not among the newest `keepNewest` rows; returns how many went.
    /// One call is one short transaction, so a caller prunes a large backlog in several calls between which
    /// ingest commits get the store thread.
    public func pruneOutbox(
        settled: Int64, olderThan cutoff: EpochNanoseconds?, keepNewest: Int?, limit: Int
    ) async throws(StoreError) -> Int {
        try await onStoreThread { db in
            var deleted = 0
            if let keepNewest {
                // Positions only grow, so the newest rows are the highest positions.
                var boundary: Int64 = 0
                try db.run(
                    "SELECT position FROM outbox ORDER BY position DESC LIMIT 1 OFFSET ?", [.integer(Int64(keepNewest))]
                ) { row in boundary = row.integer(0) }
                let through = min(boundary, settled)
                if through > 0 {
                    try db.run(
                        """
                        DELETE FROM outbox WHERE position IN
                            (SELECT position FROM outbox WHERE position <= ? ORDER BY position LIMIT ?)
                        """, [.integer(through), .integer(Int64(limit))])
                    deleted += db.changes
                }
            }
            if let cutoff, deleted < limit {
                // Through the time index: only rows past the age are visited, however many recent ones there are.
                try db.run(
                    """
                    DELETE FROM outbox WHERE position IN
                        (SELECT position FROM outbox WHERE time_ns < ? AND position <= ? ORDER BY time_ns LIMIT ?)
                    """, [.integer(Int64(bitPattern: min(cutoff, UInt64(Int64.max)))), .integer(settled),
                          .integer(Int64(limit - deleted))])
                deleted += db.changes
            }
            return deleted
        }
    }

    /// The alerts in the outbox (delivered or not).
    public func outboxRowCount() async throws(StoreError) -> Int {
        try await onStoreThread { db in
            var count: Int64 = 0
            try db.run("SELECT COUNT(*) FROM outbox") { row in count = row.integer(0) }
            return Int(count)
        }
    }

    public func sinkCursor(_ sink: String) async throws(StoreError) -> Int64 {
        try await onReadThread { db in
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

    /// Appends zeros to the WAL file out to `size` bytes, past whatever it holds, so that commits overwrite the
    /// file in place instead of extending it. Extending the file is what made the slowest commits block: each
    /// extension allocates blocks and updates the inode through the file system's journal, and so waits behind
    /// the checkpoint's `fdatasync` (PostgreSQL zero-fills its WAL segments for the same reason). Safe because
    /// only bytes past the end are written, and SQLite reads a WAL only up to its last valid frame. Best effort: a
    /// failure only means the first lap of the WAL extends the file as before.
    private static func zeroFillWAL(path: String, through size: Int) {
        let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { Glibc.close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { return }
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        var offset = Int(status.st_size)
        while offset < size {
            let count = min(zeros.count, size - offset)
            let written = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, count, off_t(offset)) }
            guard written > 0 else { return }
            offset += written
        }
    }

    /// The last position ever handed out, not MAX(position): pruning may have emptied the table.
    private static func readOutboxHead(_ db: SQLiteConnection) throws(StoreError) -> Int64 {
        var head: Int64 = 0
        try db.run("SELECT position FROM outbox_head") { row in head = row.integer(0) }
        return head
    }

    // MARK: Alert encoding

    private static func encode(_ alerts: [Alert]) throws(StoreError) -> [[UInt8]] {
        alerts.map(AlertCoding.encode)
    }

    private static func decode(_ body: [UInt8]) throws(StoreError) -> Alert {
        try AlertCoding.decode(body)
    }
}
