internal import CProtobufC
internal import CWireProto
import Basics
import EventModel
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Converts the `EventModel` values to and from their protobuf encoding (proto/patrol/v1).
///
/// Encoding builds the protoc-c structs in an arena and packs them into one exactly sized buffer; an `EventBatch` is
/// written by WireFormat itself (`BatchEncoding.swift`, `EventWriting.swift`). Decoding checks the size limit; an
/// `EventBatch` is then read straight from the bytes (`EventReading.swift`), every other message is unpacked by
/// protobuf-c with a bump allocator (`UnpackArena`), converted and validated, and freed before returning. Bad input
/// never traps: it throws `WireFormatError` naming what and where.
public enum WireCodec {
    private static let limit = Atomic<Int>(16 << 20)

    /// The largest message any decode accepts, in bytes (default 16 MiB). Larger input throws `.oversized`.
    public static var maxMessageBytes: Int {
        get { limit.load(ordering: .relaxed) }
        set {
            precondition(newValue > 0, "WireCodec.maxMessageBytes must be positive")
            limit.store(newValue, ordering: .relaxed)
        }
    }

    // MARK: Event batches

    /// Decodes a batch with WireFormat's own reader (`EventReading.swift`), straight from the bytes into values;
    /// protobuf-c is not involved. The outcome is the one `decodeEventBatchViaProtobufC` gives (tests compare them).
    public static func decodeEventBatch(_ bytes: UnsafeRawBufferPointer) throws(WireFormatError) -> EventBatch {
        try checkSize(bytes, "EventBatch")
        let input = WireSpan(
            base: bytes.count == 0 ? nil : bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        // Table strings and short strings (most argv entries, addresses) skip the intern table: size it smaller.
        var reader = BatchReader(input: input, expectedStrings: bytes.count / 256)
        do {
            return try reader.batch()
        } catch {
            throw reader.settle(error)
        }
    }

    /// Decodes a batch the way `decodeEventBatch` did before WireFormat had its own reader:
    /// `protobuf_c_message_unpack` into a bump arena, then `EventReader` over the C structs. Kept as the reference
    /// the reader is tested against (`EventReadingTests`) and for the bench's comparison.
    @_spi(Benchmarks)
    public static func decodeEventBatchViaProtobufC(_ bytes: UnsafeRawBufferPointer) throws(WireFormatError)
        -> EventBatch
    {
        try checkSize(bytes, "EventBatch")
        return try UnpackArena.with(inputBytes: bytes.count) { allocator throws(WireFormatError) in
            guard let message = patrol__v1__event_batch__unpack(allocator, bytes.count, baseAddress(bytes)) else {
                throw malformed("EventBatch", bytes.count)
            }
            // The arena frees everything at once; no free_unpacked.
            return try readBatch(message)
        }
    }

    private static func readBatch(_ message: UnsafeMutablePointer<Patrol__V1__EventBatch>) throws(WireFormatError)
        -> EventBatch
    {
        let batch = message.pointee
        // Table strings and short strings (most argv entries, addresses) skip the intern table: size it smaller.
        var reader = EventReader(index: -1, expectedStrings: batch.n_events / 4)
        let sensorID = try reader.text(batch.sensor_id, "EventBatch.sensor_id", prefixed: false)
        guard !sensorID.isEmpty else { throw WireFormatError(.missingField, "EventBatch.sensor_id is empty") }
        let bootID = try reader.text(batch.boot_id, "EventBatch.boot_id", prefixed: false)
        guard batch.sequence != 0 else { throw WireFormatError(.invalidValue, "EventBatch.sequence is 0") }
        var containers: [ContainerRef] = []
        containers.reserveCapacity(batch.n_containers)
        for index in 0..<batch.n_containers {
            guard let ref = batch.containers[index] else {
                throw WireFormatError(.malformed, "EventBatch.containers[\(index)] is missing")
            }
            containers.append(try containerRef(ref.pointee, "EventBatch.containers[\(index)]"))
        }
        reader.containers = containers
        var strings: [String] = []
        strings.reserveCapacity(batch.n_strings)
        for index in 0..<batch.n_strings {
            guard let pointer = batch.strings[index] else {
                strings.append("")
                continue
            }
            guard let text = CText.string(pointer, length: strlen(pointer)) else {
                throw WireFormatError(.invalidValue, "EventBatch.strings[\(index)] is not valid UTF-8")
            }
            strings.append(text)
        }
        reader.strings = strings
        var events: [Event] = []
        events.reserveCapacity(batch.n_events)
        for index in 0..<batch.n_events {
            reader.index = index
            guard let event = batch.events[index] else { throw reader.fail(.malformed, "missing") }
            events.append(try reader.event(event))
        }
        return EventBatch(
            sensorID: sensorID, bootID: bootID, sequence: batch.sequence, compressed: batch.compressed != 0,
            events: events)
    }

    public static func decodeEventBatch(_ bytes: [UInt8]) throws(WireFormatError) -> EventBatch {
        try withRaw(bytes) { raw throws(WireFormatError) in try decodeEventBatch(raw) }
    }

    /// `decodeEventBatchViaProtobufC` of an array.
    @_spi(Benchmarks)
    public static func decodeEventBatchViaProtobufC(_ bytes: [UInt8]) throws(WireFormatError) -> EventBatch {
        try withRaw(bytes) { raw throws(WireFormatError) in try decodeEventBatchViaProtobufC(raw) }
    }

    /// Decodes with protobuf-c's default (malloc) allocator and `free_unpacked`, as before `UnpackArena`. Not used
    /// on any real path: the tests decode every input both ways to show the arena changes nothing but the cost.
    static func decodeEventBatchWithSystemAllocator(_ bytes: [UInt8]) throws(WireFormatError) -> EventBatch {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "EventBatch")
            guard let message = patrol__v1__event_batch__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("EventBatch", raw.count)
            }
            defer { patrol__v1__event_batch__free_unpacked(message, nil) }
            return try readBatch(message)
        }
    }

    /// `decodeEvent` with protobuf-c's default allocator; see `decodeEventBatchWithSystemAllocator`.
    static func decodeEventWithSystemAllocator(_ bytes: [UInt8]) throws(WireFormatError) -> Event {
        try withRaw(bytes) { raw throws(WireFormatError) in
            try checkSize(raw, "Event")
            guard let message = patrol__v1__event__unpack(nil, raw.count, baseAddress(raw)) else {
                throw malformed("Event", raw.count)
            }
            defer { patrol__v1__event__free_unpacked(message, nil) }
            return try EventReader(index: -1).event(message)
        }
    }

    /// Only the protobuf-c half of `decodeEventBatch` (unpack into the arena, no Swift values): the bench uses it
    /// to show how much of decoding is protobuf-c's own parse. Returns the number of events, or -1 when malformed.
    @_spi(Benchmarks)
    public static func unpackEventBatchOnly(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { raw in
            UnpackArena.with(inputBytes: raw.count) { allocator in
                guard let message = patrol__v1__event_batch__unpack(allocator, raw.count, baseAddress(raw)) else {
                    return -1
                }
                return message.pointee.n_events
            }
        }
    }

    // MARK: Single events

    public static func encode(_ value: Event) -> [UInt8] {
        withUnsafePointer(to: value) { event in
            var arena = Arena(capacity: 1024)
            let message = arena.allocate(Patrol__V1__Event.self)
            var strings = StringTable(enabled: false)
            arena.fill(message, from: event, strings: &strings)
            return pack(message)
        }
    }

    public static func decodeEvent(_ bytes: UnsafeRawBufferPointer) throws(WireFormatError) -> Event {
        try checkSize(bytes, "Event")
        return try UnpackArena.with(inputBytes: bytes.count) { allocator throws(WireFormatError) in
            guard let message = patrol__v1__event__unpack(allocator, bytes.count, baseAddress(bytes)) else {
                throw malformed("Event", bytes.count)
            }
            let reader = EventReader(index: -1)
            return try reader.event(message)
        }
    }

    public static func decodeEvent(_ bytes: [UInt8]) throws(WireFormatError) -> Event {
        try withRaw(bytes) { raw throws(WireFormatError) in try decodeEvent(raw) }
    }

    // MARK: Helpers shared by every message

    static func containerRef(_ ref: Patrol__V1__ContainerRef, _ name: String) throws(WireFormatError) -> ContainerRef {
        var container = ContainerRef(
            runtime: try controlText(ref.runtime, "\(name).runtime"),
            containerID: try controlText(ref.container_id, "\(name).container_id"),
            podUID: try controlText(ref.pod_uid, "\(name).pod_uid"),
            podName: try controlText(ref.pod_name, "\(name).pod_name"),
            namespace: try controlText(ref.namespace_, "\(name).namespace"),
            containerName: try controlText(ref.container_name, "\(name).container_name"),
            image: try controlText(ref.image, "\(name).image"))
        try kubernetesFields(ref, name, into: &container)
        return container
    }

    /// The fields that come from the Kubernetes API (labels, owner), shared by the batch table and inline refs.
    static func kubernetesFields(_ ref: Patrol__V1__ContainerRef, _ name: @autoclosure () -> String,
        into container: inout ContainerRef) throws(WireFormatError)
    {
        if ref.n_labels > 0, let entries = ref.labels {
            var labels: [String: String] = [:]
            labels.reserveCapacity(ref.n_labels)
            for index in 0..<ref.n_labels {
                guard let entry = entries[index] else {
                    throw WireFormatError(.malformed, "\(name()).labels[\(index)] is missing")
                }
                // Like a protobuf map, a repeated key keeps the last value.
                labels[try controlText(entry.pointee.key, "\(name()).labels[\(index)].key")] =
                    try controlText(entry.pointee.value, "\(name()).labels[\(index)].value")
            }
            container.labels = labels
        }
        container.ownerKind = try controlText(ref.owner_kind, "\(name()).owner_kind")
        container.ownerName = try controlText(ref.owner_name, "\(name()).owner_name")
        container.runningAtSensorStart = ref.running_at_sensor_start != 0
    }

    static func checkSize(_ bytes: UnsafeRawBufferPointer, _ name: StaticString) throws(WireFormatError) {
        let max = maxMessageBytes
        if bytes.count > max {
            throw WireFormatError(.oversized, "\(name) is \(bytes.count) bytes, more than the limit of \(max)")
        }
    }

    static func malformed(_ name: StaticString, _ count: Int) -> WireFormatError {
        WireFormatError(
            .malformed, "\(name): \(count) bytes are not a valid protobuf encoding (truncated, corrupt or wrong type)",
            cause: .cCode(library: "protobuf-c", code: 0, text: "protobuf_c_message_unpack returned NULL"))
    }

    /// The bytes for protobuf-c; nil for empty input, which protobuf-c never reads when the length is 0.
    @inline(__always)
    static func baseAddress(_ bytes: UnsafeRawBufferPointer) -> UnsafePointer<UInt8>? {
        bytes.count == 0 ? nil : bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }

    @inline(__always)
    static func withRaw<R>(
        _ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(WireFormatError) -> R
    ) throws(WireFormatError) -> R {
        let result: Result<R, WireFormatError> = bytes.withUnsafeBytes { raw in
            do throws(WireFormatError) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Packs a protoc-c message (any struct starting with `ProtobufCMessage base`) into an exactly sized array.
    @inline(__always)
    static func pack<M>(_ message: UnsafeMutablePointer<M>) -> [UInt8] {
        let base = UnsafeRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
        let size = protobuf_c_message_get_packed_size(base)
        if size == 0 { return [] }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            initialized = protobuf_c_message_pack(base, buffer.baseAddress!)
            precondition(initialized == size, "protobuf-c packed a different size than it measured")
        }
    }
}

