/// The store's tables, created or upgraded on open. `user_version` records the schema version.
enum Schema {
    static let version = 5

    static func migrate(_ db: SQLiteConnection) throws(StoreError) {
        var current: Int64 = 0
        try db.run("PRAGMA user_version") { row in current = row.integer(0) }
        if current < 1 { try version1(db) }
        if current < 2 { try version2(db) }
        if current < 3 { try version3(db) }
        if current < 4 { try version4(db) }
        if current < 5 { try version5(db) }
    }

    static func version1(_ db: SQLiteConnection) throws(StoreError) {
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
            PRAGMA user_version = 1;
            COMMIT;
            """)
    }

    /// The sensor registry: one row per sensor id, from its latest hello and status.
    private static func version2(_ db: SQLiteConnection) throws(StoreError) {
        try db.execute(
            """
            BEGIN;
            CREATE TABLE IF NOT EXISTS sensors(
                sensor_id TEXT PRIMARY KEY, boot_id TEXT NOT NULL, node TEXT NOT NULL, version TEXT NOT NULL,
                kernel TEXT NOT NULL, peer TEXT NOT NULL, hooks_loaded BLOB NOT NULL, hooks_failed BLOB NOT NULL,
                first_seen_ns INTEGER NOT NULL, hello_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL,
                status_ns INTEGER NOT NULL, drops BLOB NOT NULL, counters BLOB NOT NULL, queue_depths BLOB NOT NULL);
            PRAGMA user_version = 2;
            COMMIT;
            """)
    }

    /// Application profiles: one row per workload container, the body encoded by the Profiles module.
    private static func version3(_ db: SQLiteConnection) throws(StoreError) {
        try db.execute(
            """
            BEGIN;
            CREATE TABLE IF NOT EXISTS profiles(
                namespace TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, container TEXT NOT NULL,
                state TEXT NOT NULL, updated_ns INTEGER NOT NULL, body BLOB NOT NULL,
                PRIMARY KEY(namespace, kind, name, container));
            PRAGMA user_version = 3;
            COMMIT;
            """)
    }

    /// Applied rule bindings: one row per binding identity (`namespace` is '' for a cluster-scoped one), with the
    /// YAML text it was applied from, so they survive restarts and `get` returns what was written.
    private static func version4(_ db: SQLiteConnection) throws(StoreError) {
        try db.execute(
            """
            BEGIN;
            CREATE TABLE IF NOT EXISTS bindings(
                namespace TEXT NOT NULL, name TEXT NOT NULL, yaml TEXT NOT NULL, applied_ns INTEGER NOT NULL,
                PRIMARY KEY(namespace, name));
            PRAGMA user_version = 4;
            COMMIT;
            """)
    }

    /// The outbox without AUTOINCREMENT and without the `alert_id`, `rule_id` and `namespace` columns, which
    /// nothing read (the body holds the whole alert). AUTOINCREMENT rewrote its `sqlite_sequence` row after every
    /// insert; now the store hands out positions itself and records the last one in `outbox_head`, once per
    /// commit, which keeps positions from being reused once pruning has emptied the table. The head starts at the
    /// last position ever handed out (the old sequence, which may be past every remaining row).
    private static func version5(_ db: SQLiteConnection) throws(StoreError) {
        try db.execute(
            """
            BEGIN;
            CREATE TABLE outbox_v5(position INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, body BLOB NOT NULL);
            INSERT INTO outbox_v5(position, time_ns, body) SELECT position, time_ns, body FROM outbox;
            CREATE TABLE outbox_head(position INTEGER NOT NULL);
            INSERT INTO outbox_head(position) SELECT MAX(
                COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0),
                COALESCE((SELECT MAX(position) FROM outbox), 0));
            DROP TABLE outbox;
            ALTER TABLE outbox_v5 RENAME TO outbox;
            CREATE INDEX outbox_time ON outbox(time_ns);
            PRAGMA user_version = 5;
            COMMIT;
            """)
    }
}
