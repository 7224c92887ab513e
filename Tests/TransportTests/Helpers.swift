import EventModel
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Transport

/// Runs `server` for the duration of `body`, then closes it and waits for `run()` to return.
func withServer<T: Sendable>(
    _ server: RPCServer, _ body: @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            await server.run()
            return nil
        }
        do {
            let result = try await body()
            server.close()
            for try await _ in group {}
            return result
        } catch {
            server.close()
            for try await _ in group {}
            throw error
        }
    }
}

func echoServer(
    _ address: String, tls: TLSConfiguration? = nil, maxMessageSize: Int = 8 << 20
) throws(TransportError) -> RPCServer {
    try RPCServer(configuration: RPCServerConfiguration(address: address, tls: tls, maxMessageSize: maxMessageSize)) {
        request, _ in
        RPCReply(status: .ok, message: request.method, payload: request.payload)
    }
}

/// A collector stand-in: decodes batches, de-duplicates them and acks.
final class CollectorStub: Sendable {
    struct State {
        var dedup = BatchDeduplicator()
        var sequences: [UInt64] = []
        var duplicates = 0
        var events = 0
    }
    let state = Mutex(State())
    /// Also decode the events (WireFormat), as a real collector does after the duplicate check.
    let decodeEvents: Bool

    init(decodeEvents: Bool = false) { self.decodeEvents = decodeEvents }

    var handler: RPCServer.Handler {
        { [self] request, _ in
            let batch: ReceivedBatch
            do {
                batch = try BatchProtocol.decodeBatch(request)
            } catch {
                return BatchProtocol.rejection(error)
            }
            if decodeEvents, !state.withLock({ $0.dedup.isDuplicate(batch.header) }) {
                do {
                    let decoded = try batch.decode()
                    guard decoded.events.count == batch.header.eventCount else {
                        return RPCReply(status: .dataLoss, message: "event count mismatch")
                    }
                } catch {
                    return BatchProtocol.rejection(error)
                }
            }
            let ack = state.withLock { state -> BatchAck in
                if state.dedup.record(batch.header) {
                    state.sequences.append(batch.header.sequence)
                    state.events += batch.header.eventCount
                } else {
                    state.duplicates += 1
                }
                return state.dedup.ack(for: batch.header)
            }
            return BatchProtocol.reply(ack)
        }
    }

    var received: Set<UInt64> { state.withLock { Set($0.sequences) } }
    func highest(_ sensorID: String, _ bootID: String) -> UInt64 {
        state.withLock { $0.dedup.highestContiguous(sensorID: sensorID, bootID: bootID) }
    }
}

/// Polls `condition` until true or `timeout`.
func eventually(timeout: Duration = .seconds(20), _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

func payload(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

/// `count` realistic events (seeded fixtures), encoded once as `EventBatch.events` entries.
func sampleEvents(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var fixtures = EventFixtures(seed: seed)
    return BatchProtocol.encodeEvents(fixtures.events(count))
}
