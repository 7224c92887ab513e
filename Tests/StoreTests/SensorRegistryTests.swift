import EventModel
import Foundation
import Testing
import TestSupport
@testable import Store

/// The sensor registry: what the collector remembers of each sensor's hello and latest status.
@Suite struct SensorRegistryTests {
    @Test func helloAndStatusAreKeptPerSensorAcrossReopen() async throws {
        let dir = try TemporaryDirectory(prefix: "registry")
        defer { dir.remove() }
        let path = dir.file("patrol.db")
        do {
            let store = try await Store.open(path: path)
            try await store.recordHello(
                SensorHello(
                    sensorID: "node-1", bootID: "boot-1", version: "0.1.0", kernel: "6.18.0",
                    hooksLoaded: ["handle_exec", "enter_openat"],
                    hooksFailed: ["enter_init_module": "tracepoint syscalls/sys_enter_init_module not found"],
                    node: "node-1"),
                peer: "10.0.0.5:40000", at: 1_000)
            try await store.recordStatus(
                SensorStatus(
                    sensorID: "node-1", bootID: "boot-1", time: 2_000, drops: [.kernelRingBuffer: 4, .spool: 0],
                    queueDepths: ["memory_batches": 2], hooksLoaded: ["handle_exec", "enter_openat"],
                    hooksFailed: ["enter_init_module": "tracepoint syscalls/sys_enter_init_module not found"],
                    counters: ["events_captured": 1_234, "events_folded": 17]),
                at: 2_500)
            await store.close()
        }
        let store = try await Store.open(path: path)
        defer { Task { await store.close() } }
        let sensors = try await store.sensors()
        #expect(sensors.count == 1)
        let sensor = try #require(sensors.first)
        #expect(sensor.sensorID == "node-1")
        #expect(sensor.node == "node-1")
        #expect(sensor.kernel == "6.18.0")
        #expect(sensor.peer == "10.0.0.5:40000")
        #expect(sensor.hooksFailed["enter_init_module"]?.contains("not found") == true)
        #expect(sensor.drops == ["kernel_ringbuf": 4, "spool": 0])
        #expect(sensor.counters["events_captured"] == 1_234)
        #expect(sensor.queueDepths == ["memory_batches": 2])
        #expect(sensor.firstSeen == 1_000)
        #expect(sensor.lastSeen == 2_500)
        #expect(sensor.lastStatus == 2_000)
    }

    @Test func aReconnectKeepsTheBootsNumbersAndANewBootStartsOver() async throws {
        let store = try await Store.open(path: ":memory:")
        defer { Task { await store.close() } }
        let hello = SensorHello(sensorID: "s", bootID: "boot-1", version: "v", node: "n")
        try await store.recordHello(hello, peer: "a", at: 1)
        try await store.recordStatus(
            SensorStatus(sensorID: "s", bootID: "boot-1", time: 2, drops: [.userQueue: 9], counters: ["events_captured": 5]),
            at: 2)
        // Same boot says hello again after a reconnect: the status numbers stay.
        try await store.recordHello(hello, peer: "b", at: 3)
        var sensor = try #require(try await store.sensors().first)
        #expect(sensor.drops == ["user_queue": 9])
        #expect(sensor.peer == "b")
        #expect(sensor.firstSeen == 1)
        // A restarted sensor (new boot) starts from zero, so old drops are not reported as current.
        var rebooted = hello
        rebooted.bootID = "boot-2"
        try await store.recordHello(rebooted, peer: "b", at: 4)
        sensor = try #require(try await store.sensors().first)
        #expect(sensor.bootID == "boot-2")
        #expect(sensor.drops.isEmpty)
        #expect(sensor.counters.isEmpty)
        #expect(sensor.lastStatus == 0)
        #expect(sensor.firstSeen == 1)
    }

    @Test func aStatusFromAnUnknownSensorIsRecorded() async throws {
        let store = try await Store.open(path: ":memory:")
        defer { Task { await store.close() } }
        try await store.recordStatus(SensorStatus(sensorID: "late", bootID: "b", time: 7, drops: [.decode: 1]), at: 8)
        let sensor = try #require(try await store.sensors().first)
        #expect(sensor.sensorID == "late")
        #expect(sensor.version == "")
        #expect(sensor.drops == ["decode": 1])
    }
}

/// A store written by the previous release (schema 1, no sensor registry) opens, keeps its data and gains the table.
@Suite struct SchemaUpgradeTests {
    @Test func aVersionOneStoreGainsTheSensorRegistry() async throws {
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
        defer { Task { await store.close() } }
        #expect(try await store.counters()["events_ingested"] == 42)
        #expect(try await store.sensors().isEmpty)
        try await store.recordHello(SensorHello(sensorID: "s", bootID: "b", version: "v"), peer: "p", at: 1)
        #expect(try await store.sensors().map(\.sensorID) == ["s"])
    }
}
