import BPF
import Foundation
import Synchronization
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Paths of the committed test objects (built by `make -C bpf bpf`).
enum Fixtures {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static func object(_ name: String) -> String {
        repository.appendingPathComponent("bpf/build/\(name).bpf.o").path
    }
    static let isRoot = getuid() == 0
}

/// Runs `body` with a watchdog that stops `reader` after `seconds`, so draining can never hang.
/// `fired`, when given, is set if the watchdog had to stop the reader.
func withWatchdog<T: Sendable>(
    _ reader: RingBufferReader, seconds: Int, fired: WatchdogFlag? = nil, _ body: @escaping @Sendable () async -> T
) async -> T {
    await withTaskGroup(of: T?.self) { group in
        group.addTask {
            try? await Task.sleep(for: .seconds(seconds))
            if !Task.isCancelled {
                fired?.set()
                reader.stop()
            }
            return nil
        }
        group.addTask { await body() }
        var result: T?
        for await value in group {
            if let value {
                result = value
                group.cancelAll()
            }
        }
        return result!
    }
}

/// Whether a watchdog stopped its reader: records that only show up then were read at shutdown, not while
/// the reader ran.
final class WatchdogFlag: Sendable {
    private let state = Mutex(false)
    func set() { state.withLock { $0 = true } }
    var isSet: Bool { state.withLock { $0 } }
}

/// Runs /bin/true `times` times; returns the pids (exec keeps the pid, so records carry them).
@discardableResult
func runTrue(times: Int) async throws -> Set<UInt32> {
    try await offPool { try runTrueBlocking(times: times) }
}

private func runTrueBlocking(times: Int) throws -> Set<UInt32> {
    var pids: Set<UInt32> = []
    for _ in 0..<times {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        pids.insert(UInt32(process.processIdentifier))
        process.waitUntilExit()
    }
    return pids
}

struct ExecRecord: Sendable {
    var kind: UInt16
    var size: UInt32
    var pid: UInt32
    var comm: String
    var filename: String

    /// Decodes test_exec.bpf.c's own record (the header of bpf/include/sensor_abi.h plus the v1 exec fields).
    init?(_ bytes: [UInt8]) {
        guard bytes.count >= 312 else { return nil }
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
        func cString(_ at: Int, _ length: Int) -> String {
            String(decoding: bytes[at..<(at + length)].prefix { $0 != 0 }, as: UTF8.self)
        }
        kind = u16(0)
        size = u32(4)
        pid = u32(16)
        comm = cString(40, 16)
        filename = cString(56, 256)
    }
}

