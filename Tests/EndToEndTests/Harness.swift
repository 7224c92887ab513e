import EventModel
import Foundation
import Store
import TestSupport

/// Starts collectors and sensors as real processes against one scratch directory.
struct Harness {
    let directory: TemporaryDirectory
    let address: String
    let storePath: String

    /// `scheme` "ipc" (the default) listens on a socket file in the test's own directory, so a collector
    /// restarted after a long outage can never find its address taken by another test's server.
    init(_ label: String, scheme: String = "ipc") throws {
        directory = try TemporaryDirectory(prefix: "patrol-e2e-\(label)")
        address = scheme == "ipc" ? "ipc://\(directory.path)/collector.sock" : Ports.loopbackTCPAddress(scheme: scheme)
        storePath = directory.file("patrol.db")
    }

    func collector(_ extra: [String] = []) throws -> PatrolProcess {
        try PatrolProcess(
            "patrol-collector",
            ["--listen", address, "--store", storePath, "--rules", Self.repositoryPath("rules"), "--no-stdout"] + extra,
            logDirectory: directory.path)
    }

    func sensor(replay: String, repeatCount: Int = 1, id: String = "sensor-a", extra: [String] = []) throws -> PatrolProcess {
        try PatrolProcess(
            "patrol-sensor",
            [
                "--collector", address, "--replay", replay, "--repeat", String(repeatCount), "--sensor-id", id,
                "--exit-when-done", "--spool-dir", directory.file("spool-\(id)"),
            ] + extra,
            logDirectory: directory.path, name: id)
    }

    /// The collector's own durable counters, read from its store after it has stopped.
    func counters() async throws -> [String: UInt64] {
        let store = try await Store.open(path: storePath)
        defer { Task { await store.close() } }
        return try await store.counters()
    }

    func sensorProgress() async throws -> [SensorProgress] {
        let store = try await Store.open(path: storePath)
        defer { Task { await store.close() } }
        return try await store.sensorProgress()
    }

    /// Writes `count` seeded events of the sensor kinds as a replay file.
    func replayFile(events count: Int, seed: UInt64 = 7) throws -> String {
        var fixtures = EventFixtures(seed: seed)
        let encoder = JSONEncoder()
        var text = ""
        for index in 0..<count {
            let kind = EventFixtures.execOpenConnect[index % EventFixtures.execOpenConnect.count]
            text += String(decoding: try encoder.encode(fixtures.event(kind)), as: UTF8.self) + "\n"
        }
        let path = directory.file("replay-\(count).jsonl")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func repositoryPath(_ relative: String) -> String {
        // Tests/EndToEndTests/Harness.swift → repository root.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(relative).path
    }
}
