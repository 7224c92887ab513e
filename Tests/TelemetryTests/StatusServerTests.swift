import Foundation
import Logging
import OutboundHTTP
import Testing

@testable import Telemetry

/// The status endpoint as a scraper and a kubelet probe see it: real HTTP over loopback, through curl.
@Suite struct StatusServerTests {
    let client = HTTPClient()

    @Test func servesMetricsHealthAndReadiness() async throws {
        let telemetry = Telemetry()
        let counter = telemetry.registry.makeCounter(name: "patrol_test_events_total", labels: [("sensor", "a")])
        counter.increment(by: Int64(3))
        // A scrape-time refresher copies a snapshot in, as the collector does with the RPC server's stats.
        let snapshot = SnapshotBox()
        let mirrored = telemetry.registry.makeGauge(name: "patrol_test_depth", labels: [])
        telemetry.onScrape { mirrored.set(Double(snapshot.value)) }
        let flag = ReadyFlag()
        telemetry.addReadinessCheck("rpc") { flag.isSet }
        let server = try StatusServer(address: "127.0.0.1:0", telemetry: telemetry, logger: Logger(label: "test"))
        defer { server.stop() }
        let base = "http://127.0.0.1:\(server.port)"

        snapshot.value = 42
        let metrics = try await client.get(base + "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.headers["Content-Type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = String(decoding: metrics.body, as: UTF8.self)
        #expect(text.contains("patrol_test_events_total{sensor=\"a\"} 3"))
        #expect(text.contains("patrol_test_depth 42"))

        let health = try await client.get(base + "/healthz")
        #expect(health.status == 200)
        #expect(String(decoding: health.body, as: UTF8.self) == "ok\n")

        let notReady = try await client.get(base + "/readyz")
        #expect(notReady.status == 503)
        #expect(String(decoding: notReady.body, as: UTF8.self).contains("rpc: not ready"))
        flag.set(true)
        let ready = try await client.get(base + "/readyz")
        #expect(ready.status == 200)

        let missing = try await client.get(base + "/nope")
        #expect(missing.status == 404)
        let post = try await client.send(HTTPRequest(method: .post, url: base + "/metrics", body: Array("x".utf8)))
        #expect(post.status == 405)
    }

    @Test func stopReleasesThePort() async throws {
        let server = try StatusServer(address: "127.0.0.1:0", telemetry: Telemetry(), logger: Logger(label: "test"))
        let port = server.port
        server.stop()
        await server.waitUntilStopped()
        let again = try StatusServer(address: "127.0.0.1:\(port)", telemetry: Telemetry(), logger: Logger(label: "test"))
        again.stop()
        await again.waitUntilStopped()
    }

    @Test func badAddressesAreRefusedWithTheReason() {
        #expect(throws: TelemetryError.self) {
            _ = try StatusServer(address: "9464", telemetry: Telemetry(), logger: Logger(label: "test"))
        }
        do {
            _ = try StatusServer(address: "example.org:9464", telemetry: Telemetry(), logger: Logger(label: "test"))
            Issue.record("a host name was accepted")
        } catch {
            #expect(error.message.contains("not an IPv4 address"))
        }
    }

    @Test func counterMirrorAddsGrowthAndSurvivesARestartedSource() {
        let total = SnapshotBox()
        let mirror = CounterMirror { total.value += $0 }
        mirror.update(to: 5)
        mirror.update(to: 5)
        mirror.update(to: 9)
        mirror.update(to: 2)  // the source restarted from zero and has counted 2 since
        #expect(total.value == 11)
    }
}

final class SnapshotBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = 0
    var value: Int {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
