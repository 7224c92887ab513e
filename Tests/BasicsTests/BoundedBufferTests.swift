import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import Basics

@Suite struct BoundedBufferTests {
    @Test func refusesAndCountsWhenFull() async {
        let buffer = BoundedBuffer<Int>(capacity: 2)
        #expect(buffer.offer(1))
        #expect(buffer.offer(2))
        #expect(!buffer.offer(3))
        #expect(buffer.droppedCount == 1)
        #expect(await buffer.drain() == [1, 2])
        buffer.finish()
        #expect(await buffer.drain() == nil)
    }

    @Test func chunkOfferTakesWhatFitsAndKeepsTheRest() async {
        let buffer = BoundedBuffer<Int>(capacity: 2)
        var chunk = [1, 2, 3]
        #expect(buffer.offer(contentsOf: &chunk))
        // Nothing is dropped: the producer still holds what did not fit.
        #expect(chunk == [3])
        #expect(buffer.droppedCount == 0)
        #expect(await buffer.drain() == [1, 2])
        #expect(buffer.offer(contentsOf: &chunk))
        #expect(chunk.isEmpty)
        buffer.finish()
        var late = [4]
        #expect(!buffer.offer(contentsOf: &late))
        #expect(late == [4])
        buffer.countDropped(late.count)
        #expect(buffer.droppedCount == 1)
        #expect(await buffer.drain() == [3])
        #expect(await buffer.drain() == nil)
    }

    @Test func consumerWakesWhenProducerThreadOffers() async {
        let buffer = BoundedBuffer<Int>(capacity: 1000)
        let executor = BlockingExecutor(name: "producer")
        executor.submit {
            for i in 0..<500 { buffer.offer(i) }
            buffer.finish()
        }
        var received: [Int] = []
        while let batch = await buffer.drain(limit: 64) { received += batch }
        #expect(received == Array(0..<500))
        executor.shutdown()
    }

    @Test func blockingExecutorReturnsResultsAndErrors() async throws {
        let executor = BlockingExecutor(name: "worker", threadCount: 2)
        let value = try await executor.run { 21 * 2 }
        #expect(value == 42)
        await #expect(throws: BasicsError.self) {
            try await executor.run { throw BasicsError(.io, "boom") }
        }
        executor.shutdown()
    }

    #if os(Linux)
    /// The store's checkpoint thread runs at nice 19; the lowered priority must stay on the executor's own threads,
    /// not spread to the thread that created the executor (on Linux, PRIO_PROCESS with 0 means the calling thread).
    @Test func blockingExecutorNicenessAppliesToItsThreadsOnly() async throws {
        errno = 0
        let before = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let executor = BlockingExecutor(name: "lowprio", niceness: 19)
        let inside = try await executor.run { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) }
        #expect(inside == 19)
        #expect(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) == before)
        executor.shutdown()
    }
    #endif

    @Test func iso8601RendersUTCWithMicroseconds() {
        let time: EpochNanoseconds = 1_700_000_000_123_456_789
        #expect(time.iso8601 == "2023-11-14T22:13:20.123456Z")
    }
}

@Suite struct LogThrottleTests {
    @Test func passesTheLimitThenCountsWhatItSuppressed() {
        let throttle = LogThrottle(limit: 3, per: .seconds(3600))
        #expect(throttle.admit() == 0)
        #expect(throttle.admit() == 0)
        #expect(throttle.admit() == 0)
        for _ in 0..<5 { #expect(throttle.admit() == nil) }
    }

    @Test func aNewWindowReportsTheSuppressedCount() async throws {
        let throttle = LogThrottle(limit: 1, per: .seconds(1))
        #expect(throttle.admit() == 0)
        #expect(throttle.admit() == nil)
        #expect(throttle.admit() == nil)
        try await Task.sleep(for: .milliseconds(1200))
        // The first line of the next window says how many were held back.
        #expect(throttle.admit() == 2)
    }
}
