import Basics
import EventModel
import Logging
import Synchronization

/// What to drop when a bound is reached. Either way every drop is counted.
public enum OverflowPolicy: String, Sendable, Hashable {
    /// Drop the oldest unacked batch that is not in flight (favours fresh events).
    case dropOldest = "drop_oldest"
    /// Refuse the batch being submitted (favours the history).
    case dropNewest = "drop_newest"
}

public struct BatchSenderConfiguration: Sendable {
    /// The collector, and how to reach it.
    public var client: RPCClientConfiguration
    public var sensorID: String
    /// Unique per sensor start; sequences restart at 1 for each boot.
    public var bootID: String
    /// Batches sent concurrently (each on its own nng context).
    public var maxInFlight: Int
    /// Unacked batches kept in memory; beyond this they go to the spool (or are dropped without one).
    public var memoryQueueLimit: Int
    /// Directory for spilled batches; nil keeps everything in memory.
    public var spoolDirectory: String?
    /// Bound on the bytes in the spool.
    public var spoolMaxBytes: Int
    public var overflowPolicy: OverflowPolicy
    /// How long one attempt waits for its ack.
    public var callTimeout: Duration
    /// Back-off between failed attempts, doubling from minimum to maximum.
    public var retryMinimum: Duration
    public var retryMaximum: Duration
    public var method: String

    public init(
        client: RPCClientConfiguration, sensorID: String, bootID: String, maxInFlight: Int = 4,
        memoryQueueLimit: Int = 64, spoolDirectory: String? = nil, spoolMaxBytes: Int = 256 << 20,
        overflowPolicy: OverflowPolicy = .dropOldest, callTimeout: Duration = .seconds(10),
        retryMinimum: Duration = .milliseconds(50), retryMaximum: Duration = .seconds(2),
        method: String = BatchProtocol.sendBatchMethod
    ) {
        self.client = client
        self.sensorID = sensorID
        self.bootID = bootID
        self.maxInFlight = maxInFlight
        self.memoryQueueLimit = memoryQueueLimit
        self.spoolDirectory = spoolDirectory
        self.spoolMaxBytes = spoolMaxBytes
        self.overflowPolicy = overflowPolicy
        self.callTimeout = callTimeout
        self.retryMinimum = retryMinimum
        self.retryMaximum = retryMaximum
        self.method = method
    }
}

/// A snapshot of a `BatchSender`'s counters and queue depths (for `SensorStatus`).
public struct BatchSenderStats: Sendable, Hashable {
    public var submittedBatches: UInt64 = 0
    public var submittedEvents: UInt64 = 0
    public var acknowledgedBatches: UInt64 = 0
    public var acknowledgedEvents: UInt64 = 0
    /// Batches dropped because a bound was reached (memory without spool, or spool bytes).
    public var droppedBatches: UInt64 = 0
    public var droppedEvents: UInt64 = 0
    /// Batches the collector refused as invalid (INVALID_ARGUMENT); not retried.
    public var rejectedBatches: UInt64 = 0
    public var rejectedEvents: UInt64 = 0
    /// Batches ever written to the spool.
    public var spilledBatches: UInt64 = 0
    /// Spool files that could not be written or read back (their batches are counted as dropped).
    public var spoolErrors: UInt64 = 0
    /// Batches of earlier boots found in the spool at start and delivered.
    public var replayedBatches: UInt64 = 0
    /// Batches of earlier boots still waiting in the spool.
    public var earlierBootDepth: Int = 0
    /// Attempts that failed and were retried.
    public var retries: UInt64 = 0
    public var memoryDepth: Int = 0
    public var spoolDepth: Int = 0
    public var spoolBytes: Int = 0
    public var inFlight: Int = 0
    /// The last sequence assigned.
    public var lastSequence: UInt64 = 0
    /// The collector's highest contiguous sequence, from the latest ack.
    public var collectorHighestContiguous: UInt64 = 0
}

/// The sensor side of the batch protocol (DESIGN.md §3).
///
/// - Sequences start at 1 for each boot, assigned by `submit` in submission order.
/// - Up to `maxInFlight` batches are sent at once; each unacked batch stays queued until the collector
///   acks it, in memory up to `memoryQueueLimit` and beyond that in the spool directory, bounded by
///   `spoolMaxBytes`. At a bound, `overflowPolicy` picks the victim and the drop is counted.
/// - Failed attempts (collector unreachable, timeout, UNAVAILABLE) are retried with back-off, lowest
///   sequence first, so spool and memory replay in sequence order when the collector comes back.
///
/// `run()` delivers until `close()` or cancellation; `submit` may be called from anywhere.
public final class BatchSender: Sendable {
    public let configuration: BatchSenderConfiguration
    public let client: RPCClient
    private let spool: Spool?
    private let logger: Logger
    private let onAck: (@Sendable (BatchAck) -> Void)?
    private let state: Mutex<State>