@Suite struct BPFObjectTests {
    @Test func missingFileIsAClearError() {
        #expect {
            _ = try BPFObject(path: "/nonexistent/thing.bpf.o")
        } throws: { error in
            let error = error as? BPFError
            return error?.code == .open && error?.message.contains("/nonexistent/thing.bpf.o") == true
        }
    }

    @Test func garbageBytesAreAClearError() {
        #expect {
            _ = try BPFObject(bytes: Array("not an ELF file".utf8), name: "garbage")
        } throws: { error in
            guard let error = error as? BPFError else { return false }
            return error.code == .open && error.message.contains("garbage") && error.cause != nil
        }
    }

    @Test func listsProgramsWithSections() throws {
        let object = try BPFObject(path: Fixtures.object("test_exec"))
        let programs = Dictionary(uniqueKeysWithValues: object.programs.map { ($0.name, $0.section) })
        #expect(programs["handle_exec"] == "tracepoint/sched/sched_process_exec")
        #expect(programs["count_exec_raw"] == "raw_tp/sched_process_exec")
        #expect(programs["count_exec_btf"] == "tp_btf/sched_process_exec")
        #expect(Set(object.mapNames).isSuperset(of: ["events", "counters", "watched_comm", "test_config"]))
    }

    @Test(.enabled(if: Fixtures.isRoot, "loading eBPF needs root (CAP_BPF, CAP_PERFMON)"))
    func execRecordsArriveThroughTheRingBuffer() async throws {
        try Tracefs.ensureMounted()
        let object = try BPFObject(path: Fixtures.object("test_exec"))
        try object.load()

        // Only report execs of `true`, through the filter maps.
        try object.map(named: "watched_comm").update(key: BPFMap.bytes(ofString: "true", size: 16), value: [1])
        try object.map(named: "test_config").update(key: BPFMap.bytes(of: UInt32(0)), value: BPFMap.bytes(of: UInt32(1)))
        #expect(try object.map(named: "watched_comm").lookup(key: BPFMap.bytes(ofString: "true", size: 16)) == [1])
        #expect(try object.map(named: "watched_comm").lookup(key: BPFMap.bytes(ofString: "false", size: 16)) == nil)

        let report = object.attachAll()
        #expect(report.failed.isEmpty, "\(report)")
        #expect(Set(report.attached) == ["handle_exec", "count_exec_raw", "count_exec_btf"])

        let reader = try object.ringBufferReader(map: "events", capacity: 1024)
        reader.start()
        let pids = try await runTrue(times: 3)

        // Other tests run /bin/true concurrently: keep only our children's records. The program submits
        // without waking the reader (BPF_RB_NO_WAKEUP), so these arrive only if the reader reads on its own.
        let watchdog = WatchdogFlag()
        let matches = await withWatchdog(reader, seconds: 10, fired: watchdog) {
            var found: [ExecRecord] = []
            while found.count < 3, let batch = await reader.records.drain() {
                found += batch.compactMap(ExecRecord.init).filter { pids.contains($0.pid) }
            }
            return found
        }
        reader.stop()
        await reader.waitUntilStopped()

        #expect(matches.count == 3)
        #expect(!watchdog.isSet, "the records came only when the reader stopped: records submitted without a wake-up were not read")
        for record in matches {
            #expect(record.kind == 1)
            #expect(record.size == 312)
            #expect(record.comm == "true")
            #expect(record.filename == "/bin/true")
        }
        #expect(reader.droppedCount == 0)

        // The raw_tp and tp_btf programs ran too (they count every exec, unfiltered).
        let counters = try object.map(named: "counters")
        let rawHits = try #require(try counters.lookup(key: BPFMap.bytes(of: UInt32(0))))
        let btfHits = try #require(try counters.lookup(key: BPFMap.bytes(of: UInt32(1))))
        #expect(rawHits.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } >= 3)
        #expect(btfHits.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } >= 3)
        object.close()
    }

    @Test(.enabled(if: Fixtures.isRoot, "loading eBPF needs root (CAP_BPF, CAP_PERFMON)"))
    func failedAttachIsReportedByNameWhileOthersAttach() throws {
        try Tracefs.ensureMounted()
        // From memory, as an object embedded in a binary would be.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.object("test_attach_fail"))))
        let object = try BPFObject(bytes: bytes, name: "test_attach_fail")
        try object.load()
        let report = object.attachAll()
        #expect(report.attached == ["good_exec"])
        #expect(Array(report.failed.keys) == ["bogus_tracepoint"])
        let reason = try #require(report.failed["bogus_tracepoint"])
        print("bogus_tracepoint failed as expected: \(reason)")
        #expect(reason.contains("bogus_tracepoint"))
        #expect(reason.contains("No such file or directory"))
        #expect(object.attachedPrograms == ["good_exec"])
    }

    @Test(.enabled(if: Fixtures.isRoot, "loading eBPF needs root (CAP_BPF, CAP_PERFMON)"))
    func mapAccessChecksSizes() throws {
        let object = try BPFObject(path: Fixtures.object("test_exec"))
        try object.load()
        let map = try object.map(named: "watched_comm")
        #expect(map.keySize == 16 && map.valueSize == 1)
        #expect(throws: BPFError.self) { try map.update(key: [1, 2, 3], value: [1]) }
        #expect(throws: BPFError.self) { _ = try object.map(named: "no_such_map") }
        #expect(throws: BPFError.self) { _ = try object.ringBufferReader(map: "counters") }
        let key = BPFMap.bytes(ofString: "sh", size: 16)
        try map.update(key: key, value: [7])
        #expect(try map.lookup(key: key) == [7])
        #expect(try map.delete(key: key))
        #expect(try map.delete(key: key) == false)
    }

    @Test(.enabled(if: Fixtures.isRoot, "loading eBPF needs root (CAP_BPF, CAP_PERFMON)"))
    func readerStopsCleanlyWithoutRecords() async throws {
        let object = try BPFObject(path: Fixtures.object("test_exec"))
        try object.load()
        let reader = try object.ringBufferReader(map: "events", pollTimeout: .milliseconds(20))
        reader.start()
        reader.stop()
        await reader.waitUntilStopped()
        #expect(await reader.records.drain() == nil)
    }

    @Test(.enabled(if: Fixtures.isRoot, "loading eBPF needs root (CAP_BPF, CAP_PERFMON)"))
    func overflowIsCountedNotLost() async throws {
        let object = try BPFObject(path: Fixtures.object("test_exec"))
        try object.load()
        try object.map(named: "watched_comm").update(key: BPFMap.bytes(ofString: "true", size: 16), value: [1])
        try object.map(named: "test_config").update(key: BPFMap.bytes(of: UInt32(0)), value: BPFMap.bytes(of: UInt32(1)))
        try object.attach(program: "handle_exec")
        // Room for one record; nobody drains while the execs happen. The reader waits (leaving the rest in
        // the kernel ring buffer) rather than dropping; what is still left when it stops is counted.
        let reader = try object.ringBufferReader(map: "events", capacity: 1, pollTimeout: .milliseconds(20))
        reader.start()
        try await runTrue(times: 4)
        let deadline = ContinuousClock.now + .seconds(5)
        while reader.receivedCount < 2 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        reader.stop()
        await reader.waitUntilStopped()
        var kept: [[UInt8]] = []
        while let batch = await reader.records.drain() { kept += batch }
        #expect(reader.receivedCount >= 4)
        #expect(kept.count == 1)
        #expect(reader.droppedCount == reader.receivedCount - 1)
    }

    @Test func tracefsIsMountedOrMountable() throws {
        if Fixtures.isRoot { try Tracefs.ensureMounted() }
        if Tracefs.isMounted() {
            #expect(Tracefs.hasTracepoint("sched/sched_process_exec"))
            #expect(!Tracefs.hasTracepoint("patrol_bogus/no_such_event"))
        }
    }
}
