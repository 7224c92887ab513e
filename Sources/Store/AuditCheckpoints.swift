/// Durable audit-source checkpoints: one opaque value (the source's own encoding of where it is) per
/// source name.
///
/// The table is created on first use rather than by a schema version, so this stays independent of the
/// numbered migrations other parts of the store add.
extension Store {
    private static let checkpointTable =
        "CREATE TABLE IF NOT EXISTS audit_checkpoints(source TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ns INTEGER NOT NULL)"

    /// The saved checkpoint of `source`, or nil before the first save.
    public func auditCheckpoint(_ source: String) async throws(StoreError) -> String? {
        try await onStoreThread { db in
            try db.execute(Self.checkpointTable)
            var value: String?
            try db.run("SELECT value FROM audit_checkpoints WHERE source = ?", [.text(source)]) { row in
                value = row.text(0)
            }
            return value
        }
    }

    /// Saves the checkpoint of `source` (committed when this returns).
    public func setAuditCheckpoint(_ source: String, to value: String, at time: UInt64) async throws(StoreError) {
        try await onStoreThread { db in
            try db.execute(Self.checkpointTable)
            try db.run(
                """
                INSERT INTO audit_checkpoints(source, value, updated_ns) VALUES(?, ?, ?)
                ON CONFLICT(source) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns
                """,
                [.text(source), .text(value), .integer(Int64(bitPattern: time))])
        }
    }
}
