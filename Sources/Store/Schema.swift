/// The store's tables, created or upgraded on open. `user_version` records the schema version.
enum Schema {
    static let version = 1

    static func migrate(_ db: SQLiteConnection) throws(StoreError) {
        var current: Int64 = 0
        try db.run("PRAGMA user_version") { row in current = row.integer(0) }
        guard current < version else { return }
        try db.execute(
            """
            BEGIN;
            CREATE TABLE IF NOT EXISTS sensor_progress(
                sensor_id TEXT NOT NULL, boot_id TEXT NOT NULL, contiguous INTEGER NOT NULL, above BLOB NOT NULL,
                PRIMARY KEY(sensor_id, boot_id));
            CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS outbox(
                position INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, rule_id TEXT NOT NULL,
                namespace TEXT NOT NULL, time_ns INTEGER NOT NULL, body BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS outbox_time ON outbox(time_ns);
            CREATE TABLE IF NOT EXISTS sink_cursors(sink TEXT PRIMARY KEY, position INTEGER NOT NULL);
            PRAGMA user_version = \(version);
            COMMIT;
            """)
    }
}
