internal import CSensorABI
import EventModel
public import Basics
#if canImport(Glibc)
import Glibc
#endif

/// Decodes ring-buffer records of bpf/include/sensor_abi.h into `KernelRecord`s.
///
/// Records are checked before use: at least a header, a known kind, this build's ABI version, and a
/// header size equal to the kind's struct size (and no more than the bytes given). Anything else is a
/// `KernelEventsError` that says what and at which kind; the caller counts it as a `decode` drop.
public struct KernelDecoder: Sendable {
    public var clock: BootClock

    public init(clock: BootClock = .measure()) { self.clock = clock }

    /// Size of the common header (`struct patrol_record_header`).
    public static var headerSize: Int { MemoryLayout<patrol_record_header>.size }

    /// The struct size of records of `kind`; nil for kinds never sent through the ring buffer.
    public static func recordSize(of kind: KernelRecordKind) -> Int? {
        switch kind {
        case .exec: MemoryLayout<patrol_exec_record>.size
        case .exit: MemoryLayout<patrol_exit_record>.size
        case .open: MemoryLayout<patrol_open_record>.size
        case .connect, .accept: MemoryLayout<patrol_net_record>.size
        case .dns: MemoryLayout<patrol_dns_record>.size
        case .capability: MemoryLayout<patrol_capability_record>.size
        case .module: MemoryLayout<patrol_module_record>.size
        case .namespace: MemoryLayout<patrol_namespace_record>.size
        case .ptrace: MemoryLayout<patrol_ptrace_record>.size
        case .memfd: MemoryLayout<patrol_memfd_record>.size
        case .link: MemoryLayout<patrol_link_record>.size
        case .bpf: MemoryLayout<patrol_bpf_record>.size
        case .syscalls: nil
        }
    }

