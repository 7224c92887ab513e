public import Basics

/// One applied rule binding as the store keeps it. The store does not interpret `yaml`: the collector validates
/// it against the rule set when it loads it.
public struct BindingRecord: Sendable, Hashable {
    public var name: String
    /// Empty for a cluster-scoped binding.
    public var namespace: String
    /// The binding's own YAML document, as applied.
    public var yaml: String
    public var appliedAt: EpochNanoseconds

    public init(name: String, namespace: String, yaml: String, appliedAt: EpochNanoseconds) {
        self.name = name
        self.namespace = namespace
        self.yaml = yaml
        self.appliedAt = appliedAt
    }
}

extension Store {
    /// Inserts or replaces one binding.
    public func saveBinding(_ record: BindingRecord) async throws(StoreError) {
        try await saveBindings([record])
    }

    /// Inserts or replaces bindings, all in one transaction: an apply is stored whole or not at all.
    public func saveBindings(_ records: [BindingRecord]) async throws(StoreError) {
        guard !records.isEmpty else { return }
        try await onStoreThread { db in
            try db.execute("BEGIN")
            do {
                for record in records {
                    try db.run(
                        """
                        INSERT INTO bindings(namespace, name, yaml, applied_ns) VALUES(?1, ?2, ?3, ?4)
                        ON CONFLICT(namespace, name) DO UPDATE SET yaml = excluded.yaml, applied_ns = excluded.applied_ns
                        """,
                        [
                            .text(record.namespace), .text(record.name), .text(record.yaml),
                            .integer(Int64(bitPattern: record.appliedAt)),
                        ])
                }
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Every stored binding, ordered by namespace and name.
    public func bindings() async throws(StoreError) -> [BindingRecord] {
        try await onStoreThread { db in
            var records: [BindingRecord] = []
            try db.run("SELECT namespace, name, yaml, applied_ns FROM bindings ORDER BY namespace, name") { row in
                records.append(
                    BindingRecord(
                        name: row.text(1), namespace: row.text(0), yaml: row.text(2),
                        appliedAt: UInt64(bitPattern: row.integer(3))))
            }
            return records
        }
    }

    /// Deletes one binding; false when there was none with that identity.
    @discardableResult
    public func deleteBinding(name: String, namespace: String) async throws(StoreError) -> Bool {
        try await onStoreThread { db in
            try db.run("DELETE FROM bindings WHERE namespace = ?1 AND name = ?2", [.text(namespace), .text(name)])
            return db.changes > 0
        }
    }
}
