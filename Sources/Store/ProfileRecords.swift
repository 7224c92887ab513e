public import Basics

/// One container profile as the store keeps it. The store does not interpret `body`: the Profiles module
/// encodes it, so the profile's shape can grow without a schema change.
public struct ProfileRecord: Sendable, Hashable {
    public var namespace: String
    public var kind: String
    public var name: String
    public var container: String
    /// The profile's state, kept in its own column so listing needs no decoding.
    public var state: String
    public var updatedAt: EpochNanoseconds
    public var body: [UInt8]

    public init(
        namespace: String, kind: String, name: String, container: String, state: String,
        updatedAt: EpochNanoseconds, body: [UInt8]
    ) {
        self.namespace = namespace
        self.kind = kind
        self.name = name
        self.container = container
        self.state = state
        self.updatedAt = updatedAt
        self.body = body
    }
}

extension Store {
    /// Inserts or replaces profiles, all in one transaction.
    public func saveProfiles(_ records: [ProfileRecord]) async throws(StoreError) {
        guard !records.isEmpty else { return }
        try await onStoreThread { db in
            try db.execute("BEGIN")
            do {
                for record in records {
                    try db.run(
                        """
                        INSERT INTO profiles(namespace, kind, name, container, state, updated_ns, body)
                        VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)
                        ON CONFLICT(namespace, kind, name, container) DO UPDATE SET
                            state = excluded.state, updated_ns = excluded.updated_ns, body = excluded.body
                        """,
                        [
                            .text(record.namespace), .text(record.kind), .text(record.name), .text(record.container),
                            .text(record.state), .integer(Int64(bitPattern: record.updatedAt)), .blob(record.body),
                        ])
                }
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Every stored profile, ordered by workload and container.
    public func profiles() async throws(StoreError) -> [ProfileRecord] {
        try await onStoreThread { db in
            var records: [ProfileRecord] = []
            try db.run(
                """
                SELECT namespace, kind, name, container, state, updated_ns, body FROM profiles
                ORDER BY namespace, kind, name, container
                """
            ) { row in
                records.append(
                    ProfileRecord(
                        namespace: row.text(0), kind: row.text(1), name: row.text(2), container: row.text(3),
                        state: row.text(4), updatedAt: UInt64(bitPattern: row.integer(5)), body: row.blob(6)))
            }
            return records
        }
    }

    /// Deletes a workload's profiles (every container); returns how many rows went.
    @discardableResult
    public func deleteProfiles(namespace: String, kind: String, name: String) async throws(StoreError) -> Int {
        try await onStoreThread { db in
            try db.run(
                "DELETE FROM profiles WHERE namespace = ?1 AND kind = ?2 AND name = ?3",
                [.text(namespace), .text(kind), .text(name)])
            return db.changes
        }
    }
}