    private enum Location {
        case memory([UInt8])
        /// Being written to the spool; the bytes stay usable until the write finishes.
        case spooling([UInt8])
        case spool
    }

    private struct Entry {
        var eventCount: Int
        var size: Int
        var location: Location
    }

    private struct EarlierBatch {
        var path: String
        var size: Int
    }

    private struct State {
        var nextSequence: UInt64 = 1
        var entries: [UInt64: Entry] = [:]
        var inFlight: Set<UInt64> = []
        /// No sequence below this is waiting to be sent.
        var cursor: UInt64 = 1
        var memoryCount = 0
        /// Spooled (or spooling) sequences, ascending.
        var spooled: [UInt64] = []
        var spoolBytes = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// Spool files of earlier boots, oldest first; delivered before this boot's batches.
        var earlier: [EarlierBatch] = []
        var earlierInFlight: Set<String> = []
        /// Producers waiting in `waitForMemoryCapacity`.
        var capacityWaiters: [CheckedContinuation<Bool, Never>] = []
        var closed = false
        var stats = BatchSenderStats()

        mutating func takeWaiters() -> [CheckedContinuation<Void, Never>] {
            defer { waiters.removeAll() }
            return waiters
        }

        mutating func remove(_ sequence: UInt64) -> Entry? {
            guard let entry = entries.removeValue(forKey: sequence) else { return nil }
            switch entry.location {
            case .memory:
                memoryCount -= 1
                if !capacityWaiters.isEmpty {
                    let waiters = capacityWaiters
                    capacityWaiters.removeAll()
                    for waiter in waiters { waiter.resume(returning: false) }
                }
            case .spooling, .spool:
                spoolBytes -= entry.size
                if let index = spooled.firstIndex(of: sequence) { spooled.remove(at: index) }
            }
            return entry
        }

        var hasWork: Bool {
            if earlier.contains(where: { !earlierInFlight.contains($0.path) }) { return true }
            var sequence = cursor
            while sequence < nextSequence {
                if entries[sequence] != nil && !inFlight.contains(sequence) { return true }
                sequence += 1
            }
            return false
        }

        /// Removes the oldest earlier-boot file not in flight (for `dropOldest`); returns its path.
        mutating func dropOldestEarlier() -> String? {
            guard let index = earlier.firstIndex(where: { !earlierInFlight.contains($0.path) }) else { return nil }
            let file = earlier.remove(at: index)
            spoolBytes -= file.size
            stats.droppedBatches += 1
            return file.path
        }

        mutating func removeEarlier(_ path: String) -> Bool {
            earlierInFlight.remove(path)
            guard let index = earlier.firstIndex(where: { $0.path == path }) else { return false }
            spoolBytes -= earlier[index].size
            earlier.remove(at: index)
            return true
        }

        mutating func countDrop(_ entry: Entry) {
            stats.droppedBatches += 1
            stats.droppedEvents += UInt64(entry.eventCount)
        }
    }

    public init(
        configuration: BatchSenderConfiguration, logger: Logger = Logger(label: "patrol.transport.batch-sender"),
        onAck: (@Sendable (BatchAck) -> Void)? = nil
    ) throws(TransportError) {
        precondition(configuration.maxInFlight > 0 && configuration.memoryQueueLimit > 0)
        self.configuration = configuration
        self.logger = logger
        self.onAck = onAck
        self.client = try RPCClient(configuration: configuration.client, logger: logger)
        if let directory = configuration.spoolDirectory {
            let spool = try Spool(directory: directory, bootID: configuration.bootID)
            self.spool = spool
            // Batches of earlier boots are complete EventBatch messages: deliver them first (the collector
            // de-duplicates by their own boot id). Beyond the byte bound the oldest are dropped, counted.
            var initial = State()
            var discarded: [String] = []
            for leftover in spool.leftovers() {
                initial.earlier.append(EarlierBatch(path: leftover.path, size: leftover.size))
                initial.spoolBytes += leftover.size
            }
            while initial.spoolBytes > configuration.spoolMaxBytes, let path = initial.dropOldestEarlier() {
                discarded.append(path)
            }
            for path in discarded { spool.remove(path: path) }
            if !initial.earlier.isEmpty || !discarded.isEmpty {
                logger.notice(
                    "spool holds batches of earlier boots; delivering them first",
                    metadata: [
                        "directory": "\(directory)", "files": "\(initial.earlier.count)",
                        "bytes": "\(initial.spoolBytes)", "droppedOverBound": "\(discarded.count)",
                    ])
            }
            state = Mutex(initial)
        } else {
            spool = nil
            state = Mutex(State())
        }
    }