    public func decode(_ bytes: [UInt8]) throws(KernelEventsError) -> KernelRecord {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(KernelEventsError) -> KernelRecord in try decode(raw) }
        }
        return try result.get()
    }

    public func decode(_ raw: UnsafeRawBufferPointer) throws(KernelEventsError) -> KernelRecord {
        guard raw.count >= Self.headerSize else {
            throw KernelEventsError(
                .shortRecord, "record of \(raw.count) bytes is shorter than the \(Self.headerSize)-byte header")
        }
        let header = raw.loadUnaligned(as: patrol_record_header.self)
        guard let kind = KernelRecordKind(rawValue: header.kind) else {
            throw KernelEventsError(.unknownKind, "unknown record kind \(header.kind) (\(raw.count) bytes)")
        }
        guard header.version == SensorABI.version else {
            throw KernelEventsError(
                .mismatchedRecord,
                "\(kind.name) record has ABI version \(header.version), this build reads \(SensorABI.version)")
        }
        guard let expected = Self.recordSize(of: kind) else {
            throw KernelEventsError(.unknownKind, "kind \(kind.name) is never sent through the ring buffer")
        }
        guard Int(header.size) == expected else {
            throw KernelEventsError(
                .mismatchedRecord, "\(kind.name) record says \(header.size) bytes, the ABI says \(expected)")
        }
        guard raw.count >= expected else {
            throw KernelEventsError(
                .shortRecord, "\(kind.name) record has \(raw.count) bytes, needs \(expected)")
        }
        switch kind {
        case .exec:
            let r = raw.loadUnaligned(as: patrol_exec_record.self)
            let path = Self.string(r.filename)
            var process = process(r.header, r.task)
            process.exe = path
            let exec = Exec(
                path: path, argv: Self.strings(r.args, count: Int(r.args_size)),
                env: Self.strings(r.env, count: Int(r.env_size)), stdioSocket: r.stdio_socket != 0)
            return record(r.header, r.task, process, .exec(exec))
        case .exit:
            let r = raw.loadUnaligned(as: patrol_exit_record.self)
            return record(r.header, r.task, .exit(Exit(code: r.code, signal: r.signal)))
        case .open:
            let r = raw.loadUnaligned(as: patrol_open_record.self)
            return record(r.header, r.task, .open(FileOpen(path: Self.string(r.path), flags: r.flags, result: r.result)))
        case .connect, .accept:
            let r = raw.loadUnaligned(as: patrol_net_record.self)
            let family = Self.family(r.family)
            let flow = NetworkFlow(
                family: family, proto: r.protocol == 6 ? .tcp : r.protocol == 17 ? .udp : .unspecified,
                localAddress: Self.address(r.local_addr, family: family), localPort: r.local_port,
                remoteAddress: Self.address(r.remote_addr, family: family), remotePort: r.remote_port,
                result: r.result)
            return record(r.header, r.task, kind == .connect ? .connect(flow) : .accept(flow))
        case .dns:
            let r = raw.loadUnaligned(as: patrol_dns_record.self)
            let payload = Self.bytes(r.payload, count: Int(r.payload_size))
            let (name, type) = try Self.parseDNSQuery(payload)
            return record(r.header, r.task, .dns(DNSQuery(name: name, queryType: type)))
        case .capability:
            let r = raw.loadUnaligned(as: patrol_capability_record.self)
            return record(
                r.header, r.task,
                .capability(CapabilityUse(capability: r.cap, syscall: r.syscall, granted: r.granted != 0)))
        case .module:
            let r = raw.loadUnaligned(as: patrol_module_record.self)
            let syscall = r.syscall == PATROL_SYSCALL_FINIT_MODULE.rawValue ? "finit_module" : "init_module"
            return record(r.header, r.task, .moduleLoad(ModuleLoad(syscall: syscall, name: Self.string(r.name))))
        case .namespace:
            let r = raw.loadUnaligned(as: patrol_namespace_record.self)
            let syscall: String
            switch r.syscall {
            case PATROL_SYSCALL_UNSHARE.rawValue: syscall = "unshare"
            case PATROL_SYSCALL_SETNS.rawValue: syscall = "setns"
            case PATROL_SYSCALL_MOUNT.rawValue: syscall = "mount"
            default:
                throw KernelEventsError(.malformedPayload, "namespace record with unknown syscall id \(r.syscall)")
            }
            let change = NamespaceChange(
                syscall: syscall, flags: r.flags, source: Self.string(r.source), target: Self.string(r.target),
                fsType: Self.string(r.fstype))
            return record(r.header, r.task, .namespaceChange(change))
        case .ptrace:
            let r = raw.loadUnaligned(as: patrol_ptrace_record.self)
            return record(
                r.header, r.task, .ptrace(PtraceAttach(request: Int32(truncatingIfNeeded: r.request), targetPid: r.target_pid)))
        case .memfd:
            let r = raw.loadUnaligned(as: patrol_memfd_record.self)
            return record(r.header, r.task, .memfd(MemfdCreate(name: Self.string(r.name), flags: r.flags)))
        case .link:
            let r = raw.loadUnaligned(as: patrol_link_record.self)
            let link = FileLink(target: Self.string(r.target), linkPath: Self.string(r.link_path), symbolic: r.symbolic != 0)
            return record(r.header, r.task, .link(link))
        case .bpf:
            let r = raw.loadUnaligned(as: patrol_bpf_record.self)
            return record(r.header, r.task, .bpf(BPFCall(command: r.command)))
        case .syscalls:
            throw KernelEventsError(.unknownKind, "kind syscalls is never sent through the ring buffer")
        }
    }

    /// One `SyscallSet` event for a cgroup's bitmap (`struct patrol_syscall_bitmap` bytes) read at `time`.
    public func syscallSet(cgroupID: UInt64, bitmap: [UInt8], time: EpochNanoseconds) -> KernelRecord {
        KernelRecord(
            cgroupID: cgroupID,
            event: Event(
                time: time, node: "", process: ProcessInfo(),
                payload: .syscalls(SyscallSet(syscalls: SensorABI.syscalls(inBitmap: bitmap)))))
    }

    // MARK: - pieces

    private func process(_ header: patrol_record_header, _ task: patrol_task) -> ProcessInfo {
        ProcessInfo(
            pid: Int32(bitPattern: header.pid), ppid: Int32(bitPattern: task.ppid), tid: Int32(bitPattern: header.tid),
            uid: task.uid, gid: task.gid, comm: Self.string(task.comm), mountNamespace: task.mntns)
    }

    private func record(_ header: patrol_record_header, _ task: patrol_task, _ payload: Payload) -> KernelRecord {
        record(header, task, process(header, task), payload)
    }

    private func record(
        _ header: patrol_record_header, _ task: patrol_task, _ process: ProcessInfo, _ payload: Payload
    ) -> KernelRecord {
        KernelRecord(
            cgroupID: task.cgroup_id,
            event: Event(
                time: clock.wallClock(bootNanoseconds: header.timestamp_ns), node: "", process: process,
                payload: payload))
    }

    /// A NUL-terminated string inside a fixed C array (imported as a tuple).
    static func string<T>(_ array: T) -> String {
        withUnsafeBytes(of: array) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// The first `count` bytes of a fixed C array (clamped to its size).
    static func bytes<T>(_ array: T, count: Int) -> [UInt8] {
        withUnsafeBytes(of: array) { Array($0.prefix(max(0, count))) }
    }

    /// NUL-separated strings in the first `count` bytes (argv, env); a trailing partial string is kept.
    static func strings<T>(_ array: T, count: Int) -> [String] {
        let bytes = bytes(array, count: count)
        var result = bytes.split(separator: 0, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        if result.last == "" { result.removeLast() }
        return result
    }

    static func family(_ value: UInt16) -> AddressFamily {
        switch Int32(value) {
        case AF_INET: .inet
        case AF_INET6: .inet6
        case AF_UNIX: .unix
        default: .unspecified
        }
    }

    static func address<T>(_ array: T, family: AddressFamily) -> String {
        let bytes = bytes(array, count: 16)
        switch family {
        case .inet:
            return bytes.prefix(4).map(String.init).joined(separator: ".")
        case .inet6:
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            let ok = bytes.withUnsafeBytes { inet_ntop(AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) != nil }
            return ok ? String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        default:
            return ""
        }
    }

    /// The first question of a DNS query message: name (dotted, no trailing dot) and type.
    public static func parseDNSQuery(_ message: [UInt8]) throws(KernelEventsError) -> (name: String, type: UInt16) {
        guard message.count >= 12 else {
            throw KernelEventsError(.malformedPayload, "DNS message of \(message.count) bytes is shorter than its header")
        }
        let questions = UInt16(message[4]) << 8 | UInt16(message[5])
        guard questions >= 1 else { throw KernelEventsError(.malformedPayload, "DNS message has no question") }
        var labels: [String] = []
        var index = 12
        while true {
            guard index < message.count else {
                throw KernelEventsError(.malformedPayload, "DNS query name runs past the copied \(message.count) bytes")
            }
            let length = Int(message[index])
            if length == 0 {
                index += 1
                break
            }
            guard length & 0xC0 == 0 else {
                throw KernelEventsError(.malformedPayload, "DNS query name has a compression pointer at byte \(index)")
            }
            guard index + 1 + length <= message.count, labels.count < 127 else {
                throw KernelEventsError(.malformedPayload, "DNS label at byte \(index) runs past the message")
            }
            labels.append(String(decoding: message[(index + 1)..<(index + 1 + length)], as: UTF8.self))
            index += 1 + length
        }
        let type: UInt16 = index + 2 <= message.count ? UInt16(message[index]) << 8 | UInt16(message[index + 1]) : 0
        return (labels.joined(separator: "."), type)
    }
}
