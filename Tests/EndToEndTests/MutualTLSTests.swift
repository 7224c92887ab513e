import Foundation
import Testing
import TestSupport

/// Sensors reach the collector over `tls+tcp://` with mutual TLS; a sensor without a certificate the
/// collector's CA signed is refused, and the refusal is logged by the collector.
@Suite(.serialized) struct MutualTLSTests {
    @Test(.timeLimit(.minutes(3))) func onlySensorsWithAValidClientCertificateDeliver() async throws {
        let harness = try Harness("tls", scheme: "tls+tcp")
        defer { harness.directory.remove() }
        let certificatesDirectory = harness.directory.file("certs")
        try FileManager.default.createDirectory(atPath: certificatesDirectory, withIntermediateDirectories: true)
        let certificates = try await offPool { try TestCertificates(in: certificatesDirectory) }
        let collector = try harness.collector([
            "--tls-cert", certificates.serverCertificate, "--tls-key", certificates.serverKey,
            "--tls-ca", certificates.caCertificate,
        ])
        let replay = try harness.replayFile(events: 5_000)

        let intruder = try harness.sensor(
            replay: replay, id: "intruder",
            extra: [
                "--tls-cert", certificates.rogueClientCertificate, "--tls-key", certificates.rogueClientKey,
                "--tls-ca", certificates.caCertificate,
            ])
        let trusted = try harness.sensor(
            replay: replay, id: "trusted",
            extra: [
                "--tls-cert", certificates.clientCertificate, "--tls-key", certificates.clientKey,
                "--tls-ca", certificates.caCertificate,
            ])
        #expect(await trusted.waitForExit(timeout: .seconds(120)) == 0, "trusted sensor log:\n\(trusted.standardError.suffix(2000))")
        // The intruder is still trying: none of its batches were accepted.
        #expect(intruder.isRunning)
        #expect(
            await PatrolProcess.eventually(timeout: .seconds(10)) { collector.standardError.contains("tls handshake refused") },
            "collector log:\n\(collector.standardError.suffix(2000))")
        intruder.signal(SIGKILL)
        await intruder.waitForExit(timeout: .seconds(10))
        collector.signal(SIGTERM)
        #expect(await collector.waitForExit(timeout: .seconds(30)) == 0)
        let progress = try await harness.sensorProgress()
        #expect(progress.map(\.sensorID) == ["trusted"])
        #expect(try await harness.counters()["events_ingested"] == 5_000)
    }
}