    public var stats: BatchSenderStats {
        state.withLock { state in
            var stats = state.stats
            stats.memoryDepth = state.memoryCount
            stats.spoolDepth = state.spooled.count + state.earlier.count
            stats.earlierBootDepth = state.earlier.count
            stats.spoolBytes = state.spoolBytes
            stats.inFlight = state.inFlight.count
            stats.lastSequence = state.nextSequence - 1
            return stats
        }
    }

    /// Batches not yet acked (in memory, spooled or in flight).
    public var pendingBatches: Int { state.withLock { $0.entries.count + $0.earlier.count } }

    /// Queues one batch of already encoded events (`BatchProtocol.encodeEvents`: protobuf `EventBatch.events`
    /// entries) and returns its sequence number, or nil when the
    /// overflow policy dropped it (counted in `stats.droppedBatches`).
    @discardableResult
    public func submit(encodedEvents: [UInt8], eventCount: Int, compressed: Bool = false) async -> UInt64? {
        let configuration = self.configuration
        // Sequence assignment and placement happen under one lock so sequences follow submission order.
        var droppedEarlier: [String] = []
        let (sequence, bytes, toSpool, dropped) = state.withLock {
            state -> (UInt64, [UInt8], Bool, [(UInt64, Entry)]) in
            let sequence = state.nextSequence
            state.nextSequence += 1
            state.stats.submittedBatches += 1
            state.stats.submittedEvents += UInt64(eventCount)
            let header = BatchHeader(
                sensorID: configuration.sensorID, bootID: configuration.bootID, sequence: sequence,
                compressed: compressed, eventCount: eventCount)
            let bytes = BatchProtocol.encodeBatch(header, encodedEvents: encodedEvents)
            var entry = Entry(eventCount: eventCount, size: bytes.count, location: .memory(bytes))
            var dropped: [(UInt64, Entry)] = []
            if state.memoryCount < configuration.memoryQueueLimit {
                state.entries[sequence] = entry
                state.memoryCount += 1
                return (sequence, bytes, false, dropped)
            }
            if spool != nil {
                // Spill to disk, within the byte bound.
                while state.spoolBytes + bytes.count > configuration.spoolMaxBytes {
                    if configuration.overflowPolicy == .dropOldest, let path = state.dropOldestEarlier() {
                        droppedEarlier.append(path)
                        continue
                    }
                    guard configuration.overflowPolicy == .dropOldest,
                        let victim = state.spooled.first(where: { !state.inFlight.contains($0) }),
                        case .spool = state.entries[victim]?.location
                    else {
                        state.countDrop(entry)
                        return (sequence, [], false, dropped + [(sequence, entry)])
                    }
                    if let removed = state.remove(victim) {
                        state.countDrop(removed)
                        dropped.append((victim, removed))
                    }
                }
                entry.location = .spooling(bytes)
                state.entries[sequence] = entry
                state.spooled.append(sequence)
                state.spoolBytes += bytes.count
                state.stats.spilledBatches += 1
                return (sequence, bytes, true, dropped)
            }
            // No spool: the memory bound is the only bound.
            guard configuration.overflowPolicy == .dropOldest,
                let victim = state.entries.keys.filter({ !state.inFlight.contains($0) }).min(),
                let removed = state.remove(victim)
            else {
                state.countDrop(entry)
                return (sequence, [], false, [(sequence, entry)])
            }
            state.countDrop(removed)
            state.entries[sequence] = entry
            state.memoryCount += 1
            return (sequence, bytes, false, [(victim, removed)])
        }
        for path in droppedEarlier {
            spool?.remove(path: path)
            logger.warning("batch of an earlier boot dropped at spool bound", metadata: ["file": "\(path)"])
        }
        for (victim, entry) in dropped {
            if victim != sequence, case .spool = entry.location { spool?.remove(victim) }
            logger.warning(
                "batch dropped at queue bound",
                metadata: [
                    "sequence": "\(victim)", "events": "\(entry.eventCount)",
                    "policy": "\(configuration.overflowPolicy.rawValue)",
                    "spool": "\(spool != nil)",
                ])
        }
        if dropped.contains(where: { $0.0 == sequence }) { return nil }
        if toSpool, let spool {
            do {
                try await spool.write(sequence, bytes)
                let stillQueued = state.withLock { state -> Bool in
                    guard var entry = state.entries[sequence] else { return false }
                    entry.location = .spool
                    state.entries[sequence] = entry
                    return true
                }
                if !stillQueued { spool.remove(sequence) }  // acked while it was being written
            } catch {
                // The bytes are still in the entry: keep them in memory rather than lose them.
                logger.error("spool write failed; keeping the batch in memory", metadata: ["error": "\(error)"])
                state.withLock { state in
                    state.stats.spoolErrors += 1
                    if var entry = state.entries[sequence], case .spooling(let bytes) = entry.location {
                        entry.location = .memory(bytes)
                        state.entries[sequence] = entry
                        state.spoolBytes -= entry.size
                        state.memoryCount += 1
                        if let index = state.spooled.firstIndex(of: sequence) { state.spooled.remove(at: index) }
                    }
                }
            }
        }
        for waiter in state.withLock({ $0.takeWaiters() }) { waiter.resume() }
        return sequence
    }

