import Foundation
import Testing
import TestSupport
@testable import Store

/// Applied rule bindings in the store: saved whole, replaced by identity, deleted, and kept across a reopen.
@Suite struct BindingRecordsTests {
    @Test func bindingsAreReplacedByIdentityAndSurviveAReopen() async throws {
        let dir = try TemporaryDirectory(prefix: "bindings")
        defer { dir.remove() }
        let path = dir.file("patrol.db")
        do {
            let store = try await Store.open(path: path)
            try await store.saveBindings([
                BindingRecord(name: "web", namespace: "", yaml: "a: 1\n", appliedAt: 10),
                BindingRecord(name: "web", namespace: "shop", yaml: "b: 2\n", appliedAt: 11),
            ])
            // Same identity: replaced, not added.
            try await store.saveBinding(BindingRecord(name: "web", namespace: "", yaml: "a: 3\n", appliedAt: 12))
            try await store.saveBinding(BindingRecord(name: "api", namespace: "", yaml: "c: 4\n", appliedAt: 13))
            #expect(try await store.deleteBinding(name: "api", namespace: ""))
            #expect(try await store.deleteBinding(name: "api", namespace: "") == false)
            #expect(try await store.deleteBinding(name: "web", namespace: "other") == false)
            await store.close()
        }
        let reopened = try await Store.open(path: path)
        #expect(
            try await reopened.bindings() == [
                BindingRecord(name: "web", namespace: "", yaml: "a: 3\n", appliedAt: 12),
                BindingRecord(name: "web", namespace: "shop", yaml: "b: 2\n", appliedAt: 11),
            ])
        await reopened.close()
    }

    /// A store from before bindings opens, keeps its data and gains an empty bindings table.
    @Test func anOlderStoreGainsTheBindingsTable() async throws {
        let dir = try TemporaryDirectory(prefix: "upgrade")
        defer { dir.remove() }
        let path = dir.file("patrol.db")
        do {
            let old = try SQLiteConnection(path: path)
            try Schema.version1(old)
            try old.run("INSERT INTO counters(name, value) VALUES('events_ingested', 42)")
            old.close()
        }
        let store = try await Store.open(path: path)
        #expect(try await store.counters()["events_ingested"] == 42)
        #expect(try await store.bindings().isEmpty)
        try await store.saveBinding(BindingRecord(name: "web", namespace: "", yaml: "a: 1\n", appliedAt: 1))
        #expect(try await store.bindings().count == 1)
        await store.close()
    }
}
