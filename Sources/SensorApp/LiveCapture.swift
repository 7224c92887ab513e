public import BPF
public import Basics
public import EventModel
public import KernelEvents
import Foundation
public import Logging
import Synchronization

/// Live capture from the kernel: loads the sensor's BPF object (embedded in the binary), attaches each
/// program on its own so one missing hook does not stop the rest, reads the ring buffer on a dedicated
/// thread, decodes records, resolves containers, folds duplicates and periodically turns the per-cgroup
/// syscall bitmaps into `SyscallSet` events.
///
/// Drops are counted per stage: `kernel_ringbuf` (reservation failures, from the per-CPU `drops` map),
/// `user_queue` (records still in the hand-off from the ring-buffer thread when capture stopped; while it
/// runs, a full hand-off makes that thread wait and the kernel ring buffer absorb the backlog) and `decode`
/// (a record that did not decode).
public final class LiveCapture: Sendable {
    public let configuration: LiveCaptureConfiguration
    /// Programs attached, in object order.
    public let hooksLoaded: [String]
    /// Programs that did not load or attach, with why.
    public let hooksFailed: [String: String]

    private let object: BPFObject
    private let reader: RingBufferReader
    private let dropsMap: BPFMap
    private let syscallSets: BPFMap
    private let node: String
    private let resolver: any ContainerResolving
    private let logger: Logger
    private let decodeDrops = Atomic<UInt64>(0)
    private let delivered = Atomic<UInt64>(0)
    private let foldedTotal = Atomic<UInt64>(0)
    private let lastDecodeError = Mutex<String?>(nil)

    /// Loads and attaches. Throws only when nothing can run (the object cannot be opened or loaded at all,
    /// or no program attached); individual failures are in `hooksFailed`.
    public init(
        configuration: LiveCaptureConfiguration = LiveCaptureConfiguration(), node: String,
        resolver: any ContainerResolving = HostOnlyResolver(), logger: Logger = Logger(label: "patrol.capture")
    ) throws {
        self.configuration = configuration
        self.node = node
        self.resolver = resolver
        self.logger = logger
        do {
            if try Tracefs.ensureMounted(at: configuration.tracefsPath) {
                logger.info("mounted tracefs", metadata: ["path": "\(configuration.tracefsPath)"])
            }
        } catch {
            logger.warning("tracefs is not available; tracepoint hooks will fail", metadata: ["error": "\(error)"])
        }
        let bytes = configuration.objectBytes ?? SensorABI.embeddedObject()
        let (object, loadFailures) = try Self.load(bytes: bytes, logger: logger)
        self.object = object
        do {
            let config = try object.map(named: SensorABI.MapName.config)
            let tgid = configuration.ignoreOwnProcess ? UInt32(getpid()) : 0
            try config.update(
                key: BPFMap.bytes(of: UInt32(0)),
                value: SensorABI.configValue(enabled: configuration.enabledKinds, ignoreTgid: tgid))
            let ignored = try object.map(named: SensorABI.MapName.ignoredCgroups)
            for id in configuration.ignoredCgroups {
                try ignored.update(key: BPFMap.bytes(of: id), value: [1])
            }
            dropsMap = try object.map(named: SensorABI.MapName.drops)
            syscallSets = try object.map(named: SensorABI.MapName.syscallSets)
            // The BPF programs wake the reader only once 256 KiB wait (bpf/sensor.bpf.c, WAKEUP_BYTES), so the
            // poll timeout is what bounds how long a record waits at low rates: 10 ms of exec-to-alert latency
            // at most, for 100 cheap wake-ups a second.
            reader = try object.ringBufferReader(
                map: SensorABI.MapName.events, capacity: configuration.queueCapacity, pollTimeout: .milliseconds(10))
        } catch {
            object.close()
            throw error
        }
        let report = object.attachAll()
        var failed = loadFailures
        for (name, why) in report.failed { failed[name] = why }
        hooksLoaded = report.attached
        hooksFailed = failed
        for (name, why) in failed.sorted(by: { $0.key < $1.key }) {
            logger.warning("sensor hook unavailable", metadata: ["program": "\(name)", "reason": "\(why)"])
        }
        logger.info(
            "live capture ready",
            metadata: ["hooks_loaded": "\(hooksLoaded.count)", "hooks_failed": "\(failed.keys.sorted())"])
        guard !hooksLoaded.isEmpty else {
            object.close()
            throw BPFError(.attach, "no sensor hook attached: \(failed)")
        }
        // Containers whose init started before now ran unobserved: their profiles can only be partial.
        resolver.observationStarted(at: BootClock.bootNow())
    }