// MARK: - Encoding events

extension Arena {
    mutating func fill(_ c: UnsafeMutablePointer<Patrol__V1__ContainerRef>, from ref: ContainerRef) {
        patrol__v1__container_ref__init(c)
        c.pointee.runtime = cString(ref.runtime)
        c.pointee.container_id = cString(ref.containerID)
        c.pointee.pod_uid = cString(ref.podUID)
        c.pointee.pod_name = cString(ref.podName)
        c.pointee.namespace_ = cString(ref.namespace)
        c.pointee.container_name = cString(ref.containerName)
        c.pointee.image = cString(ref.image)
        c.pointee.owner_kind = cString(ref.ownerKind)
        c.pointee.owner_name = cString(ref.ownerName)
        c.pointee.running_at_sensor_start = ref.runningAtSensorStart ? 1 : 0
        if !ref.labels.isEmpty {
            // Sorted, so equal label sets encode to equal bytes.
            let sorted = ref.labels.sorted { $0.key < $1.key }
            let entries = allocate(Patrol__V1__PodLabel.self, count: sorted.count)
            let pointers = allocate(UnsafeMutablePointer<Patrol__V1__PodLabel>?.self, count: sorted.count)
            for (slot, label) in sorted.enumerated() {
                patrol__v1__pod_label__init(entries + slot)
                entries[slot].key = cString(label.key)
                entries[slot].value = cString(label.value)
                pointers[slot] = entries + slot
            }
            c.pointee.n_labels = sorted.count
            c.pointee.labels = pointers
        }
    }

