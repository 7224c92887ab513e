import ArgumentParser
import Basics
import EventModel
import Synchronization
import TestSupport
import Transport
import WireFormat

#if canImport(Glibc)
import Glibc
#endif

/// Sustained batch delivery over tcp loopback: a real `BatchSender` (sensor side) sends 1000-event batches to a
/// real `RPCServer` (collector side) that reads the header, de-duplicates, decodes every batch with `WireCodec`
/// and acks it. The producer encodes each batch as a sensor does. Prints acknowledged events/s.
struct TransportBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "Sensor-to-collector batches over tcp loopback (BatchSender -> RPCServer, decode, ack): events/s.")

    @Option(help: "Events to deliver in total (the run also stops after --seconds).")
    var events = 3_000_000

    @Option(help: "Stop after this many seconds even when fewer events were delivered.")
    var seconds = 20.0

    @Option(help: "Events per batch.")
    var batchSize = 1000

    @Option(help: "Distinct batches generated up front and cycled.")
    var distinctBatches = 50

    @Option(help: "Batches in flight (BatchSender.maxInFlight).")
    var inFlight = 4

    @Option(help: "Requests the server serves concurrently (nng contexts).")
    var serverConcurrency = 8

    @Option(help: "Fixture seed.")
    var seed: UInt64 = 42

    mutating func run() async throws {
        precondition(batchSize > 0 && events >= batchSize && distinctBatches > 0 && inFlight > 0)
        var fixtures = EventFixtures(seed: seed)
        let batches = (0..<distinctBatches).map { index in
            fixtures.events(batchSize, kinds: EventFixtures.execOpenConnect)
        }
        let received = Atomic<Int>(0)
        let decodeFailures = Atomic<Int>(0)
        let dedup = Mutex(BatchDeduplicator())
        let server = try RPCServer(
            configuration: RPCServerConfiguration(address: "tcp://127.0.0.1:0", concurrency: serverConcurrency)
        ) { request, _ in
            guard let batch = try? BatchProtocol.decodeBatch(request) else {
                decodeFailures.add(1, ordering: .relaxed)
                return RPCReply(status: .invalidArgument, message: "undecodable batch")
            }
            if dedup.withLock({ $0.isDuplicate(batch.header) }) {
                return BatchProtocol.reply(dedup.withLock { $0.ack(for: batch.header) })
            }
            guard let decoded = try? batch.decode() else {
                decodeFailures.add(1, ordering: .relaxed)
                return RPCReply(status: .invalidArgument, message: "undecodable events")
            }
            received.add(decoded.events.count, ordering: .relaxed)
            let ack = dedup.withLock { state in
                _ = state.record(batch.header)
                return state.ack(for: batch.header)
            }
            return BatchProtocol.reply(ack)
        }
        let sender = try BatchSender(
            configuration: BatchSenderConfiguration(
                client: RPCClientConfiguration(address: server.boundAddress), sensorID: "bench-sensor",
                bootID: "bench-boot", maxInFlight: inFlight, memoryQueueLimit: max(2 * inFlight, 16)))

        let target = events / batchSize * batchSize
        let limit = Duration.milliseconds(Int64(seconds * 1000))
        print("transport: tcp loopback \(server.boundAddress), batches of \(batchSize), \(inFlight) in flight, "
            + "up to \(target) events or \(seconds) s")
        let clock = ContinuousClock()
        let cpuStart = processCPUSeconds()
        let start = clock.now
        var submittedEvents = 0
        await withDiscardingTaskGroup { group in
            group.addTask { await server.run() }
            group.addTask { await sender.run() }
            var index = 0
            while submittedEvents < target, clock.now - start < limit {
                await sender.waitForMemoryCapacity()
                let events = batches[index % batches.count]
                index += 1
                _ = await sender.submit(encodedEvents: BatchProtocol.encodeEvents(events), eventCount: events.count)
                submittedEvents += events.count
            }
            _ = await sender.flush(timeout: .seconds(30))
            sender.close()
            server.close()
        }
        let elapsed = clock.now - start
        let cpu = processCPUSeconds() - cpuStart
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let stats = sender.stats
        let delivered = received.load(ordering: .relaxed)
        print("transport: submitted \(submittedEvents) events, acked \(stats.acknowledgedEvents), collector decoded "
            + "\(delivered), dropped \(stats.droppedEvents), retries \(stats.retries), decode failures "
            + "\(decodeFailures.load(ordering: .relaxed))")
        print("transport: \(String(format1: Double(delivered) / wall / 1e3))k events/s sustained over "
            + "\(String(format1: wall)) s (sender encodes, collector decodes; both in this process)")
        print("transport: \(String(format1: cpu)) CPU-s for the process: "
            + "\(String(format1: Double(delivered) / cpu / 1e3))k events per CPU-second")
        if stats.acknowledgedEvents != UInt64(submittedEvents) {
            throw ValidationError("not every submitted event was acked")
        }
    }
}

/// CPU time of the whole process (all threads), in seconds.
func processCPUSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}