    /// Encodes `events` and queues them as one batch; see `submit(encodedEvents:eventCount:compressed:)`.
    @discardableResult
    public func submit(events: [Event]) async -> UInt64? {
        await submit(encodedEvents: BatchProtocol.encodeEvents(events), eventCount: events.count)
    }

    /// Waits until the memory queue has room, for producers that prefer back-pressure to spilling
    /// (benchmarks, replays). Returns at once when closed.
    public func waitForMemoryCapacity() async {
        while true {
            let ready = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let ready = state.withLock { state -> Bool in
                    if state.closed || state.memoryCount < configuration.memoryQueueLimit { return true }
                    state.capacityWaiters.append(continuation)
                    return false
                }
                if ready { continuation.resume(returning: true) }
            }
            if ready { return }
        }
    }

    /// Delivers batches until `close()` is called or the task is cancelled.
    public func run() async {
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                for _ in 0..<configuration.maxInFlight {
                    group.addTask { await self.deliver() }
                }
            }
        } onCancel: {
            self.close()
        }
    }

    /// Waits until every submitted batch is acked or dropped; false on timeout.
    public func flush(timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if state.withLock({ $0.entries.isEmpty && $0.earlier.isEmpty }) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return state.withLock { $0.entries.isEmpty && $0.earlier.isEmpty }
    }

    /// Stops delivery. Unacked batches stay in the spool files only for the record: the next boot
    /// starts a new sequence stream.
    public func close() {
        let (waiters, producers) = state.withLock { state in
            state.closed = true
            defer { state.capacityWaiters.removeAll() }
            return (state.takeWaiters(), state.capacityWaiters)
        }
        for waiter in waiters { waiter.resume() }
        for producer in producers { producer.resume(returning: true) }
        client.close()
    }

    // MARK: Delivery

    private enum Next {
        case earlier(String)
        case batch(UInt64, Entry)
        case wait
        case closed
    }

    private func next() -> Next {
        state.withLock { state in
            if state.closed { return .closed }
            if let file = state.earlier.first(where: { !state.earlierInFlight.contains($0.path) }) {
                state.earlierInFlight.insert(file.path)
                return .earlier(file.path)
            }
            var sequence = state.cursor
            while sequence < state.nextSequence {
                if state.entries[sequence] != nil && !state.inFlight.contains(sequence) {
                    state.inFlight.insert(sequence)
                    state.cursor = sequence + 1
                    return .batch(sequence, state.entries[sequence]!)
                }
                if state.entries[sequence] == nil || state.inFlight.contains(sequence) {
                    // Acked, dropped or in flight: nothing to send here.
                    if state.cursor == sequence { state.cursor = sequence + 1 }
                }
                sequence += 1
            }
            return .wait
        }
    }

    private func waitForWork() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.closed { return true }
                // Re-check under the lock: work may have arrived since `next()`.
                if state.hasWork { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    private func deliver() async {
        var backoff = configuration.retryMinimum
        while true {
            let sequence: UInt64
            let entry: Entry
            switch next() {
            case .closed: return
            case .wait:
                await waitForWork()
                continue
            case .earlier(let path):
                backoff = await deliverEarlier(path, backoff: backoff)
                continue
            case .batch(let s, let e):
                sequence = s
                entry = e
            }
            let bytes: [UInt8]
            switch entry.location {
            case .memory(let b), .spooling(let b): bytes = b
            case .spool:
                do {
                    bytes = try await spool!.read(sequence)
                } catch {
                    logger.error(
                        "spooled batch unreadable; dropped", metadata: ["sequence": "\(sequence)", "error": "\(error)"])
                    state.withLock { state in
                        state.inFlight.remove(sequence)
                        state.stats.spoolErrors += 1
                        if let removed = state.remove(sequence) { state.countDrop(removed) }
                    }
                    continue
                }
            }
            let outcome = await attempt(bytes)
            switch outcome {
            case .acked(let ack):
                let removed = state.withLock { state -> Entry? in
                    state.inFlight.remove(sequence)
                    guard let removed = state.remove(sequence) else { return nil }
                    state.stats.acknowledgedBatches += 1
                    state.stats.acknowledgedEvents += UInt64(removed.eventCount)
                    if let ack, ack.bootID == configuration.bootID {
                        state.stats.collectorHighestContiguous = max(
                            state.stats.collectorHighestContiguous, ack.highestContiguousSequence)
                    }
                    return removed
                }
                if let removed, case .spool = removed.location { spool?.remove(sequence) }
                if let ack, let onAck { onAck(ack) }
                backoff = configuration.retryMinimum
            case .rejected(let reply):
                logger.error(
                    "collector rejected batch; not retried",
                    metadata: ["sequence": "\(sequence)", "status": "\(reply.status)", "message": "\(reply.message)"])
                let removed = state.withLock { state -> Entry? in
                    state.inFlight.remove(sequence)
                    guard let removed = state.remove(sequence) else { return nil }
                    state.stats.rejectedBatches += 1
                    state.stats.rejectedEvents += UInt64(removed.eventCount)
                    return removed
                }
                if let removed, case .spool = removed.location { spool?.remove(sequence) }
            case .retry(let why):
                let waiters = state.withLock { state in
                    state.inFlight.remove(sequence)
                    state.cursor = min(state.cursor, sequence)
                    state.stats.retries += 1
                    return state.takeWaiters()
                }
                for waiter in waiters { waiter.resume() }
                logger.debug(
                    "batch delivery failed; retrying",
                    metadata: ["sequence": "\(sequence)", "reason": "\(why)", "backoff": "\(backoff)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.retryMaximum)
            }
        }
    }

    /// Sends one spool file of an earlier boot, as is. Returns the next back-off.
    private func deliverEarlier(_ path: String, backoff: Duration) async -> Duration {
        guard let spool else { return backoff }
        let bytes: [UInt8]
        do {
            bytes = try await spool.read(path: path)
        } catch {
            logger.error(
                "spooled batch of an earlier boot unreadable; dropped",
                metadata: ["file": "\(path)", "error": "\(error)"])
            state.withLock { state in
                if state.removeEarlier(path) {
                    state.stats.spoolErrors += 1
                    state.stats.droppedBatches += 1
                }
            }
            spool.remove(path: path)
            return backoff
        }
        let outcome = await attempt(bytes)
        switch outcome {
        case .acked:
            let removed = state.withLock { state in
                let removed = state.removeEarlier(path)
                if removed { state.stats.replayedBatches += 1 }
                return removed
            }
            if removed { spool.remove(path: path) }
            return configuration.retryMinimum
        case .rejected(let reply):
            logger.error(
                "collector rejected a batch of an earlier boot; not retried",
                metadata: ["file": "\(path)", "status": "\(reply.status)", "message": "\(reply.message)"])
            let removed = state.withLock { state in
                let removed = state.removeEarlier(path)
                if removed { state.stats.rejectedBatches += 1 }
                return removed
            }
            if removed { spool.remove(path: path) }
            return backoff
        case .retry(let why):
            state.withLock { state in
                state.earlierInFlight.remove(path)
                state.stats.retries += 1
            }
            logger.debug(
                "earlier-boot batch delivery failed; retrying", metadata: ["file": "\(path)", "reason": "\(why)"])
            try? await Task.sleep(for: backoff)
            return min(backoff * 2, configuration.retryMaximum)
        }
    }

    /// One delivery attempt of an encoded batch.
    private func attempt(_ bytes: [UInt8]) async -> Outcome {
        do {
            let reply = try await client.call(
                RPCRequest(method: configuration.method, payload: bytes), timeout: configuration.callTimeout)
            switch reply.status {
            case .ok: return .acked(try? BatchProtocol.decodeAck(reply))
            case .invalidArgument, .unimplemented, .permissionDenied, .unauthenticated, .outOfRange:
                return .rejected(reply)
            default: return .retry("collector replied \(reply.status): \(reply.message)")
            }
        } catch {
            return .retry("\(error)")
        }
    }

    private enum Outcome {
        case acked(BatchAck?)
        case rejected(RPCReply)
        case retry(String)
    }
}
