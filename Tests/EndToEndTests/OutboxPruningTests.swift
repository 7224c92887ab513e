import Foundation
import Store
import TestSupport
import Testing

/// The alert retention with the real collector binary and two real sinks (a CSV file and a webhook served by a
/// real HTTP server): what every sink has delivered is pruned down to `store.maxAlerts`, what the webhook has not
/// delivered while its server is down stays in the store whatever the limit, and once the server is back it gets
/// every kept alert exactly once. OutboxPrunerTests covers the pruner's arithmetic against a store with
/// hand-set cursors; this shows the cursors the delivery loops really move holding pruning back.
@Suite(.serialized) struct OutboxPruningTests {
    let status = StatusEndpointTests()

    /// `count` exec events from /dev/shm (rule R1000), each with its own path, so each raises an alert of its
    /// own id (the id hashes rule, workload and path) and none folds into another.
    func replayFile(_ harness: Harness, name: String, count: Int) throws -> String {
        var text = ""
        for index in 0..<count {
            let exe = "/dev/shm/\(name)-\(index)"
            text += """
                {"time":\(1_900_000_000_000_000_000 + index * 1_000_000),"node":"node-1",\
                "process":{"pid":\(1000 + index),"ppid":1,"uid":0,"comm":"payload","exe":"\(exe)","cwd":"/"},\
                "container":{"runtime":"containerd","containerID":"c0ffee","podName":"web-1","namespace":"shop",\
                "containerName":"web","podUID":"pod-1","image":"nginx:1.25"},\
                "payload":{"exec":{"path":"\(exe)","argv":["\(exe)"]}}}

                """
        }
        let path = harness.directory.file("\(name).jsonl")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Alert ids in the JSON arrays the webhook server received, one entry per delivery (duplicates kept).
    static func webhookIDs(_ server: HTTPTestServer) -> [String] {
        server.requests.flatMap { request -> [String] in
            guard request.method == "POST",
                let documents = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [[String: Any]]
            else { return [] }
            return documents.compactMap { $0["id"] as? String }
        }
    }

    /// The outbox's rows (position, alert id), read through the store file the collector is using (WAL readers
    /// do not block it).
    static func outboxRows(_ path: String) async throws -> [(position: Int64, id: String)] {
        let store = try await Store.open(path: path)
        let rows = try await store.outbox(after: 0, limit: 10_000).map { ($0.position, $0.alert.id) }
        await store.close()
        return rows
    }

    @Test(.timeLimit(.minutes(5))) func deliveredAlertsArePrunedAndADownSinksAlertsWaitForIt() async throws {
        let harness = try Harness("pruning")
        defer { harness.directory.remove() }
        let webhookPort = Int(Ports.freeTCPPort())
        var webhook = try HTTPTestServer(port: webhookPort) { _ in .json("{}") }
        defer { webhook.stop() }
        let config = harness.directory.file("collector.yaml")
        // alertRetention 0: only the count limit prunes (the replayed alerts' times are fixed, not now).
        try """
        store: {alertRetention: 0, maxAlerts: 5, pruneInterval: 1s}
        sinks:
          stdout: false
          csv: {path: \(harness.directory.file("alerts.csv"))}
          webhook:
            url: "http://127.0.0.1:\(webhookPort)/alerts"
            delivery: {initialBackoffMs: 50, maxBackoffMs: 500}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let metricsPort = Ports.freeTCPPort()
        let base = "http://127.0.0.1:\(metricsPort)"
        let collector = try harness.collector(["--config", config, "--metrics-listen", "127.0.0.1:\(metricsPort)"])
        defer { collector.signal(SIGKILL) }

        var metrics: [StatusEndpointTests.Sample] = []
        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            metrics.first { $0.name == name && $0.labels == labels }?.value
        }
        func scrapeUntil(_ condition: () -> Bool) async -> Bool {
            await PatrolProcess.eventually(timeout: .seconds(90)) {
                metrics = (try? await status.scrape(base + "/metrics")) ?? []
                return condition()
            }
        }
        func seriesText() -> String {
            "\(metrics.filter { $0.name.hasPrefix("patrol_sink") || $0.name.hasPrefix("patrol_outbox") })"
                + "\ncollector log:\n\(collector.standardError.suffix(2000))"
        }

        // 1. Both sinks up: 20 alerts reach both, and all but the newest 5 are pruned.
        let first = try replayFile(harness, name: "first", count: 20)
        let sensorA = try harness.sensor(replay: first, id: "sensor-a")
        let sensorAStatus = await sensorA.waitForExit(timeout: .seconds(120))
        #expect(sensorAStatus == 0, "sensor log:\n\(sensorA.standardError.suffix(2000))")
        #expect(
            await scrapeUntil {
                value("patrol_sink_alerts_sent_total", ["sink": "csv"]) == 20
                    && value("patrol_sink_alerts_sent_total", ["sink": "webhook"]) == 20
                    && value("patrol_outbox_pruned_total") == 15
            }, "\(seriesText())")
        let firstIDs = Self.webhookIDs(webhook)
        #expect(firstIDs.count == 20 && Set(firstIDs).count == 20)
        var rows = try await Self.outboxRows(harness.storePath)
        #expect(rows.map(\.position) == Array(16...20))

        // 2. The webhook's server goes away (its port closed): CSV still gets the next 20, the webhook none. Only
        // what the webhook had already delivered may go, so the 20 it has not stay, 4 times over the limit.
        webhook.stop()
        let second = try replayFile(harness, name: "second", count: 20)
        let sensorB = try harness.sensor(replay: second, id: "sensor-b")
        let sensorBStatus = await sensorB.waitForExit(timeout: .seconds(120))
        #expect(sensorBStatus == 0, "sensor log:\n\(sensorB.standardError.suffix(2000))")
        #expect(
            await scrapeUntil {
                value("patrol_sink_alerts_sent_total", ["sink": "csv"]) == 40
                    && value("patrol_outbox_pruned_total") == 20
                    && value("patrol_sink_backlog", ["sink": "webhook"]) == 20
                    && (value("patrol_sink_failures_total", ["sink": "webhook"]) ?? 0) > 0
            }, "\(seriesText())")
        #expect(value("patrol_sink_alerts_sent_total", ["sink": "webhook"]) == 20)
        rows = try await Self.outboxRows(harness.storePath)
        #expect(rows.map(\.position) == Array(21...40))
        let held = Set(rows.map(\.id))
        #expect(held.count == 20 && held.isDisjoint(with: firstIDs))
        // Several more pruner passes (one a second) change nothing while the webhook is still down.
        try await Task.sleep(for: .seconds(3))
        metrics = try await status.scrape(base + "/metrics")
        #expect(value("patrol_outbox_pruned_total") == 20)
        #expect(try await Self.outboxRows(harness.storePath).map(\.position) == Array(21...40))

        // 3. The server comes back on the same port: it gets exactly the 20 held alerts, each once, and then they
        // too are pruned down to the newest 5.
        webhook = try HTTPTestServer(port: webhookPort) { _ in .json("{}") }
        #expect(
            await scrapeUntil {
                value("patrol_sink_alerts_sent_total", ["sink": "webhook"]) == 40
                    && value("patrol_sink_backlog", ["sink": "webhook"]) == 0
                    && value("patrol_outbox_pruned_total") == 35
            }, "\(seriesText())")
        let resent = Self.webhookIDs(webhook)
        #expect(resent.count == 20)
        #expect(Set(resent) == held)
        #expect(Set(firstIDs + resent).count == 40, "no alert reached the webhook twice")
        rows = try await Self.outboxRows(harness.storePath)
        #expect(rows.map(\.position) == Array(36...40))

        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(60)) == 0)
    }
}
