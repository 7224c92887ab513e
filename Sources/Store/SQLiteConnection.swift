internal import CSQLite
import Basics

/// The one owner of a `sqlite3*` handle. Not thread-safe by itself: `Store` confines it to its one thread,
/// which is why it may cross into that thread's closures.
final class SQLiteConnection: @unchecked Sendable {
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    let path: String

    init(path: String) throws(StoreError) {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let text = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close(db)
            throw StoreError(.open, "cannot open store at \(path)", cause: .cCode(library: "sqlite3", code: rc, text: text))
        }
        handle = db
        sqlite3_busy_timeout(db, 5_000)
    }

    deinit { close() }

    func close() {
        for statement in statements.values { sqlite3_finalize(statement) }
        statements.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    private func failure(_ what: String, _ rc: Int32) -> StoreError {
        let text = handle.map { String(cString: sqlite3_errmsg($0)) }
        let code: StoreError.Code = (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) ? .corrupt : .query
        return StoreError(code, "\(what) failed in store \(path)", cause: .cCode(library: "sqlite3", code: rc, text: text))
    }

    /// Runs SQL that returns no rows (schema, pragmas, BEGIN/COMMIT).
    func execute(_ sql: String) throws(StoreError) {
        guard let handle else { throw StoreError(.closed, "store \(path) is closed") }
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw failure("statement '\(sql.prefix(60))'", rc) }
    }

    /// Runs a cached prepared statement with bound values, calling `row` for each result row.
    func run(_ sql: String, _ values: [SQLValue] = [], row: ((SQLRow) throws(StoreError) -> Void)? = nil) throws(StoreError) {
        guard let handle else { throw StoreError(.closed, "store \(path) is closed") }
        let statement: OpaquePointer
        if let cached = statements[sql] {
            statement = cached
        } else {
            var prepared: OpaquePointer?
            let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &prepared, nil)
            guard rc == SQLITE_OK, let prepared else { throw failure("prepare '\(sql.prefix(60))'", rc) }
            statements[sql] = prepared
            statement = prepared
        }
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(statement, index)
            case .integer(let number): rc = sqlite3_bind_int64(statement, index, number)
            case .text(let text):
                // SQLITE_TRANSIENT: SQLite copies the bytes before the Swift string goes away.
                rc = sqlite3_bind_text(statement, index, text, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
            case .blob(let bytes):
                rc = bytes.withUnsafeBytes { raw in
                    sqlite3_bind_blob(
                        statement, index, raw.baseAddress, Int32(raw.count),
                        unsafeBitCast(-1, to: sqlite3_destructor_type.self))
                }
            }
            guard rc == SQLITE_OK else { throw failure("bind", rc) }
        }
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else { throw failure("step '\(sql.prefix(60))'", rc) }
            try row?(SQLRow(statement: statement))
        }
    }

    var changes: Int { handle.map { Int(sqlite3_changes($0)) } ?? 0 }

    /// The cached prepared statement for `sql`, for a loop that binds and steps it many times in one call
    /// (the outbox insert): no value array and no statement lookup per row.
    func prepared(_ sql: String) throws(StoreError) -> SQLStatement {
        guard let handle else { throw StoreError(.closed, "store \(path) is closed") }
        if let cached = statements[sql] { return SQLStatement(statement: cached, connection: self) }
        var prepared: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &prepared, nil)
        guard rc == SQLITE_OK, let prepared else { throw failure("prepare '\(sql.prefix(60))'", rc) }
        statements[sql] = prepared
        return SQLStatement(statement: prepared, connection: self)
    }

    /// Frames in the write-ahead log after the last commit (0 when not in WAL mode), from `sqlite3_wal_hook`.
    private(set) var walFrames = 0

    /// Tracks the WAL's length and turns off SQLite's own checkpoint on commit: the store checkpoints from a
    /// connection of its own instead, so the commit that crosses the threshold does not pay for it.
    func takeOverCheckpoints() throws(StoreError) {
        guard let handle else { throw StoreError(.closed, "store \(path) is closed") }
        try execute("PRAGMA wal_autocheckpoint=0")
        typealias Hook = @convention(c) (
            UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32
        ) -> Int32
        let callback: Hook = { context, _, _, frames in
            // Unretained: the hook is removed (the handle closed) before the connection goes away.
            Unmanaged<SQLiteConnection>.fromOpaque(context!).takeUnretainedValue().walFrames = Int(frames)
            return SQLITE_OK
        }
        sqlite3_wal_hook(handle, callback, Unmanaged.passUnretained(self).toOpaque())
    }

    /// A passive checkpoint: copies what it can from the WAL into the database without waiting for anyone.
    /// Stopped early by `interrupt()` (what it copied stays copied).
    func checkpointPassive() throws(StoreError) {
        guard let handle else { throw StoreError(.closed, "store \(path) is closed") }
        let rc = sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
        guard rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_INTERRUPT else { throw failure("checkpoint", rc) }
    }

    /// Asks the connection's running operation to stop; the one call that is safe from another thread.
    func interrupt() {
        if let handle { sqlite3_interrupt(handle) }
    }

    fileprivate func stepFailure(_ sql: OpaquePointer, _ rc: Int32) -> StoreError {
        failure("step", rc)
    }
}

/// A prepared statement borrowed from its connection's cache; valid on the connection's thread, until close.
struct SQLStatement {
    fileprivate let statement: OpaquePointer
    fileprivate let connection: SQLiteConnection

    func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(statement, index, value)
    }

    /// Binds `bytes` as the blob at `index` and runs the statement, while `bytes` is borrowed: SQLite reads the
    /// blob in place (SQLITE_STATIC) instead of copying it, and the binding is cleared before the borrow ends.
    func execute(binding index: Int32, _ bytes: [UInt8]) throws(StoreError) {
        let rc = bytes.withUnsafeBytes { raw -> Int32 in
            // An empty blob still binds a (zero-length) blob, not NULL: the column is NOT NULL.
            if let base = raw.baseAddress, raw.count > 0 {
                _ = sqlite3_bind_blob(statement, index, base, Int32(raw.count), nil)
            } else {
                _ = sqlite3_bind_zeroblob(statement, index, 0)
            }
            let rc = sqlite3_step(statement)
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
            return rc
        }
        guard rc == SQLITE_DONE else { throw connection.stepFailure(statement, rc) }
    }

    /// Runs a statement that returns no rows, then resets it for the next binding.
    func execute() throws(StoreError) {
        let rc = sqlite3_step(statement)
        sqlite3_reset(statement)
        guard rc == SQLITE_DONE else { throw connection.stepFailure(statement, rc) }
    }
}

/// A value bound to or read from a statement.
enum SQLValue {
    case null
    case integer(Int64)
    case text(String)
    case blob([UInt8])
}

/// One result row, valid only inside the `row` callback.
struct SQLRow {
    fileprivate let statement: OpaquePointer

    func integer(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

    func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(statement, column) else { return "" }
        return String(cString: pointer)
    }

    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let pointer = sqlite3_column_blob(statement, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}
