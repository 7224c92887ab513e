public import Basics
public import EventModel
import Foundation

/// What the collector knows about one sensor: its latest hello and latest status.
public struct SensorRecord: Sendable, Hashable {
    public var sensorID: String
    public var bootID: String
    public var node: String
    public var version: String
    public var kernel: String
    /// The address the latest hello came from.
    public var peer: String
    public var hooksLoaded: [String]
    /// Hooks that did not load or attach, with why (from the hello, refreshed by each status).
    public var hooksFailed: [String: String]
    /// When the collector first heard of this sensor id, its latest hello, and its latest message of any kind.
    public var firstSeen: EpochNanoseconds
    public var lastHello: EpochNanoseconds
    public var lastSeen: EpochNanoseconds
    /// The sensor's own time of its latest status (0: none yet).
    public var lastStatus: EpochNanoseconds
    /// Drops per stage (`DropStage` raw values), cumulative for the current boot, from the latest status.
    public var drops: [String: UInt64]
    /// Counters (`SensorStatus.Counter` names), cumulative for the current boot, from the latest status.
    public var counters: [String: UInt64]
    public var queueDepths: [String: UInt64]
}

extension Store {
    /// Records a hello: a new boot replaces the previous boot's status numbers.
    public func recordHello(_ hello: SensorHello, peer: String, at time: EpochNanoseconds) async throws(StoreError) {
        let loaded = try Self.json(hello.hooksLoaded)
        let failed = try Self.json(hello.hooksFailed)
        let empty = try Self.json([String: UInt64]())
        try await onStoreThread { db in
            // Same boot: keep the status numbers (a reconnect says hello again); new boot: they start over.
            try db.run(
                """
                INSERT INTO sensors(sensor_id, boot_id, node, version, kernel, peer, hooks_loaded, hooks_failed,
                    first_seen_ns, hello_ns, last_seen_ns, status_ns, drops, counters, queue_depths)
                VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?9, 0, ?10, ?10, ?10)
                ON CONFLICT(sensor_id) DO UPDATE SET
                    node = excluded.node, version = excluded.version, kernel = excluded.kernel, peer = excluded.peer,
                    hooks_loaded = excluded.hooks_loaded, hooks_failed = excluded.hooks_failed,
                    hello_ns = excluded.hello_ns, last_seen_ns = excluded.last_seen_ns,
                    status_ns = CASE WHEN boot_id = excluded.boot_id THEN status_ns ELSE 0 END,
                    drops = CASE WHEN boot_id = excluded.boot_id THEN drops ELSE excluded.drops END,
                    counters = CASE WHEN boot_id = excluded.boot_id THEN counters ELSE excluded.counters END,
                    queue_depths = CASE WHEN boot_id = excluded.boot_id THEN queue_depths ELSE excluded.queue_depths END,
                    boot_id = excluded.boot_id
                """,
                [
                    .text(hello.sensorID), .text(hello.bootID), .text(hello.node), .text(hello.version),
                    .text(hello.kernel), .text(peer), .blob(loaded), .blob(failed),
                    .integer(Int64(bitPattern: time)), .blob(empty),
                ])
        }
    }

    /// Records a status. A status from a sensor the registry does not know yet (the collector's store was
    /// replaced while the sensor ran) creates its row; its hello fields stay empty until the next hello.
    public func recordStatus(_ status: SensorStatus, at time: EpochNanoseconds) async throws(StoreError) {
        let loaded = try Self.json(status.hooksLoaded)
        let failed = try Self.json(status.hooksFailed)
        let drops = try Self.json(Dictionary(uniqueKeysWithValues: status.drops.map { ($0.key.rawValue, $0.value) }))
        let counters = try Self.json(status.counters)
        let depths = try Self.json(status.queueDepths)
        try await onStoreThread { db in
            try db.run(
                """
                INSERT INTO sensors(sensor_id, boot_id, node, version, kernel, peer, hooks_loaded, hooks_failed,
                    first_seen_ns, hello_ns, last_seen_ns, status_ns, drops, counters, queue_depths)
                VALUES(?1, ?2, '', '', '', '', ?3, ?4, ?5, 0, ?5, ?6, ?7, ?8, ?9)
                ON CONFLICT(sensor_id) DO UPDATE SET
                    boot_id = excluded.boot_id, hooks_loaded = excluded.hooks_loaded,
                    hooks_failed = excluded.hooks_failed, last_seen_ns = excluded.last_seen_ns,
                    status_ns = excluded.status_ns, drops = excluded.drops, counters = excluded.counters,
                    queue_depths = excluded.queue_depths
                """,
                [
                    .text(status.sensorID), .text(status.bootID), .blob(loaded), .blob(failed),
                    .integer(Int64(bitPattern: time)), .integer(Int64(bitPattern: status.time)), .blob(drops),
                    .blob(counters), .blob(depths),
                ])
        }
    }

    /// Every sensor the collector has heard from, by sensor id.
    public func sensors() async throws(StoreError) -> [SensorRecord] {
        try await onStoreThread { db in
            var result: [SensorRecord] = []
            try db.run(
                """
                SELECT sensor_id, boot_id, node, version, kernel, peer, hooks_loaded, hooks_failed, first_seen_ns,
                    hello_ns, last_seen_ns, status_ns, drops, counters, queue_depths
                FROM sensors ORDER BY sensor_id
                """
            ) { row throws(StoreError) in
                result.append(
                    SensorRecord(
                        sensorID: row.text(0), bootID: row.text(1), node: row.text(2), version: row.text(3),
                        kernel: row.text(4), peer: row.text(5), hooksLoaded: try Self.value(row.blob(6)),
                        hooksFailed: try Self.value(row.blob(7)),
                        firstSeen: UInt64(bitPattern: row.integer(8)), lastHello: UInt64(bitPattern: row.integer(9)),
                        lastSeen: UInt64(bitPattern: row.integer(10)), lastStatus: UInt64(bitPattern: row.integer(11)),
                        drops: try Self.value(row.blob(12)), counters: try Self.value(row.blob(13)),
                        queueDepths: try Self.value(row.blob(14))))
            }
            return result
        }
    }

    private static func json<T: Encodable>(_ value: T) throws(StoreError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw StoreError(.query, "cannot encode a sensor registry field", cause: .error(error))
        }
    }

    private static func value<T: Decodable>(_ bytes: [UInt8]) throws(StoreError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw StoreError(.corrupt, "a sensor registry row does not decode", cause: .error(error))
        }
    }
}
