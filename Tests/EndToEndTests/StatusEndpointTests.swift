import Foundation
import OutboundHTTP
import Store
import Testing
import TestSupport

/// `/metrics`, `/healthz` and `/readyz` of the real binaries, and what sensors report through hello and status:
/// hooks that did not load, drop counters, events ingested per sensor.
@Suite(.serialized) struct StatusEndpointTests {
    let http = HTTPClient()

    /// A replay sensor (no root needed): the collector's metrics count its events under its sensor id, and its
    /// final status puts its drop counters (all zero) on the collector's `/metrics` and in the registry.
    @Test(.timeLimit(.minutes(3))) func collectorMetricsShowEventsPerSensorAndTheSensorsDrops() async throws {
        let harness = try Harness("status-replay")
        defer { harness.directory.remove() }
        let port = Ports.freeTCPPort()
        let base = "http://127.0.0.1:\(port)"
        let collector = try harness.collector(["--metrics-listen", "127.0.0.1:\(port)"])
        #expect(await PatrolProcess.eventually(timeout: .seconds(60)) { await status(base + "/readyz") == 200 },
            "collector log:\n\(collector.standardError.suffix(2000))")
        #expect(await status(base + "/healthz") == 200)

        let replay = try harness.replayFile(events: 3000)
        let sensor = try harness.sensor(replay: replay, id: "replay-a", extra: ["--status-interval", "1"])
        #expect(await sensor.waitForExit(timeout: .seconds(120)) == 0, "sensor log:\n\(sensor.standardError.suffix(2000))")

