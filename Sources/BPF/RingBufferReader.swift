internal import CLibBPF
public import Basics
import Foundation
import Logging
import Synchronization

/// Reads a `BPF_MAP_TYPE_RINGBUF` map on its own dedicated thread (`ring_buffer__poll`) and hands a
/// copy of every record to Swift through `records`, a bounded buffer, in chunks. When `records` is full
/// the thread waits instead of dropping, leaving the records in the kernel ring buffer: a slow consumer costs
/// kernel-side reservation failures (counted by the BPF programs), never unbounded user-space memory.
///
/// Lifecycle: `start()` once; `stop()` asks the thread to finish (within one poll timeout); the
/// thread then frees the libbpf ring buffer and finishes `records`, so a consumer looping on
/// `records.drain()` ends by seeing nil. A started reader keeps itself (and its object) alive until
/// stopped; stop readers before closing their `BPFObject`.
public final class RingBufferReader: Sendable {
    /// Copied records, oldest first. `records.droppedCount` counts records given up on when stopping.
    public let records: BoundedBuffer<[UInt8]>
    public let mapName: String
    private let map: BPFMap
    private let pollTimeoutMilliseconds: Int32
    private let state = Mutex(State())
    private let stopped = Atomic<Bool>(false)
    private let context: Context
    private let logger: Logger

    private struct State {
        var started = false
        /// The libbpf `struct ring_buffer *`, as an address (pointers are not Sendable).
        var ring: UInt?
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
        var exited = false
    }

    /// Everything the C callback needs, passed through `Unmanaged`.
    private final class Context: Sendable {
        let records: BoundedBuffer<[UInt8]>
        let received = Atomic<UInt64>(0)
        let stopped = Atomic<Bool>(false)
        /// Records copied but not yet handed over. They go to `records` in chunks, so the lock and the
        /// consumer's wake-up are paid once per chunk, not once per record. Only the polling thread uses it.
        let pending = Mutex<[[UInt8]]>([])
        static let chunk = 256
        init(records: BoundedBuffer<[UInt8]>) { self.records = records }

        /// Hands `pending` to `records`, waiting while `records` is full. Waiting here stops the thread from
        /// consuming the kernel ring buffer, so a consumer that falls behind is absorbed by the ring buffer
        /// (memory already mapped) rather than by a growing queue, and only what the ring buffer cannot hold
        /// is lost, counted by the kernel as reservation failures. Records still pending when the reader
        /// stops or `records` is finished are counted as dropped.
        func flush() {
            pending.withLock { pending in
                while !pending.isEmpty {
                    let open = records.offer(contentsOf: &pending)
                    if pending.isEmpty { return }
                    if !open || stopped.load(ordering: .acquiring) {
                        records.countDropped(pending.count)
                        pending.removeAll(keepingCapacity: true)
                        return
                    }
                    usleep(200)
                }
            }
        }
    }

