import ArgumentParser
import Basics
import EventModel
import TestSupport
@_spi(Benchmarks) import WireFormat

#if canImport(Glibc)
import Glibc
#endif

/// Encode + decode throughput of `EventBatch` on one core, for the sensor's typical exec/open/connect mix.
struct WireBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wire",
        abstract: "Encode and decode EventBatch messages (exec/open/connect mix) and print events/s on one core.")

    @Option(help: "Events to encode and decode in total.")
    var events = 1_000_000

    @Option(help: "Events per batch.")
    var batchSize = 1000

    @Option(help: "Distinct batches generated up front and cycled (bounds memory).")
    var distinctBatches = 100

    @Option(help: "Timed rounds; the best is reported.")
    var rounds = 3

    @Option(help: "Fixture seed.")
    var seed: UInt64 = 42

    @Option(
        help: """
            Only profile one side: 'encode' or 'decode' loops over it alone (for perf), then exits; 'unpack' runs \
            only protobuf-c's unpack of each batch (no Swift values); 'decode-protobuf-c' the decode path through \
            protobuf-c that tests keep as the reference.
            """)
    var only: String?

    mutating func run() throws {
        precondition(batchSize > 0 && events >= batchSize && rounds > 0 && distinctBatches > 0)
        var fixtures = EventFixtures(seed: seed)
        let batches = (0..<distinctBatches).map { index in
            fixtures.batch(sequence: UInt64(index + 1), count: batchSize, kinds: EventFixtures.execOpenConnect)
        }
        let encodedSamples = batches.map { WireCodec.encode($0) }
        for (batch, bytes) in zip(batches, encodedSamples) where try WireCodec.decodeEventBatch(bytes) != batch {
            throw ValidationError("round trip mismatch in batch \(batch.sequence)")
        }
        let batchCount = events / batchSize
        let totalEvents = batchCount * batchSize
        let bytesPerEvent = Double(encodedSamples.reduce(0) { $0 + $1.count }) / Double(distinctBatches * batchSize)

        print("wire: \(totalEvents) events in \(batchCount) batches of \(batchSize), exec/open/open/open/connect mix")
        print("wire: \(String(format1: bytesPerEvent)) bytes/event on the wire")

        if let only {
            let start = threadCPUSeconds()
            var sink = 0
            for index in 0..<batchCount {
                if only == "encode" {
                    sink &+= WireCodec.encode(batches[index % distinctBatches]).count
                } else if only == "unpack" {
                    sink &+= WireCodec.unpackEventBatchOnly(encodedSamples[index % distinctBatches])
                } else if only == "decode-protobuf-c" {
                    sink &+= try WireCodec.decodeEventBatchViaProtobufC(encodedSamples[index % distinctBatches])
                        .events.count
                } else {
                    sink &+= try WireCodec.decodeEventBatch(encodedSamples[index % distinctBatches]).events.count
                }
            }
            let seconds = threadCPUSeconds() - start
            print("wire: \(only) only: \(String(format1: seconds * 1e9 / Double(totalEvents))) CPU-ns/event (\(sink))")
            return
        }

        var bestEncode = Duration.seconds(1_000_000)
        var bestDecode = Duration.seconds(1_000_000)
        var bestBoth = Duration.seconds(1_000_000)
        var checksum = 0
        var bestCPU = Double.infinity
        let clock = ContinuousClock()
        for _ in 0..<rounds {
            let cpuStart = threadCPUSeconds()
            var encodeTime = Duration.zero
            var decodeTime = Duration.zero
            for index in 0..<batchCount {
                let batch = batches[index % distinctBatches]
                let start = clock.now
                let bytes = WireCodec.encode(batch)
                let middle = clock.now
                let decoded = try WireCodec.decodeEventBatch(bytes)
                let end = clock.now
                encodeTime += middle - start
                decodeTime += end - middle
                checksum &+= bytes.count &+ decoded.events.count
            }
            bestEncode = min(bestEncode, encodeTime)
            bestDecode = min(bestDecode, decodeTime)
            bestBoth = min(bestBoth, encodeTime + decodeTime)
            bestCPU = min(bestCPU, threadCPUSeconds() - cpuStart)
        }

        func rate(_ duration: Duration) -> String {
            let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
            let perSecond = Double(totalEvents) / seconds
            return "\(String(format1: perSecond / 1e6))M events/s (\(String(format1: seconds * 1e9 / Double(totalEvents))) ns/event)"
        }
        print("wire: encode          \(rate(bestEncode))")
        print("wire: decode          \(rate(bestDecode))")
        print("wire: encode+decode   \(rate(bestBoth))  [best of \(rounds), one core]")
        print(
            "wire: encode+decode   \(String(format1: Double(totalEvents) / bestCPU / 1e6))M events per CPU-second "
                + "(thread CPU time, excludes waiting for a core on a busy machine)")
        if checksum == 42 { print("") }  // keep the work observable
    }
}

/// CPU time this thread has used, in seconds.
func threadCPUSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

extension String {
    /// One decimal place, without Foundation.
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths % 10))"
    }
}
