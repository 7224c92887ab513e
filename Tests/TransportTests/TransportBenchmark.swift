import EventModel
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Transport

/// Throughput of the batch protocol over tcp loopback: 1000-event batches, acks after de-duplication.
/// Runs only with PATROL_BENCH=1 (to be moved to the bench tool). Goal: ≥ 500k events/s.
@Suite("Transport benchmark")
struct TransportBenchmark {
    static let enabled = ProcessInfo.processInfo.environment["PATROL_BENCH"] == "1"

    @Test("batch throughput over tcp loopback")
    func throughput() async throws {
        guard Self.enabled else {
            print("skipped: transport benchmark runs only with PATROL_BENCH=1")
            return
        }
        let environment = ProcessInfo.processInfo.environment
        let batches = Int(environment["PATROL_BENCH_BATCHES"] ?? "") ?? 2000
        let eventsPerBatch = 1000
        let inFlight = Int(environment["PATROL_BENCH_INFLIGHT"] ?? "") ?? 8
        let useTLS = environment["PATROL_BENCH_TLS"] == "1"
        let connections = Int(environment["PATROL_BENCH_CONNECTIONS"] ?? "") ?? 1
        let decode = environment["PATROL_BENCH_DECODE"] == "1"
        let directory = try TemporaryDirectory(prefix: "patrol-bench")
        defer { directory.remove() }
        var serverTLS: TLSConfiguration?
        var clientTLS: TLSConfiguration?
        if useTLS {
            let certificates = try await offPool { try TestCertificates(in: directory.path) }
            serverTLS = TLSConfiguration(
                certificateFile: certificates.serverCertificate, privateKeyFile: certificates.serverKey,
                caFile: certificates.caCertificate)
            clientTLS = TLSConfiguration(
                certificateFile: certificates.clientCertificate, privateKeyFile: certificates.clientKey,
                caFile: certificates.caCertificate, serverName: "localhost")
        }
        let address = Ports.loopbackTCPAddress(scheme: useTLS ? "tls+tcp" : "tcp")
        let collector = CollectorStub(decodeEvents: decode)
        let server = try RPCServer(
            configuration: RPCServerConfiguration(
                address: address, tls: serverTLS, concurrency: inFlight * 2, maxMessageSize: 4 << 20),
            handler: collector.handler)
        let sender = try BatchSender(
            configuration: BatchSenderConfiguration(
                client: RPCClientConfiguration(address: address, tls: clientTLS, connections: connections),
                sensorID: "bench", bootID: "boot-1",
                maxInFlight: inFlight, memoryQueueLimit: inFlight * 4))
        // Realistic events (seeded fixtures), encoded once: the sensor encodes outside the sender.
        let body = sampleEvents(eventsPerBatch)
        let bytesPerEvent = body.count / eventsPerBatch
        let clock = ContinuousClock()
        let elapsed = try await withServer(server) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await sender.run() }
                let started = clock.now
                for _ in 0..<batches {
                    await sender.waitForMemoryCapacity()
                    await sender.submit(encodedEvents: body, eventCount: eventsPerBatch)
                }
                let flushed = await sender.flush(timeout: .seconds(300))
                let elapsed = clock.now - started
                sender.close()
                try await group.waitForAll()
                #expect(flushed)
                return elapsed
            }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let events = Double(batches * eventsPerBatch)
        let megabytes = Double(batches * body.count) / 1e6
        let setup =
            "in flight \(inFlight)\(useTLS ? ", mutual TLS" : ""), \(connections) connection(s)"
            + (decode ? ", collector decodes events" : "")
        print(
            "transport benchmark: \(batches) batches x \(eventsPerBatch) events x \(bytesPerEvent) B, "
                + "\(setup): \(String(format: "%.3f", seconds)) s, "
                + "\(Int(events / seconds)) events/s, \(String(format: "%.1f", megabytes / seconds)) MB/s, "
                + "\(Int(Double(batches) / seconds)) batches/s")
        #expect(collector.received.count == batches)
        #expect(sender.stats.droppedBatches == 0)
    }
}