    /// - Parameters:
    ///   - map: a ring buffer map of a loaded object.
    ///   - capacity: records held for the consumer before new ones are dropped (and counted).
    ///   - pollTimeout: how long one `ring_buffer__poll` waits; bounds how long `stop()` takes.
    public init(
        map: BPFMap, capacity: Int = 65_536, pollTimeout: Duration = .milliseconds(100),
        logger: Logger = Logger(label: "patrol.bpf.ringbuf")
    ) throws(BPFError) {
        guard map.isRingBuffer else {
            throw BPFError(.invalidArgument, "map \(map.name) is not a ring buffer (BPF_MAP_TYPE_RINGBUF)")
        }
        guard capacity > 0 else { throw BPFError(.invalidArgument, "ring buffer reader capacity must be positive") }
        self.map = map
        self.mapName = map.name
        self.records = BoundedBuffer(capacity: capacity)
        self.context = Context(records: records)
        let millis = pollTimeout.components.seconds * 1000 + pollTimeout.components.attoseconds / 1_000_000_000_000_000
        self.pollTimeoutMilliseconds = Int32(clamping: max(1, millis))
        self.logger = logger
        let fd = map.fileDescriptor
        let opaque = Unmanaged.passUnretained(context).toOpaque()
        LibBPFLog.install()
        guard let ring = ring_buffer__new(fd, { ctx, data, size in
            guard let ctx, let data else { return 0 }
            let context = Unmanaged<Context>.fromOpaque(ctx).takeUnretainedValue()
            context.received.add(1, ordering: .relaxed)
            let bytes = [UInt8](UnsafeRawBufferPointer(start: data, count: size))
            let count = context.pending.withLock { pending in
                pending.append(bytes)
                return pending.count
            }
            if count >= Context.chunk { context.flush() }
            return 0
        }, opaque, nil) else {
            let code = patrol_errno()
            throw BPFError(.ringBuffer, "cannot create ring buffer reader for map \(map.name)",
                cause: LibBPFLog.cause(code))
        }
        let address = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(ring)))
        state.withLock { $0.ring = address }
    }

    deinit {
        // Only reached when the thread is not running (it retains self), so freeing here is safe.
        if let ring = state.withLock({ $0.ring }) { ring_buffer__free(OpaquePointer(bitPattern: ring)) }
    }

    /// Records the C callback has seen, whether or not they fitted in `records`.
    public var receivedCount: UInt64 { context.received.load(ordering: .relaxed) }
    /// Records given up on because `records` was still full (or finished) when the reader stopped.
    public var droppedCount: UInt64 { records.droppedCount }

    /// Starts the polling thread. Calling it again does nothing.
    public func start() {
        let startNow = state.withLock { state -> Bool in
            guard !state.started, !stopped.load(ordering: .acquiring), state.ring != nil else { return false }
            state.started = true
            return true
        }
        guard startNow else { return }
        let thread = Thread { [self] in
            guard let ring = self.state.withLock({ $0.ring }) else { return }
            self.pollLoop(OpaquePointer(bitPattern: ring)!)
        }
        thread.name = "bpf-ringbuf-\(mapName)"
        thread.start()
    }

    /// Asks the polling thread to stop; it exits within one poll timeout. Never blocks.
    public func stop() {
        stopped.store(true, ordering: .releasing)
        context.stopped.store(true, ordering: .releasing)
        let neverStarted = state.withLock { state -> Bool in
            if state.started { return false }
            state.exited = true
            return true
        }
        if neverStarted {
            records.finish()
            resumeWaiters()
        }
    }

    /// Waits until the polling thread has exited (after `stop()`), without blocking a thread.
    public func waitUntilStopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                if state.exited { return true }
                state.exitWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    private func pollLoop(_ ring: OpaquePointer) {
        var failure: Int32 = 0
        while !stopped.load(ordering: .acquiring) {
            var rc = ring_buffer__poll(ring, pollTimeoutMilliseconds)
            if rc == 0 {
                // A timeout: `ring_buffer__poll` only reads rings the kernel woke it for, and producers may
                // submit without waking it (BPF_RB_NO_WAKEUP, as the sensor's programs do below a mark), so
                // read what is there anyway. This is what bounds a record's wait to one poll timeout.
                rc = ring_buffer__consume(ring)
            }
            context.flush()
            if rc < 0 && rc != -EINTR {
                failure = rc
                break
            }
        }
        if failure == 0 {
            // Hand over whatever is already committed.
            _ = ring_buffer__consume(ring)
            context.flush()
        } else {
            logger.error(
                "ring buffer poll failed", metadata: ["map": "\(mapName)", "error": "\(LibBPFLog.cause(failure))"])
        }
        state.withLock { state in
            ring_buffer__free(ring)
            state.ring = nil
            state.exited = true
        }
        records.finish()
        resumeWaiters()
    }

    private func resumeWaiters() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.exitWaiters = [] }
            return state.exitWaiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

extension BPFObject {
    /// A reader for the ring buffer map `name` (the object must be loaded).
    public func ringBufferReader(map name: String, capacity: Int = 65_536, pollTimeout: Duration = .milliseconds(100))
        throws(BPFError) -> RingBufferReader
    {
        try RingBufferReader(map: try map(named: name), capacity: capacity, pollTimeout: pollTimeout)
    }
}
