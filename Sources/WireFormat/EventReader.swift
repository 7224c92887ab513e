internal import CProtobufC
internal import CWireProto
import EventModel

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Numbers of the proto enums, kept in one place.
enum WireEnums {
    static func number(_ family: AddressFamily) -> UInt32 {
        switch family {
        case .unspecified: return 0
        case .inet: return 1
        case .inet6: return 2
        case .unix: return 3
        }
    }

    static func family(_ number: UInt32) -> AddressFamily? {
        switch number {
        case 0: return .unspecified
        case 1: return .inet
        case 2: return .inet6
        case 3: return .unix
        default: return nil
        }
    }

    static func number(_ proto: TransportProtocol) -> UInt32 {
        switch proto {
        case .unspecified: return 0
        case .tcp: return 1
        case .udp: return 2
        }
    }

    static func transport(_ number: UInt32) -> TransportProtocol? {
        switch number {
        case 0: return .unspecified
        case 1: return .tcp
        case 2: return .udp
        default: return nil
        }
    }

    static func number(_ kind: EventKind) -> UInt32 {
        switch kind {
        case .exec: return 1
        case .exit: return 2
        case .open: return 3
        case .connect: return 4
        case .accept: return 5
        case .dns: return 6
        case .syscalls: return 7
        case .capability: return 8
        case .moduleLoad: return 9
        case .ptrace: return 10
        case .namespaceChange: return 11
        case .memfd: return 12
        case .link: return 13
        case .bpf: return 14
        case .scanResult: return 15
        case .audit: return 16
        }
    }

    static func kind(_ number: UInt32) -> EventKind? {
        switch number {
        case 1: return .exec
        case 2: return .exit
        case 3: return .open
        case 4: return .connect
        case 5: return .accept
        case 6: return .dns
        case 7: return .syscalls
        case 8: return .capability
        case 9: return .moduleLoad
        case 10: return .ptrace
        case 11: return .namespaceChange
        case 12: return .memfd
        case 13: return .link
        case 14: return .bpf
        case 15: return .scanResult
        case 16: return .audit
        default: return nil
        }
    }

    static func number(_ stage: DropStage) -> UInt32 {
        switch stage {
        case .kernelRingBuffer: return 1
        case .userQueue: return 2
        case .spool: return 3
        case .decode: return 4
        }
    }

    static func stage(_ number: UInt32) -> DropStage? {
        switch number {
        case 1: return .kernelRingBuffer
        case 2: return .userQueue
        case 3: return .spool
        case 4: return .decode
        default: return nil
        }
    }
}

/// Reads unpacked C messages into values, validating as it goes. `index` is the event's position in its batch
/// (-1 for a lone event or a control message), used only to word errors.
struct EventReader: ~Copyable {
    var index: Int
    /// The batch's container table (`Event.container_index` refers into it); empty for a lone event.
    var containers: [ContainerRef] = []
    /// The batch's string table (`*_ref` fields refer into it, 1-based); empty for a lone event.
    var strings: [String] = []

    /// Repeated strings of the unpacked C message (node, exe, paths, argv), made into Swift strings once.
    private let cache: TextCache

    /// `expectedStrings`: about how many long strings to expect (sizes the cache).
    init(index: Int, expectedStrings: Int = 8) {
        self.index = index
        cache = TextCache(expectedStrings: expectedStrings)
    }

    func fail(_ code: WireFormatError.Code, _ text: String) -> WireFormatError {
        WireFormatError(code, index >= 0 ? "event \(index): \(text)" : "Event: \(text)")
    }