    deinit { object.close() }

    /// Opens and loads the object; when the verifier refuses a program, loads again without it (repeatedly),
    /// so the others still run. Returns the object and the programs left out, with the reason.
    static func load(bytes: [UInt8], logger: Logger) throws -> (BPFObject, [String: String]) {
        var disabled: [String: String] = [:]
        while true {
            let object = try BPFObject(bytes: bytes, name: "sensor.bpf.o", logger: logger)
            for name in disabled.keys { try object.setAutoload(program: name, false) }
            do {
                try object.load()
                return (object, disabled)
            } catch {
                let names = object.programs.map(\.name).filter {
                    disabled[$0] == nil && error.message.contains("prog '\($0)': failed to load")
                }
                object.close()
                guard !names.isEmpty else { throw error }
                for name in names { disabled[name] = "load failed: \(error.message)" }
            }
        }
    }

    /// Drops so far, per stage (`kernel_ringbuf`, `user_queue`, `decode`).
    public var drops: [DropStage: UInt64] {
        [
            .kernelRingBuffer: kernelDropsByKind.values.reduce(0, +),
            .userQueue: reader.droppedCount,
            .decode: decodeDrops.load(ordering: .relaxed),
        ]
    }

    /// Ring-buffer reservation failures per kind, summed over CPUs.
    public var kernelDropsByKind: [KernelRecordKind: UInt64] {
        var result: [KernelRecordKind: UInt64] = [:]
        for kind in KernelRecordKind.allCases {
            guard let value = try? dropsMap.lookup(key: BPFMap.bytes(of: UInt32(kind.rawValue))) else { continue }
            var sum: UInt64 = 0
            for offset in stride(from: 0, to: value.count - 7, by: 8) {
                sum &+= value[offset..<(offset + 8)].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) }
            }
            if sum > 0 { result[kind] = sum }
        }
        return result
    }

    /// Records the ring-buffer thread has received.
    public var receivedCount: UInt64 { reader.receivedCount }
    /// Events handed to `deliver` (a folded event counts once).
    public var deliveredCount: UInt64 { delivered.load(ordering: .relaxed) }
    /// Events folded into another by de-duplication.
    public var foldedCount: UInt64 { foldedTotal.load(ordering: .relaxed) }
    /// Records waiting between the ring-buffer thread and the decoder.
    public var queueDepth: Int { reader.records.count }
    /// The last decode error, for diagnostics.
    public var lastDecodeFailure: String? { lastDecodeError.withLock { $0 } }

    /// Captures until the calling task is cancelled, handing events (node stamped, containers resolved)
    /// to `deliver` in batches of at most `batchSize`. Stops the ring-buffer thread before returning.
    public func run(batchSize: Int = 1000, deliver: @escaping @Sendable ([Event]) async -> Void) async {
        reader.start()
        let tick = min(
            configuration.dedupWindow == .zero ? .milliseconds(200) : configuration.dedupWindow / 2,
            configuration.syscallSetInterval, max(configuration.batchLinger, .milliseconds(1)))
        let records = reader.records
        await withDiscardingTaskGroup { group in
            // Wakes the consumer when idle: an empty record is a tick, never a kernel record. A full queue
            // needs no tick (the consumer is busy) and a refused tick is not a dropped record, so it is offered
            // the way that counts nothing.
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: tick)
                    var wake: [[UInt8]] = [[]]
                    _ = records.offer(contentsOf: &wake)
                }
            }
            await consume(batchSize: batchSize, deliver: deliver)
            group.cancelAll()
        }
        reader.stop()
        await reader.waitUntilStopped()
    }

    private func consume(batchSize: Int, deliver: @Sendable ([Event]) async -> Void) async {
        var decoder = KernelDecoder(clock: BootClock.measure())
        var dedup = EdgeDeduplicator(window: configuration.dedupWindow)
        let syscallInterval = Self.nanoseconds(configuration.syscallSetInterval)
        var nextSyscallFlush = BootClock.bootNow() + syscallInterval
        var nextClockMeasure = BootClock.bootNow() + 60_000_000_000
        let linger = Self.nanoseconds(configuration.batchLinger)
        var oldestPending: UInt64 = 0
        var out: [Event] = []
        out.reserveCapacity(batchSize)
        var executables = ExecutableCache()
        // One resolver call per cgroup per drained batch. The resolver's cache copies its whole entry out of a
        // lock on every call, which showed in profiles at 100k+ events/s; one batch is read at one `now`, so
        // the memo is never older than the batch.
        var containers: [UInt64: ContainerRef?] = [:]
        func container(cgroup: UInt64, pid: Int32) -> ContainerRef? {
            // Cgroup id 0 (cgroup v1 only) is resolved by pid: no memo.
            guard cgroup != 0 else { return resolver.container(forCgroup: cgroup, pid: pid) }
            if let known = containers[cgroup] { return known }
            let found = resolver.container(forCgroup: cgroup, pid: pid)
            containers[cgroup] = .some(found)
            return found
        }
        // Opens are the most frequent events: one layout lookup per cgroup per batch, like the container.
        var filesystems: [UInt64: ContainerFilesystem?] = [:]
        func filesystem(cgroup: UInt64, pid: Int32) -> ContainerFilesystem? {
            guard cgroup != 0 else { return resolver.filesystem(forCgroup: cgroup, pid: pid) }
            if let known = filesystems[cgroup] { return known }
            let found = resolver.filesystem(forCgroup: cgroup, pid: pid)
            filesystems[cgroup] = .some(found)
            return found
        }
        func emit(_ record: KernelRecord) {
            var event = record.event
            event.node = node
            executables.annotate(&event)
            event.container = container(cgroup: record.cgroupID, pid: event.process.pid)
            if event.container != nil, case .exec(var exec) = event.payload {
                let origin = resolver.execOrigin(exec.path, cgroup: record.cgroupID, pid: event.process.pid)
                exec.upperLayer = origin.upperLayer
                exec.fromVolume = origin.fromVolume
                event.payload = .exec(exec)
            } else if event.container != nil, case .open(var open) = event.payload,
                let layout = filesystem(cgroup: record.cgroupID, pid: event.process.pid), !layout.volumes.isEmpty
            {
                open.fromVolume = layout.isFromVolume(open.path)
                event.payload = .open(open)
            }
            out.append(event)
        }
        while let batch = await reader.records.drain(limit: max(1, batchSize - out.count)) {
            let now = BootClock.bootNow()
            containers.removeAll(keepingCapacity: true)
            filesystems.removeAll(keepingCapacity: true)
            for bytes in batch where !bytes.isEmpty {
                do {
                    let record = try decoder.decode(bytes)
                    if let record = dedup.offer(record, now: now) { emit(record) }
                } catch {
                    decodeDrops.add(1, ordering: .relaxed)
                    lastDecodeError.withLock { $0 = error.description }
                }
            }
            for record in dedup.expire(now: now) { emit(record) }
            if now >= nextSyscallFlush {
                nextSyscallFlush = now + syscallInterval
                for record in flushSyscallSets(decoder: decoder) { emit(record) }
            }
            if now >= nextClockMeasure {
                nextClockMeasure = now + 60_000_000_000
                decoder.clock = BootClock.measure()
            }
            foldedTotal.store(dedup.folded, ordering: .relaxed)
            // Hand on full batches at once, a partial one when its oldest event has waited `linger`.
            if !out.isEmpty && oldestPending == 0 { oldestPending = now }
            if out.count >= batchSize || (!out.isEmpty && now &- oldestPending >= linger) {
                delivered.add(UInt64(out.count), ordering: .relaxed)
                await deliver(out)
                out.removeAll(keepingCapacity: true)
                oldestPending = 0
            }
        }
        // Cancelled: hand on what de-duplication still holds and the last syscall window.
        for record in dedup.expire(now: .max, all: true) { emit(record) }
        for record in flushSyscallSets(decoder: decoder) { emit(record) }
        if !out.isEmpty {
            delivered.add(UInt64(out.count), ordering: .relaxed)
            await deliver(out)
        }
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// Reads and clears every cgroup's syscall bitmap: one `SyscallSet` event per cgroup per window.
    /// A bit set between the read and the delete falls into the next window's bitmap or is lost; the
    /// kernel re-creates the entry on the cgroup's next syscall.
    public func flushSyscallSets(decoder: KernelDecoder = KernelDecoder()) -> [KernelRecord] {
        let time = WallClock.now()
        var result: [KernelRecord] = []
        guard let keys = try? syscallSets.keys() else { return [] }
        for key in keys {
            guard let bitmap = try? syscallSets.lookup(key: key) else { continue }
            _ = try? syscallSets.delete(key: key)
            let cgroup = key.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
            let record = decoder.syscallSet(cgroupID: cgroup, bitmap: bitmap, time: time)
            if case .syscalls(let set) = record.event.payload, !set.syscalls.isEmpty { result.append(record) }
        }
        return result
    }

    /// Detaches every program now. Call only when `run` is not running (it has returned or never started);
    /// otherwise the last reference going away does the same.
    public func close() {
        reader.stop()
        object.close()
    }
}
