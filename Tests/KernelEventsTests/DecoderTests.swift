import CSensorABI
import EventModel
import KernelEvents
import Testing

/// Builds records the way the kernel does: the C struct, filled, as bytes.
enum Records {
    static func bytes<T>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    static func fill<T>(_ array: inout T, _ text: String) {
        withUnsafeMutableBytes(of: &array) { buffer in
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            for (index, byte) in Array(text.utf8).prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
        }
    }

    static func header(_ kind: KernelRecordKind, size: Int, pid: UInt32 = 42, tid: UInt32 = 43) -> patrol_record_header {
        patrol_record_header(
            kind: kind.rawValue, version: SensorABI.version, size: UInt32(size), timestamp_ns: 1_000, pid: pid, tid: tid)
    }

    static func task(comm: String = "cat") -> patrol_task {
        var task = patrol_task()
        task.cgroup_id = 7777
        task.mntns = 4_026_531_841
        task.ppid = 1
        task.uid = 1000
        task.gid = 100
        fill(&task.comm, comm)
        return task
    }
}

@Suite struct DecoderTests {
    let decoder = KernelDecoder(clock: BootClock(offsetNanoseconds: 1_700_000_000_000_000_000))

    @Test func openRecord() throws {
        var record = patrol_open_record()
        record.header = Records.header(.open, size: MemoryLayout<patrol_open_record>.size)
        record.task = Records.task()
        record.flags = 0o2101
        record.result = -2
        Records.fill(&record.path, "/etc/hostname")
        let decoded = try decoder.decode(Records.bytes(record))
        #expect(decoded.cgroupID == 7777)
        #expect(decoded.event.time == 1_700_000_000_000_001_000)
        #expect(decoded.event.container == nil)
        #expect(decoded.event.process.pid == 42 && decoded.event.process.tid == 43 && decoded.event.process.ppid == 1)
        #expect(decoded.event.process.uid == 1000 && decoded.event.process.gid == 100)
        #expect(decoded.event.process.comm == "cat")
        #expect(decoded.event.process.mountNamespace == 4_026_531_841)
        #expect(decoded.event.payload == .open(FileOpen(path: "/etc/hostname", flags: 0o2101, result: -2)))
    }

    @Test func execRecordSplitsArgvAndEnv() throws {
        var record = patrol_exec_record()
        record.header = Records.header(.exec, size: MemoryLayout<patrol_exec_record>.size)
        record.task = Records.task(comm: "sh")
        Records.fill(&record.filename, "/bin/sh")
        let args = Array("sh\0-c\0echo hi\0".utf8)
        withUnsafeMutableBytes(of: &record.args) { for (i, b) in args.enumerated() { $0[i] = b } }
        record.args_size = UInt32(args.count)
        let env = Array("LD_PRELOAD=/tmp/x.so\0".utf8)
        withUnsafeMutableBytes(of: &record.env) { for (i, b) in env.enumerated() { $0[i] = b } }
        record.env_size = UInt32(env.count)
        record.stdio_socket = 1
        let decoded = try decoder.decode(Records.bytes(record))
        #expect(decoded.event.process.exe == "/bin/sh")
        #expect(
            decoded.event.payload
                == .exec(Exec(path: "/bin/sh", argv: ["sh", "-c", "echo hi"], env: ["LD_PRELOAD=/tmp/x.so"], stdioSocket: true)))
    }

    @Test func connectRecordFormatsAddresses() throws {
        var record = patrol_net_record()
        record.header = Records.header(.connect, size: MemoryLayout<patrol_net_record>.size)
        record.task = Records.task()
        record.family = 10
        record.protocol = 6
        record.remote_port = 443
        record.local_port = 50000
        withUnsafeMutableBytes(of: &record.remote_addr) { $0[15] = 1 }
        let decoded = try decoder.decode(Records.bytes(record))
        #expect(
            decoded.event.payload
                == .connect(
                    NetworkFlow(
                        family: .inet6, proto: .tcp, localAddress: "::", localPort: 50000, remoteAddress: "::1",
                        remotePort: 443)))
    }

    @Test func dnsQueryName() throws {
        let query: [UInt8] = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0] + [7] + Array("example".utf8) + [3]
            + Array("com".utf8) + [0, 0, 28, 0, 1]
        let parsed = try KernelDecoder.parseDNSQuery(query)
        #expect(parsed.name == "example.com" && parsed.type == 28)
        #expect(throws: KernelEventsError.self) { try KernelDecoder.parseDNSQuery(Array(query.prefix(15))) }
    }

    @Test func shortUnknownAndMismatchedRecordsAreErrors() {
        func code(_ bytes: [UInt8]) -> KernelEventsError.Code? {
            do {
                _ = try decoder.decode(bytes)
                return nil
            } catch { return error.code }
        }
        #expect(code([1, 0, 2]) == .shortRecord)
        var header = Records.header(.open, size: MemoryLayout<patrol_open_record>.size)
        header.kind = 999
        #expect(code(Records.bytes(header) + [UInt8](repeating: 0, count: 400)) == .unknownKind)
        header.kind = KernelRecordKind.open.rawValue
        #expect(code(Records.bytes(header)) == .shortRecord)
        header.size = 100
        #expect(code(Records.bytes(header) + [UInt8](repeating: 0, count: 400)) == .mismatchedRecord)
        header.size = UInt32(MemoryLayout<patrol_open_record>.size)
        header.version = 1
        #expect(code(Records.bytes(header) + [UInt8](repeating: 0, count: 400)) == .mismatchedRecord)
    }

    @Test func syscallBitmap() {
        var bitmap = [UInt8](repeating: 0, count: 64)
        bitmap[0] = 0b101  // read(0), open(2)
        bitmap[7] = 0x80  // 63
        let record = decoder.syscallSet(cgroupID: 9, bitmap: bitmap, time: 5)
        #expect(record.cgroupID == 9)
        #expect(record.event.payload == .syscalls(SyscallSet(syscalls: [0, 2, 63])))
    }
}