    /// A string field; nil reads as "". Invalid UTF-8 is rejected.
    @inline(__always)
    func text(_ pointer: UnsafePointer<CChar>?, _ field: StaticString, prefixed: Bool = true) throws(WireFormatError)
        -> String
    {
        guard let pointer else { return "" }
        let length = strlen(pointer)
        if length == 0 { return "" }
        let bytes = UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self)
        guard let value = cache.text(WireSpan(base: bytes, count: length)) else {
            if prefixed { throw fail(.invalidValue, "\(field) is not valid UTF-8") }
            throw WireFormatError(.invalidValue, "\(field) is not valid UTF-8")
        }
        return value
    }

    /// A string field that may instead be a 1-based reference into the batch's string table.
    @inline(__always)
    func text(
        ref: UInt32, _ pointer: UnsafePointer<CChar>?, _ field: StaticString, _ refField: StaticString
    ) throws(WireFormatError) -> String {
        if ref == 0 { return try text(pointer, field) }
        guard Int(ref) <= strings.count else {
            throw fail(.invalidValue, "\(refField) \(ref) is beyond the batch's \(strings.count) strings")
        }
        if let pointer, pointer.pointee != 0 { throw fail(.invalidValue, "both \(field) and \(refField) are set") }
        return strings[Int(ref) - 1]
    }

    func texts(_ count: Int, _ pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ field: StaticString)
        throws(WireFormatError) -> [String]
    {
        guard count > 0, let pointers else { return [] }
        var out: [String] = []
        out.reserveCapacity(count)
        for item in 0..<count { out.append(try text(pointers[item], field)) }
        return out
    }

    func event(_ c: UnsafePointer<Patrol__V1__Event>) throws(WireFormatError) -> Event {
        let e = c.pointee
        guard e.count != 0 else { throw fail(.invalidValue, "count is 0") }
        guard let p = e.process?.pointee else { throw fail(.missingField, "process is missing") }
        let node = try text(ref: e.node_ref, e.node, "node", "node_ref")
        let process = ProcessInfo(
            pid: p.pid, ppid: p.ppid, tid: p.tid, uid: p.uid, gid: p.gid,
            comm: try text(ref: p.comm_ref, p.comm, "process.comm", "process.comm_ref"),
            exe: try text(ref: p.exe_ref, p.exe, "process.exe", "process.exe_ref"),
            cwd: try text(ref: p.cwd_ref, p.cwd, "process.cwd", "process.cwd_ref"),
            mountNamespace: p.mount_namespace)
        var container: ContainerRef? = nil
        if e.container_index != 0 {
            guard e.container == nil else { throw fail(.invalidValue, "both container and container_index are set") }
            guard Int(e.container_index) <= containers.count else {
                throw fail(
                    .invalidValue,
                    "container_index \(e.container_index) is beyond the batch's \(containers.count) containers")
            }
            container = containers[Int(e.container_index) - 1]
        } else if let ref = e.container?.pointee {
            container = ContainerRef(
                runtime: try text(ref.runtime, "container.runtime"),
                containerID: try text(ref.container_id, "container.container_id"),
                podUID: try text(ref.pod_uid, "container.pod_uid"),
                podName: try text(ref.pod_name, "container.pod_name"),
                namespace: try text(ref.namespace_, "container.namespace"),
                containerName: try text(ref.container_name, "container.container_name"),
                image: try text(ref.image, "container.image"))
            try WireCodec.kubernetesFields(ref, "Event.container", into: &container!)
        }
        return Event(
            time: e.time_ns, node: node, process: process, container: container, payload: try payload(e),
            count: e.count)
    }

    private func payload(_ e: Patrol__V1__Event) throws(WireFormatError) -> Payload {
        switch e.payload_case {
        case PATROL__V1__EVENT__PAYLOAD_EXEC:
            let p = e.exec.pointee
            return .exec(
                Exec(
                    path: try text(ref: p.path_ref, p.path, "exec.path", "exec.path_ref"), argv: try texts(p.n_argv, p.argv, "exec.argv"),
                    env: try texts(p.n_env, p.env, "exec.env"), upperLayer: p.upper_layer != 0,
                    fromVolume: p.from_volume != 0, stdioSocket: p.stdio_socket != 0))
        case PATROL__V1__EVENT__PAYLOAD_EXIT:
            let p = e.exit.pointee
            return .exit(Exit(code: p.code, signal: p.signal))
        case PATROL__V1__EVENT__PAYLOAD_OPEN:
            let p = e.open.pointee
            return .open(
                FileOpen(
                    path: try text(ref: p.path_ref, p.path, "open.path", "open.path_ref"), flags: p.flags,
                    result: p.result, fromVolume: p.from_volume != 0))
        case PATROL__V1__EVENT__PAYLOAD_CONNECT:
            return .connect(try flow(e.connect.pointee, connect: true))
        case PATROL__V1__EVENT__PAYLOAD_ACCEPT:
            return .accept(try flow(e.accept.pointee, connect: false))
        case PATROL__V1__EVENT__PAYLOAD_DNS:
            let p = e.dns.pointee
            guard let type = UInt16(exactly: p.query_type) else {
                throw fail(.invalidValue, "dns.query_type \(p.query_type) is out of range 0...65535")
            }
            return .dns(
                DNSQuery(
                    name: try text(p.name, "dns.name"), queryType: type,
                    answers: try texts(p.n_answers, p.answers, "dns.answers")))
        case PATROL__V1__EVENT__PAYLOAD_SYSCALLS:
            let p = e.syscalls.pointee
            let numbers = p.n_syscalls > 0 ? Array(UnsafeBufferPointer(start: p.syscalls, count: p.n_syscalls)) : []
            return .syscalls(SyscallSet(syscalls: numbers))
        case PATROL__V1__EVENT__PAYLOAD_CAPABILITY:
            let p = e.capability.pointee
            return .capability(CapabilityUse(capability: p.capability, syscall: p.syscall, granted: p.granted != 0))
        case PATROL__V1__EVENT__PAYLOAD_MODULE_LOAD:
            let p = e.module_load.pointee
            return .moduleLoad(
                ModuleLoad(syscall: try text(p.syscall, "module_load.syscall"), name: try text(p.name, "module_load.name")))
        case PATROL__V1__EVENT__PAYLOAD_PTRACE:
            let p = e.ptrace.pointee
            return .ptrace(PtraceAttach(request: p.request, targetPid: p.target_pid))
        case PATROL__V1__EVENT__PAYLOAD_NAMESPACE_CHANGE:
            let p = e.namespace_change.pointee
            return .namespaceChange(
                NamespaceChange(
                    syscall: try text(p.syscall, "namespace_change.syscall"), flags: p.flags,
                    source: try text(p.source, "namespace_change.source"),
                    target: try text(p.target, "namespace_change.target"),
                    fsType: try text(p.fs_type, "namespace_change.fs_type")))
        case PATROL__V1__EVENT__PAYLOAD_MEMFD:
            let p = e.memfd.pointee
            return .memfd(MemfdCreate(name: try text(p.name, "memfd.name"), flags: p.flags))
        case PATROL__V1__EVENT__PAYLOAD_LINK:
            let p = e.link.pointee
            return .link(
                FileLink(
                    target: try text(p.target, "link.target"), linkPath: try text(p.link_path, "link.link_path"),
                    symbolic: p.symbolic != 0))
        case PATROL__V1__EVENT__PAYLOAD_BPF:
            return .bpf(BPFCall(command: e.bpf.pointee.command))
        case PATROL__V1__EVENT__PAYLOAD_SCAN_RESULT:
            let p = e.scan_result.pointee
            return .scanResult(
                ScanResult(
                    scanID: try text(p.scan_id, "scan_result.scan_id"), path: try text(p.path, "scan_result.path"),
                    signature: try text(p.signature, "scan_result.signature"),
                    sha256: try text(p.sha256, "scan_result.sha256"), sizeBytes: p.size_bytes,
                    partOfImage: p.part_of_image != 0))
        case PATROL__V1__EVENT__PAYLOAD_AUDIT:
            let p = e.audit.pointee
            let sourceID = try text(p.source_id, "audit.source_id")
            guard let json = p.document_json, json.pointee != 0 else {
                throw fail(.missingField, "audit.document_json is empty")
            }
            let length = strlen(json)
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(json).assumingMemoryBound(to: UInt8.self), count: length)
            guard CText.isValidUTF8(bytes) else {
                throw fail(.invalidValue, "audit.document_json is not valid UTF-8")
            }
            let document: JSONValue
            do throws(JSONText.ParseError) {
                document = try JSONText.parse(bytes)
            } catch {
                throw fail(.invalidValue, "audit.document_json is not valid JSON: \(error.description)")
            }
            return .audit(AuditRecord(document: document, sourceID: sourceID))
        default:
            throw fail(.invalidValue, "unknown payload case")
        }
    }

    private func flow(_ p: Patrol__V1__NetworkFlow, connect: Bool) throws(WireFormatError) -> NetworkFlow {
        let kind = connect ? "connect" : "accept"
        guard let family = WireEnums.family(p.family.rawValue) else {
            throw fail(.invalidValue, "\(kind).family \(p.family.rawValue) is not a known AddressFamily")
        }
        guard let proto = WireEnums.transport(p.proto.rawValue) else {
            throw fail(.invalidValue, "\(kind).proto \(p.proto.rawValue) is not a known TransportProtocol")
        }
        guard let localPort = UInt16(exactly: p.local_port) else {
            throw fail(.invalidValue, "\(kind).local_port \(p.local_port) is out of range 0...65535")
        }
        guard let remotePort = UInt16(exactly: p.remote_port) else {
            throw fail(.invalidValue, "\(kind).remote_port \(p.remote_port) is out of range 0...65535")
        }
        return NetworkFlow(
            family: family, proto: proto,
            localAddress: try text(p.local_address, connect ? "connect.local_address" : "accept.local_address"),
            localPort: localPort,
            remoteAddress: try text(p.remote_address, connect ? "connect.remote_address" : "accept.remote_address"),
            remotePort: remotePort, result: p.result)
    }
}