    /// Fills an Event struct. A non-zero `containerIndex` refers to the batch's container table instead of
    /// writing the container inline. The event is read through a pointer so it is borrowed, not copied (a copy
    /// retains and releases every one of its strings).
    @inline(__always)
    mutating func fill(
        _ c: UnsafeMutablePointer<Patrol__V1__Event>, from event: UnsafePointer<Event>, containerIndex: UInt32 = 0,
        strings: inout StringTable
    ) {
        patrol__v1__event__init(c)
        c.pointee.time_ns = event.pointee.time
        c.pointee.node_ref = strings.ref(event.pointee.node)
        if c.pointee.node_ref == 0 { c.pointee.node = cString(event.pointee.node) }
        c.pointee.count = event.pointee.count

        let process = allocate(Patrol__V1__Process.self)
        patrol__v1__process__init(process)
        process.pointee.pid = event.pointee.process.pid
        process.pointee.ppid = event.pointee.process.ppid
        process.pointee.tid = event.pointee.process.tid
        process.pointee.uid = event.pointee.process.uid
        process.pointee.gid = event.pointee.process.gid
        process.pointee.comm_ref = strings.ref(event.pointee.process.comm)
        if process.pointee.comm_ref == 0 { process.pointee.comm = cString(event.pointee.process.comm) }
        process.pointee.exe_ref = strings.ref(event.pointee.process.exe)
        if process.pointee.exe_ref == 0 { process.pointee.exe = cString(event.pointee.process.exe) }
        process.pointee.cwd_ref = strings.ref(event.pointee.process.cwd)
        if process.pointee.cwd_ref == 0 { process.pointee.cwd = cString(event.pointee.process.cwd) }
        process.pointee.mount_namespace = event.pointee.process.mountNamespace
        c.pointee.process = process

        if containerIndex != 0 {
            c.pointee.container_index = containerIndex
        } else if let ref = event.pointee.container {
            let container = allocate(Patrol__V1__ContainerRef.self)
            fill(container, from: ref)
            c.pointee.container = container
        }

        switch event.pointee.payload {
        case .exec(let exec):
            let p = allocate(Patrol__V1__Exec.self)
            patrol__v1__exec__init(p)
            p.pointee.path_ref = strings.ref(exec.path)
            if p.pointee.path_ref == 0 { p.pointee.path = cString(exec.path) }
            p.pointee.n_argv = exec.argv.count
            p.pointee.argv = cStrings(exec.argv)
            p.pointee.n_env = exec.env.count
            p.pointee.env = cStrings(exec.env)
            p.pointee.upper_layer = exec.upperLayer ? 1 : 0
            p.pointee.from_volume = exec.fromVolume ? 1 : 0
            p.pointee.stdio_socket = exec.stdioSocket ? 1 : 0
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_EXEC
            c.pointee.exec = p
        case .exit(let exit):
            let p = allocate(Patrol__V1__Exit.self)
            patrol__v1__exit__init(p)
            p.pointee.code = exit.code
            p.pointee.signal = exit.signal
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_EXIT
            c.pointee.exit = p
        case .open(let open):
            let p = allocate(Patrol__V1__FileOpen.self)
            patrol__v1__file_open__init(p)
            p.pointee.path_ref = strings.ref(open.path)
            if p.pointee.path_ref == 0 { p.pointee.path = cString(open.path) }
            p.pointee.flags = open.flags
            p.pointee.result = open.result
            p.pointee.from_volume = open.fromVolume ? 1 : 0
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_OPEN
            c.pointee.open = p
        case .connect(let flow):
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_CONNECT
            c.pointee.connect = networkFlow(flow)
        case .accept(let flow):
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_ACCEPT
            c.pointee.accept = networkFlow(flow)
        case .dns(let dns):
            let p = allocate(Patrol__V1__DnsQuery.self)
            patrol__v1__dns_query__init(p)
            p.pointee.name = cString(dns.name)
            p.pointee.query_type = UInt32(dns.queryType)
            p.pointee.n_answers = dns.answers.count
            p.pointee.answers = cStrings(dns.answers)
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_DNS
            c.pointee.dns = p
        case .syscalls(let set):
            let p = allocate(Patrol__V1__SyscallSet.self)
            patrol__v1__syscall_set__init(p)
            p.pointee.n_syscalls = set.syscalls.count
            p.pointee.syscalls = copy(set.syscalls)
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_SYSCALLS
            c.pointee.syscalls = p
        case .capability(let use):
            let p = allocate(Patrol__V1__CapabilityUse.self)
            patrol__v1__capability_use__init(p)
            p.pointee.capability = use.capability
            p.pointee.syscall = use.syscall
            p.pointee.granted = use.granted ? 1 : 0
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_CAPABILITY
            c.pointee.capability = p
        case .moduleLoad(let load):
            let p = allocate(Patrol__V1__ModuleLoad.self)
            patrol__v1__module_load__init(p)
            p.pointee.syscall = cString(load.syscall)
            p.pointee.name = cString(load.name)
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_MODULE_LOAD
            c.pointee.module_load = p
        case .ptrace(let attach):
            let p = allocate(Patrol__V1__PtraceAttach.self)
            patrol__v1__ptrace_attach__init(p)
            p.pointee.request = attach.request
            p.pointee.target_pid = attach.targetPid
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_PTRACE
            c.pointee.ptrace = p
        case .namespaceChange(let change):
            let p = allocate(Patrol__V1__NamespaceChange.self)
            patrol__v1__namespace_change__init(p)
            p.pointee.syscall = cString(change.syscall)
            p.pointee.flags = change.flags
            p.pointee.source = cString(change.source)
            p.pointee.target = cString(change.target)
            p.pointee.fs_type = cString(change.fsType)
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_NAMESPACE_CHANGE
            c.pointee.namespace_change = p
        case .memfd(let memfd):
            let p = allocate(Patrol__V1__MemfdCreate.self)
            patrol__v1__memfd_create__init(p)
            p.pointee.name = cString(memfd.name)
            p.pointee.flags = memfd.flags
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_MEMFD
            c.pointee.memfd = p
        case .link(let link):
            let p = allocate(Patrol__V1__FileLink.self)
            patrol__v1__file_link__init(p)
            p.pointee.target = cString(link.target)
            p.pointee.link_path = cString(link.linkPath)
            p.pointee.symbolic = link.symbolic ? 1 : 0
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_LINK
            c.pointee.link = p
        case .bpf(let call):
            let p = allocate(Patrol__V1__BpfCall.self)
            patrol__v1__bpf_call__init(p)
            p.pointee.command = call.command
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_BPF
            c.pointee.bpf = p
        case .scanResult(let scan):
            let p = allocate(Patrol__V1__ScanResult.self)
            patrol__v1__scan_result__init(p)
            p.pointee.scan_id = cString(scan.scanID)
            p.pointee.path = cString(scan.path)
            p.pointee.signature = cString(scan.signature)
            p.pointee.sha256 = cString(scan.sha256)
            p.pointee.size_bytes = scan.sizeBytes
            p.pointee.part_of_image = scan.partOfImage ? 1 : 0
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_SCAN_RESULT
            c.pointee.scan_result = p
        case .audit(let record):
            let p = allocate(Patrol__V1__AuditRecord.self)
            patrol__v1__audit_record__init(p)
            p.pointee.document_json = cString(JSONText.serialize(record.document))
            p.pointee.source_id = cString(record.sourceID)
            c.pointee.payload_case = PATROL__V1__EVENT__PAYLOAD_AUDIT
            c.pointee.audit = p
        }
    }

    @inline(__always)
    mutating func networkFlow(_ flow: NetworkFlow) -> UnsafeMutablePointer<Patrol__V1__NetworkFlow> {
        let p = allocate(Patrol__V1__NetworkFlow.self)
        patrol__v1__network_flow__init(p)
        p.pointee.family = Patrol__V1__AddressFamily(rawValue: WireEnums.number(flow.family))
        p.pointee.proto = Patrol__V1__TransportProtocol(rawValue: WireEnums.number(flow.proto))
        p.pointee.local_address = cString(flow.localAddress)
        p.pointee.local_port = UInt32(flow.localPort)
        p.pointee.remote_address = cString(flow.remoteAddress)
        p.pointee.remote_port = UInt32(flow.remotePort)
        p.pointee.result = flow.result
        return p
    }
}