        let metrics = try await scrape(base + "/metrics")
        let events = metrics.filter { $0.name == "patrol_events_total" && $0.labels["sensor"] == "replay-a" }
        // patrol_events_total counts what the events stand for: a folded event counts its `count`.
        let represented = try String(contentsOfFile: replay, encoding: .utf8).split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return (object?["count"] as? Int) ?? 1
        }.reduce(0, +)
        #expect(events.map(\.value).reduce(0, +) == Double(represented))
        #expect(Set(events.compactMap { $0.labels["kind"] }) == ["exec", "open", "connect"])
        for stage in ["kernel_ringbuf", "user_queue", "spool", "decode"] {
            #expect(
                metrics.first {
                    $0.name == "patrol_sensor_dropped_events_total" && $0.labels == ["sensor": "replay-a", "stage": stage]
                }?.value == 0, "no \(stage) drop series for replay-a")
        }
        #expect(metrics.first { $0.name == "patrol_sensor_events_acked_total" && $0.labels["sensor"] == "replay-a" }?.value == 3000)
        #expect(metrics.contains { $0.name == "patrol_rpc_tls_handshakes_refused_total" })
        #expect(metrics.contains { $0.name == "patrol_sensor_hellos_total" && $0.labels["sensor"] == "replay-a" })
        try checkWithPromtool(metrics: try await body(base + "/metrics"))

        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(60)) == 0)
        let registry = try await sensors(harness.storePath)
        let record = try #require(registry.first { $0.sensorID == "replay-a" })
        #expect(record.version.isEmpty == false)
        #expect(record.counters["events_acked"] == 3000)
        #expect(record.drops["spool"] == 0)
    }

    /// A kernel without two of the sensor's tracepoints: the sensor runs in a private mount namespace where the
    /// tracefs directories of `sys_enter_ptrace` and `sys_enter_memfd_create` are hidden (libbpf finds a
    /// tracepoint by reading its id there, so it fails exactly as on a kernel built without them). Those two
    /// hooks fail by name with libbpf's reason, the rest run, and both the sensor's own `/metrics` and the
    /// collector's show it; events captured by the sensor arrive at the collector under its id.
    @Test(.timeLimit(.minutes(4))) func liveSensorReportsItsMissingHooksAndDrops() async throws {
        guard getuid() == 0 else {
            print("skipping liveSensorReportsItsMissingHooksAndDrops: loading eBPF needs root")
            return
        }
        let missing = ["enter_ptrace", "enter_memfd_create"]
        let hidden = ["sys_enter_ptrace", "sys_enter_memfd_create"]
        let tracepoints = "/sys/kernel/tracing/events/syscalls"
        guard FileManager.default.fileExists(atPath: "\(tracepoints)/sys_enter_openat") else {
            print("skipping liveSensorReportsItsMissingHooksAndDrops: tracefs syscall events are not visible here")
            return
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else {
            print("skipping liveSensorReportsItsMissingHooksAndDrops: /usr/bin/unshare (util-linux) is not installed")
            return
        }
        let hideTracepoints =
            hidden.map { "mount -t tmpfs -o size=4k hidden \(tracepoints)/\($0)" }.joined(separator: " && ")
            + " && exec \"$0\" \"$@\""
        let harness = try Harness("status-live")
        defer { harness.directory.remove() }
        let (collectorPort, sensorPort) = (Ports.freeTCPPort(), Ports.freeTCPPort())
        let collectorBase = "http://127.0.0.1:\(collectorPort)"
        let sensorBase = "http://127.0.0.1:\(sensorPort)"
        let collector = try harness.collector(["--metrics-listen", "127.0.0.1:\(collectorPort)"])
        let sensor = try PatrolProcess(
            "patrol-sensor",
            [
                "--collector", harness.address, "--sensor-id", "live-a", "--node", "node-live", "--status-interval", "1",
                "--metrics-listen", "127.0.0.1:\(sensorPort)", "--kinds", "exec",
            ],
            logDirectory: harness.directory.path, name: "live-a",
            launcher: ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", hideTracepoints])
        defer {
            sensor.signal(SIGKILL)
            collector.signal(SIGKILL)
        }

        // Ready means: capture settled (BPF loaded, verifier done) and the collector accepted the hello.
        let ready = await PatrolProcess.eventually(timeout: .seconds(150)) { await status(sensorBase + "/readyz") == 200 }
        #expect(ready, "sensor log:\n\(sensor.standardError.suffix(3000))")
        guard ready else { return }
        #expect(await status(sensorBase + "/healthz") == 200)

        // Work the sensor should see: execs from this (unignored) process.
        var ingested = false
        for _ in 0..<40 where !ingested {
            for _ in 0..<5 { try runTrue() }
            try await Task.sleep(for: .milliseconds(500))
            let metrics = try await scrape(collectorBase + "/metrics")
            ingested = metrics.contains {
                $0.name == "patrol_events_total" && $0.labels["sensor"] == "live-a" && $0.labels["kind"] == "exec"
                    && $0.value > 0
            }
        }
        #expect(ingested, "no exec events from live-a at the collector")

        for (base, side) in [(sensorBase, "sensor"), (collectorBase, "collector")] {
            // The collector's copy is as fresh as the latest status (one a second here).
            var metrics: [Sample] = []
            _ = await PatrolProcess.eventually(timeout: .seconds(20)) {
                metrics = (try? await scrape(base + "/metrics")) ?? []
                return metrics.contains {
                    $0.name == "patrol_sensor_events_captured_total" && $0.labels["sensor"] == "live-a" && $0.value > 0
                }
            }
            for program in missing {
                #expect(
                    metrics.first {
                        $0.name == "patrol_sensor_hook_failed" && $0.labels == ["sensor": "live-a", "program": program]
                    }?.value == 1, "\(side) /metrics does not report \(program) missing")
            }
            let failed = metrics.first { $0.name == "patrol_sensor_hooks" && $0.labels == ["sensor": "live-a", "state": "failed"] }
            #expect(failed?.value == Double(missing.count), "\(side): hooks failed")
            let loaded = metrics.first { $0.name == "patrol_sensor_hooks" && $0.labels == ["sensor": "live-a", "state": "loaded"] }
            #expect((loaded?.value ?? 0) > 0, "\(side): hooks loaded")
            for stage in ["kernel_ringbuf", "user_queue", "spool", "decode"] {
                #expect(
                    metrics.contains {
                        $0.name == "patrol_sensor_dropped_events_total" && $0.labels == ["sensor": "live-a", "stage": stage]
                    }, "\(side) /metrics has no \(stage) drop counter")
            }
            #expect(
                (metrics.first { $0.name == "patrol_sensor_events_captured_total" && $0.labels["sensor"] == "live-a" }?.value
                    ?? 0) > 0, "\(side): events captured")
            try checkWithPromtool(metrics: try await body(base + "/metrics"))
        }

        sensor.signal(SIGTERM)
        #expect(await sensor.waitForExit(timeout: .seconds(60)) == 0)
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(60)) == 0)
        // The log names each missing program with libbpf's reason.
        for program in missing { #expect(sensor.standardError.contains("program=\(program)")) }

        let record = try #require(try await sensors(harness.storePath).first { $0.sensorID == "live-a" })
        #expect(record.node == "node-live")
        #expect(record.kernel == (try String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))
            .trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(Set(record.hooksFailed.keys) == Set(missing))
        for program in missing {
            let reason = record.hooksFailed[program] ?? ""
            #expect(reason.contains(program) && reason.contains("No such file"), "reason for \(program): \(reason)")
        }
        #expect(!record.hooksLoaded.isEmpty)
        #expect(Set(record.hooksLoaded).isDisjoint(with: missing))
        #expect((record.counters["events_captured"] ?? 0) > 0)
        #expect(Set(record.drops.keys) == ["kernel_ringbuf", "user_queue", "spool", "decode"])
    }

    /// A collector that restarts (here after SIGKILL) hears the sensor's hello again once nng has reconnected,
    /// so a fresh collector knows who is talking without waiting for the sensor to restart.
    @Test(.timeLimit(.minutes(3))) func sensorSaysHelloAgainToARestartedCollector() async throws {
        let harness = try Harness("status-rehello")
        defer { harness.directory.remove() }
        let port = Ports.freeTCPPort()
        let base = "http://127.0.0.1:\(port)"
        var collector = try harness.collector(["--metrics-listen", "127.0.0.1:\(port)"])
        let sensor = try PatrolProcess(
            "patrol-sensor",
            ["--collector", harness.address, "--sensor-id", "idle-a", "--no-capture", "--status-interval", "1"],
            logDirectory: harness.directory.path, name: "idle-a")
        defer {
            sensor.signal(SIGKILL)
            collector.signal(SIGKILL)
        }
        func hellos() async -> Double? {
            let metrics = (try? await scrape(base + "/metrics")) ?? []
            return metrics.first { $0.name == "patrol_sensor_hellos_total" && $0.labels["sensor"] == "idle-a" }?.value
        }
        #expect(await PatrolProcess.eventually(timeout: .seconds(60)) { await hellos() == 1 },
            "sensor log:\n\(sensor.standardError.suffix(2000))")
        collector.signal(SIGKILL)
        await collector.waitForExit(timeout: .seconds(10))
        collector = try harness.collector(["--metrics-listen", "127.0.0.1:\(port)"])
        #expect(await PatrolProcess.eventually(timeout: .seconds(60)) { await hellos() == 1 },
            "no hello after the restart; sensor log:\n\(sensor.standardError.suffix(2000))")
        // Statuses keep coming to the new collector too.
        #expect(await PatrolProcess.eventually(timeout: .seconds(30)) {
            let metrics = (try? await scrape(base + "/metrics")) ?? []
            return metrics.contains { $0.name == "patrol_sensor_dropped_events_total" && $0.labels["sensor"] == "idle-a" }
        })
        sensor.signal(SIGTERM)
        #expect(await sensor.waitForExit(timeout: .seconds(30)) == 0)
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(30)) == 0)
    }

    /// Without privilege the sensor cannot load BPF at all: it says which step failed and why (EPERM) and exits
    /// with status 77 instead of running blind.
    @Test(.timeLimit(.minutes(2))) func unprivilegedSensorNamesTheFailingStepAndExits() async throws {
        guard getuid() == 0 else {
            print("skipping unprivilegedSensorNamesTheFailingStepAndExits: dropping to nobody needs root")
            return
        }
        let directory = try TemporaryDirectory(prefix: "patrol-e2e-unprivileged")
        defer { directory.remove() }
        let stderrPath = directory.file("sensor.err")
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = [
            "--reuid=65534", "--regid=65534", "--clear-groups", "\(PatrolProcess.binaryDirectory)/patrol-sensor",
            "--collector", "ipc://\(directory.path)/collector.sock", "--sensor-id", "unprivileged",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let output = try String(contentsOfFile: stderrPath, encoding: .utf8)
        #expect(process.terminationStatus == 77, "stderr:\n\(output.suffix(3000))")
        #expect(output.contains("capture_unavailable"))
        #expect(output.contains("cannot load BPF object sensor.bpf.o"))
        #expect(output.contains("Operation not permitted"))
        #expect(output.contains("EPERM"))
    }

    // MARK: - helpers

    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    func status(_ url: String) async -> Int? {
        try? await http.get(url).status
    }

    func body(_ url: String) async throws -> String {
        let response = try await http.get(url)
        #expect(response.status == 200)
        return String(decoding: response.body, as: UTF8.self)
    }

    /// The samples of a Prometheus text exposition (label values here never contain `,` or `"`).
    func scrape(_ url: String) async throws -> [Sample] {
        try await body(url).split(separator: "\n").compactMap { line -> Sample? in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...])
            else { return nil }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else { return Sample(name: String(series), labels: [:], value: value) }
            var labels: [String: String] = [:]
            for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
            }
            return Sample(name: String(series[..<brace]), labels: labels, value: value)
        }
    }

    /// `promtool check metrics` parses the exposition; its only complaint may be the missing HELP text
    /// (swift-metrics has no place for it). Skipped when Debian's prometheus package is not installed.
    func checkWithPromtool(metrics: String) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") else {
            print("promtool not installed: format check skipped")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(metrics.utf8))
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let problems = text.split(separator: "\n").filter { !$0.hasSuffix("no help text") }
        #expect(problems.isEmpty, "promtool: \(problems.prefix(5))")
        #expect(process.terminationStatus == 0 || process.terminationStatus == 3, "promtool exit \(process.terminationStatus)")
    }

    func sensors(_ storePath: String) async throws -> [SensorRecord] {
        let store = try await Store.open(path: storePath)
        defer { Task { await store.close() } }
        return try await store.sensors()
    }

    func runTrue() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
    }
}
