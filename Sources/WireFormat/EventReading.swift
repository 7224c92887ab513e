import EventModel

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decodes an `EventBatch` straight from its bytes into `EventModel` values, the reading counterpart of
/// `EventWriting.swift`.
///
/// Why not protobuf-c: `protobuf_c_message_unpack` alone took 430–730 ns per event of the bench mix (60–78 % of
/// decoding, docs/BENCHMARKS.md): a descriptor-driven scan of every message, an allocation and a copy for every
/// string and nested message, after which each string was measured again with `strlen` and copied into a Swift
/// string. Here each field is read once and each Swift string is made once from the input bytes.
///
/// The result is the one protobuf-c plus `EventReader` gives, value for value and error for error (same code and
/// message), which `EventReadingTests` checks on every event kind and on a differential fuzz of malformed and
/// reshuffled input. That means protobuf-c's rules, including its unusual ones: fields in any order, unknown
/// fields skipped, the last value of a repeated singular field wins; a repeated `process` or inline `container`
/// merges as protobuf-c merges (a string keeps the last occurrence that carried it, a number comes from the last
/// occurrence even when absent there, `labels` are concatenated); a repeated payload field replaces the earlier
/// payload (protobuf-c frees the earlier oneof member); strings end at their first NUL. Values are checked in the
/// order `EventReader` checks them, and a value error is reported only when the whole input is well formed
/// (`WireShape`), because protobuf-c rejects malformed input before any value is looked at.
struct BatchReader: ~Copyable {
    /// The whole input, for the final structure check and the error message.
    let input: WireSpan
    /// The event being decoded (for error messages).
    var index = 0
    var containers: [ContainerRef] = []
    var strings: [String] = []
    private var cache: TextCache

    init(input: WireSpan, expectedStrings: Int) {
        self.input = input
        cache = TextCache(expectedStrings: expectedStrings)
    }

    // MARK: Errors

    /// The error to throw for a problem found while decoding: a value error stands only when the whole input is
    /// well formed, otherwise the input is malformed, as protobuf-c would say before looking at any value.
    func settle(_ error: WireFormatError) -> WireFormatError {
        if error.code != .malformed, WireShape.batch.isWellFormed(input) { return error }
        return WireFormatError(
            .malformed,
            "EventBatch: \(input.count) bytes are not a valid protobuf encoding (truncated, corrupt or wrong type)",
            cause: .error(error.code == .malformed ? error : WireFormatError(.malformed, "not well formed")))
    }

    func fail(_ code: WireFormatError.Code, _ text: String) -> WireFormatError {
        WireFormatError(code, "event \(index): \(text)")
    }

    // MARK: Batch

    mutating func batch() throws(WireFormatError) -> EventBatch {
        var sensorID = WireSpan.absent
        var bootID = WireSpan.absent
        var sequence: UInt64 = 0
        var compressed = false
        var eventSpans: [WireSpan] = []
        var containerSpans: [WireSpan] = []
        var stringSpans: [WireSpan] = []
        // Events are usually 60-100 bytes; reserving for that avoids regrowing the array.
        eventSpans.reserveCapacity(input.count / 64 + 1)
        var cursor = WireCursor(input)
        while !cursor.isAtEnd {
            let (field, wire) = try cursor.tag()
            switch field {
            case 5: eventSpans.append(try cursor.lengthDelimited(wire))
            case 7: stringSpans.append(try cursor.lengthDelimited(wire))
            case 6: containerSpans.append(try cursor.lengthDelimited(wire))
            case 1: sensorID = try cursor.lengthDelimited(wire)
            case 2: bootID = try cursor.lengthDelimited(wire)
            case 3: sequence = try cursor.varint(wire)
            case 4: compressed = try cursor.bool(wire)
            default: try cursor.skip(wire)
            }
        }

        let sensor = try Self.tableText(sensorID, "EventBatch.sensor_id")
        guard !sensor.isEmpty else { throw WireFormatError(.missingField, "EventBatch.sensor_id is empty") }
        let boot = try Self.tableText(bootID, "EventBatch.boot_id")
        guard sequence != 0 else { throw WireFormatError(.invalidValue, "EventBatch.sequence is 0") }

        containers.reserveCapacity(containerSpans.count)
        for (position, span) in containerSpans.enumerated() {
            let wire = try ContainerWire(span)
            containers.append(try wire.tableRef(position))
        }
        strings.reserveCapacity(stringSpans.count)
        for (position, span) in stringSpans.enumerated() {
            let bytes = span.cString
            guard let text = CText.string(bytes) else {
                throw WireFormatError(.invalidValue, "EventBatch.strings[\(position)] is not valid UTF-8")
            }
            strings.append(text)
        }

        var events: [Event] = []
        events.reserveCapacity(eventSpans.count)
        for position in 0..<eventSpans.count {
            index = position
            events.append(try event(eventSpans[position]))
        }
        return EventBatch(sensorID: sensor, bootID: boot, sequence: sequence, compressed: compressed, events: events)
    }

    /// A batch-level string (the container table, sensor and boot ids): no intern table, unprefixed errors.
    @inline(__always)
    static func tableText(_ span: WireSpan, _ field: @autoclosure () -> String) throws(WireFormatError) -> String {
        let bytes = span.cString
        if bytes.count == 0 { return "" }
        guard let text = CText.string(bytes) else {
            throw WireFormatError(.invalidValue, "\(field()) is not valid UTF-8")
        }
        return text
    }

    // MARK: Strings

    /// An event's string field; "" when absent. Invalid UTF-8 is rejected.
    @inline(__always)
    func text(_ span: WireSpan, _ field: StaticString) throws(WireFormatError) -> String {
        let bytes = span.cString
        if bytes.count == 0 { return "" }
        guard let text = cache.text(bytes) else { throw fail(.invalidValue, "\(field) is not valid UTF-8") }
        return text
    }

    /// A string field that may instead be a 1-based reference into the batch's string table.
    @inline(__always)
    func text(ref: UInt32, _ span: WireSpan, _ field: StaticString, _ refField: StaticString)
        throws(WireFormatError) -> String
    {
        if ref == 0 { return try text(span, field) }
        guard Int(ref) <= strings.count else {
            throw fail(.invalidValue, "\(refField) \(ref) is beyond the batch's \(strings.count) strings")
        }
        if span.hasText { throw fail(.invalidValue, "both \(field) and \(refField) are set") }
        return strings[Int(ref) - 1]
    }

    /// A repeated string field's next entry: appended, or (invalid UTF-8) remembered in `invalid` so the error is
    /// raised where `EventReader` raises it, after the fields it checks first.
    @inline(__always)
    func append(_ span: WireSpan, to texts: inout [String], invalid: inout Bool) {
        let bytes = span.cString
        if bytes.count == 0 {
            texts.append("")
        } else if let text = cache.text(bytes) {
            texts.append(text)
        } else {
            invalid = true
        }
    }

    // MARK: Event

    func event(_ span: WireSpan) throws(WireFormatError) -> Event {
        var time: UInt64 = 0
        var node = WireSpan.absent
        var nodeRef: UInt32 = 0
        var count: UInt32 = 0
        var containerIndex: UInt32 = 0
        // Nested messages are kept as spans and read after the loop: a `ProcessWire?`/`ContainerWire?` carried
        // through the loop was copied (150 bytes, `memcpy`) on every field. A repeated one goes to the array, which
        // allocates only then.
        var processSpan = WireSpan.absent
        var containerSpan = WireSpan.absent
        var repeated: [(field: UInt32, span: WireSpan)] = []
        var payloadField: UInt32 = 0
        var payload = WireSpan.absent
        var cursor = WireCursor(span)
        while !cursor.isAtEnd {
            let (field, wire) = try cursor.tag()
            switch field {
            case 1: time = try cursor.varint(wire)
            case 2: node = try cursor.lengthDelimited(wire)
            case 3:
                let body = try cursor.lengthDelimited(wire)
                if processSpan.isPresent { repeated.append((3, body)) } else { processSpan = body }
            case 4:
                let body = try cursor.lengthDelimited(wire)
                if containerSpan.isPresent { repeated.append((4, body)) } else { containerSpan = body }
            case 5: count = try cursor.uint32(wire)
            case 6: containerIndex = try cursor.uint32(wire)
            case 10...25:
                let body = try cursor.lengthDelimited(wire)
                // The earlier payload is dropped, as protobuf-c frees it, but protobuf-c parsed it first.
                if payloadField != 0 { try WireShape.payload(payloadField)!.check(payload) }
                payloadField = field
                payload = body
            case 26: nodeRef = try cursor.uint32(wire)
            default: try cursor.skip(wire)
            }
        }

        // Every occurrence is parsed (protobuf-c parses each, so a malformed one fails the batch) and merged.
        var process = processSpan.isPresent ? try ProcessWire(processSpan) : nil
        var inline = containerSpan.isPresent ? try ContainerWire(containerSpan) : nil
        for (field, body) in repeated {
            if field == 3 {
                var next = try ProcessWire(body)
                next.merge(process!)
                process = next
            } else {
                var next = try ContainerWire(body)
                next.merge(inline!)
                inline = next
            }
        }

        guard count != 0 else { throw fail(.invalidValue, "count is 0") }
        guard let p = process else { throw fail(.missingField, "process is missing") }
        let nodeText = try text(ref: nodeRef, node, "node", "node_ref")
        let info = ProcessInfo(
            pid: p.pid, ppid: p.ppid, tid: p.tid, uid: p.uid, gid: p.gid,
            comm: try text(ref: p.commRef, p.comm, "process.comm", "process.comm_ref"),
            exe: try text(ref: p.exeRef, p.exe, "process.exe", "process.exe_ref"),
            cwd: try text(ref: p.cwdRef, p.cwd, "process.cwd", "process.cwd_ref"),
            mountNamespace: p.mountNamespace)
        var container: ContainerRef? = nil
        if containerIndex != 0 {
            guard inline == nil else { throw fail(.invalidValue, "both container and container_index are set") }
            guard Int(containerIndex) <= containers.count else {
                throw fail(
                    .invalidValue,
                    "container_index \(containerIndex) is beyond the batch's \(containers.count) containers")
            }
            container = containers[Int(containerIndex) - 1]
        } else if let inline {
            container = try inlineContainer(inline)
        }
        let value = try self.payload(payloadField, payload)
        return Event(time: time, node: nodeText, process: info, container: container, payload: value, count: count)
    }

    private func inlineContainer(_ wire: ContainerWire) throws(WireFormatError) -> ContainerRef {
        var ref = ContainerRef(
            runtime: try text(wire.runtime, "container.runtime"),
            containerID: try text(wire.containerID, "container.container_id"),
            podUID: try text(wire.podUID, "container.pod_uid"),
            podName: try text(wire.podName, "container.pod_name"),
            namespace: try text(wire.namespace, "container.namespace"),
            containerName: try text(wire.containerName, "container.container_name"),
            image: try text(wire.image, "container.image"))
        try wire.kubernetesFields("Event.container", into: &ref)
        return ref
    }

    // MARK: Payloads

    private func payload(_ field: UInt32, _ span: WireSpan) throws(WireFormatError) -> Payload {
        switch field {
        case 10: return try exec(span)
        case 11:
            var code: Int32 = 0
            var signal: Int32 = 0
            var cursor = WireCursor(span)
            while !cursor.isAtEnd {
                let (number, wire) = try cursor.tag()
                switch number {
                case 1: code = try cursor.int32(wire)
                case 2: signal = try cursor.int32(wire)
                default: try cursor.skip(wire)
                }
            }
            return .exit(Exit(code: code, signal: signal))
        case 12: return try open(span)
        case 13: return .connect(try flow(span, connect: true))
        case 14: return .accept(try flow(span, connect: false))
        case 15: return try dns(span)
        case 16:
            var numbers: [UInt32] = []
            var cursor = WireCursor(span)
            while !cursor.isAtEnd {
                let (number, wire) = try cursor.tag()
                if number == 1 { try cursor.uint32s(wire, into: &numbers) } else { try cursor.skip(wire) }
            }
            return .syscalls(SyscallSet(syscalls: numbers))
        case 17:
            var capability: UInt32 = 0
            var syscall: UInt32 = 0
            var granted = false
            var cursor = WireCursor(span)
            while !cursor.isAtEnd {
                let (number, wire) = try cursor.tag()
                switch number {
                case 1: capability = try cursor.uint32(wire)
                case 2: syscall = try cursor.uint32(wire)
                case 3: granted = try cursor.bool(wire)
                default: try cursor.skip(wire)
                }
            }
            return .capability(CapabilityUse(capability: capability, syscall: syscall, granted: granted))
        case 18:
            let (syscall, name) = try stringPair(span)
            return .moduleLoad(
                ModuleLoad(syscall: try text(syscall, "module_load.syscall"), name: try text(name, "module_load.name")))
        case 19:
            var request: Int32 = 0
            var target: Int32 = 0
            var cursor = WireCursor(span)
            while !cursor.isAtEnd {
                let (number, wire) = try cursor.tag()
                switch number {
                case 1: request = try cursor.int32(wire)
                case 2: target = try cursor.int32(wire)
                default: try cursor.skip(wire)
                }
            }
            return .ptrace(PtraceAttach(request: request, targetPid: target))
        case 20:
            var syscall = WireSpan.absent
            var flags: UInt64 = 0
            var source = WireSpan.absent
            var target = WireSpan.absent
            var fsType = WireSpan.absent
            var cursor = WireCursor(span)
            while !cursor.isAtEnd {
                let (number, wire) = try cursor.tag()
                switch number {
                case 1: syscall = try cursor.lengthDelimited(wire)
                case 2: flags = try cursor.varint(wire)
                case 3: source = try cursor.lengthDelimited(wire)
                case 4: target = try cursor.lengthDelimited(wire)
                case 5: fsType = try cursor.lengthDelimited(wire)
                default: try cursor.skip(wire)
                }
            }
            return .namespaceChange(
                NamespaceChange(
                    syscall: try text(syscall, "namespace_change.syscall"), flags: flags,
                    source: try text(source, "namespace_change.source"),
                    target: try text(target, "namespace_change.target"),
                    fsType: try text(fsType, "namespace_change.fs_type")))
        case 21:
            var name = WireSpan.absent
            var flags: UInt32 = 0
            var cursor = WireCursor(span)
            while !cursor.isAtEnd {
                let (number, wire) = try cursor.tag()
                switch number {
                case 1: name = try cursor.lengthDelimited(wire)
                case 2: flags = try cursor.uint32(wire)
                default: try cursor.skip(wire)
                }
            }
            return .memfd(MemfdCreate(name: try text(name, "memfd.name"), flags: flags))
        case 22:
            var target = WireSpan.absent
            var linkPath = WireSpan.absent
            var symbolic = false
            var cursor = WireCursor(span)
            while !cursor.isAtEnd {
                let (number, wire) = try cursor.tag()
                switch number {
                case 1: target = try cursor.lengthDelimited(wire)
                case 2: linkPath = try cursor.lengthDelimited(wire)
                case 3: symbolic = try cursor.bool(wire)
                default: try cursor.skip(wire)
                }
            }
            return .link(
                FileLink(
                    target: try text(target, "link.target"), linkPath: try text(linkPath, "link.link_path"),
                    symbolic: symbolic))
        case 23:
            var command: Int32 = 0
            var cursor = WireCursor(span)
            while !cursor.isAtEnd {
                let (number, wire) = try cursor.tag()
                if number == 1 { command = try cursor.int32(wire) } else { try cursor.skip(wire) }
            }
            return .bpf(BPFCall(command: command))
        case 24: return try scanResult(span)
        case 25: return try audit(span)
        default:
            throw fail(.invalidValue, "unknown payload case")
        }
    }

    private func exec(_ span: WireSpan) throws(WireFormatError) -> Payload {
        var path = WireSpan.absent
        var pathRef: UInt32 = 0
        var argv: [String] = []
        var env: [String] = []
        var badArgv = false
        var badEnv = false
        var upperLayer = false
        var fromVolume = false
        var stdioSocket = false
        var cursor = WireCursor(span)
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.tag()
            switch number {
            case 1: path = try cursor.lengthDelimited(wire)
            case 2: append(try cursor.lengthDelimited(wire), to: &argv, invalid: &badArgv)
            case 3: append(try cursor.lengthDelimited(wire), to: &env, invalid: &badEnv)
            case 4: upperLayer = try cursor.bool(wire)
            case 5: pathRef = try cursor.uint32(wire)
            case 6: fromVolume = try cursor.bool(wire)
            case 7: stdioSocket = try cursor.bool(wire)
            default: try cursor.skip(wire)
            }
        }
        let pathText = try text(ref: pathRef, path, "exec.path", "exec.path_ref")
        if badArgv { throw fail(.invalidValue, "exec.argv is not valid UTF-8") }
        if badEnv { throw fail(.invalidValue, "exec.env is not valid UTF-8") }
        return .exec(
            Exec(
                path: pathText, argv: argv, env: env, upperLayer: upperLayer, fromVolume: fromVolume,
                stdioSocket: stdioSocket))
    }

    private func open(_ span: WireSpan) throws(WireFormatError) -> Payload {
        var path = WireSpan.absent
        var flags: UInt32 = 0
        var result: Int32 = 0
        var pathRef: UInt32 = 0
        var fromVolume = false
        var cursor = WireCursor(span)
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.tag()
            switch number {
            case 1: path = try cursor.lengthDelimited(wire)
            case 2: flags = try cursor.uint32(wire)
            case 3: result = try cursor.int32(wire)
            case 4: pathRef = try cursor.uint32(wire)
            case 5: fromVolume = try cursor.bool(wire)
            default: try cursor.skip(wire)
            }
        }
        return .open(
            FileOpen(
                path: try text(ref: pathRef, path, "open.path", "open.path_ref"), flags: flags, result: result,
                fromVolume: fromVolume))
    }

    private func flow(_ span: WireSpan, connect: Bool) throws(WireFormatError) -> NetworkFlow {
        var familyNumber: UInt32 = 0
        var protoNumber: UInt32 = 0
        var local = WireSpan.absent
        var localPortNumber: UInt32 = 0
        var remote = WireSpan.absent
        var remotePortNumber: UInt32 = 0
        var result: Int32 = 0
        var cursor = WireCursor(span)
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.tag()
            switch number {
            case 1: familyNumber = try cursor.uint32(wire)
            case 2: protoNumber = try cursor.uint32(wire)
            case 3: local = try cursor.lengthDelimited(wire)
            case 4: localPortNumber = try cursor.uint32(wire)
            case 5: remote = try cursor.lengthDelimited(wire)
            case 6: remotePortNumber = try cursor.uint32(wire)
            case 7: result = try cursor.int32(wire)
            default: try cursor.skip(wire)
            }
        }
        let kind = connect ? "connect" : "accept"
        guard let family = WireEnums.family(familyNumber) else {
            throw fail(.invalidValue, "\(kind).family \(familyNumber) is not a known AddressFamily")
        }
        guard let proto = WireEnums.transport(protoNumber) else {
            throw fail(.invalidValue, "\(kind).proto \(protoNumber) is not a known TransportProtocol")
        }
        guard let localPort = UInt16(exactly: localPortNumber) else {
            throw fail(.invalidValue, "\(kind).local_port \(localPortNumber) is out of range 0...65535")
        }
        guard let remotePort = UInt16(exactly: remotePortNumber) else {
            throw fail(.invalidValue, "\(kind).remote_port \(remotePortNumber) is out of range 0...65535")
        }
        return NetworkFlow(
            family: family, proto: proto,
            localAddress: try text(local, connect ? "connect.local_address" : "accept.local_address"),
            localPort: localPort,
            remoteAddress: try text(remote, connect ? "connect.remote_address" : "accept.remote_address"),
            remotePort: remotePort, result: result)
    }

    private func dns(_ span: WireSpan) throws(WireFormatError) -> Payload {
        var name = WireSpan.absent
        var queryType: UInt32 = 0
        var answers: [String] = []
        var badAnswers = false
        var cursor = WireCursor(span)
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.tag()
            switch number {
            case 1: name = try cursor.lengthDelimited(wire)
            case 2: queryType = try cursor.uint32(wire)
            case 3: append(try cursor.lengthDelimited(wire), to: &answers, invalid: &badAnswers)
            default: try cursor.skip(wire)
            }
        }
        guard let type = UInt16(exactly: queryType) else {
            throw fail(.invalidValue, "dns.query_type \(queryType) is out of range 0...65535")
        }
        let nameText = try text(name, "dns.name")
        if badAnswers { throw fail(.invalidValue, "dns.answers is not valid UTF-8") }
        return .dns(DNSQuery(name: nameText, queryType: type, answers: answers))
    }

    private func scanResult(_ span: WireSpan) throws(WireFormatError) -> Payload {
        var scanID = WireSpan.absent
        var path = WireSpan.absent
        var signature = WireSpan.absent
        var sha256 = WireSpan.absent
        var size: UInt64 = 0
        var partOfImage = false
        var cursor = WireCursor(span)
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.tag()
            switch number {
            case 1: scanID = try cursor.lengthDelimited(wire)
            case 2: path = try cursor.lengthDelimited(wire)
            case 3: signature = try cursor.lengthDelimited(wire)
            case 4: sha256 = try cursor.lengthDelimited(wire)
            case 5: size = try cursor.varint(wire)
            case 6: partOfImage = try cursor.bool(wire)
            default: try cursor.skip(wire)
            }
        }
        return .scanResult(
            ScanResult(
                scanID: try text(scanID, "scan_result.scan_id"), path: try text(path, "scan_result.path"),
                signature: try text(signature, "scan_result.signature"),
                sha256: try text(sha256, "scan_result.sha256"), sizeBytes: size, partOfImage: partOfImage))
    }

    private func audit(_ span: WireSpan) throws(WireFormatError) -> Payload {
        let (json, source) = try stringPair(span)
        let sourceID = try text(source, "audit.source_id")
        let document = json.cString
        guard document.count > 0 else { throw fail(.missingField, "audit.document_json is empty") }
        let bytes = UnsafeBufferPointer(start: document.base!, count: document.count)
        guard CText.isValidUTF8(bytes) else { throw fail(.invalidValue, "audit.document_json is not valid UTF-8") }
        let value: JSONValue
        do throws(JSONText.ParseError) {
            value = try JSONText.parse(bytes)
        } catch {
            throw fail(.invalidValue, "audit.document_json is not valid JSON: \(error.description)")
        }
        return .audit(AuditRecord(document: value, sourceID: sourceID))
    }

    /// A message of two string fields, numbers 1 and 2.
    private func stringPair(_ span: WireSpan) throws(WireFormatError) -> (WireSpan, WireSpan) {
        var first = WireSpan.absent
        var second = WireSpan.absent
        var cursor = WireCursor(span)
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.tag()
            switch number {
            case 1: first = try cursor.lengthDelimited(wire)
            case 2: second = try cursor.lengthDelimited(wire)
            default: try cursor.skip(wire)
            }
        }
        return (first, second)
    }
}

// MARK: - Nested messages as read from the wire

/// `Process` fields before they become a `ProcessInfo` (strings still as spans, so a repeated `process` can merge).
struct ProcessWire {
    var pid: Int32 = 0
    var ppid: Int32 = 0
    var tid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    var comm = WireSpan.absent
    var exe = WireSpan.absent
    var cwd = WireSpan.absent
    var mountNamespace: UInt64 = 0
    var commRef: UInt32 = 0
    var exeRef: UInt32 = 0
    var cwdRef: UInt32 = 0

    @inline(__always)
    init(_ span: WireSpan) throws(WireFormatError) {
        var cursor = WireCursor(span)
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.tag()
            switch number {
            case 1: pid = try cursor.int32(wire)
            case 2: ppid = try cursor.int32(wire)
            case 3: tid = try cursor.int32(wire)
            case 4: uid = try cursor.uint32(wire)
            case 5: gid = try cursor.uint32(wire)
            case 6: comm = try cursor.lengthDelimited(wire)
            case 7: exe = try cursor.lengthDelimited(wire)
            case 8: cwd = try cursor.lengthDelimited(wire)
            case 9: mountNamespace = try cursor.varint(wire)
            case 10: commRef = try cursor.uint32(wire)
            case 11: exeRef = try cursor.uint32(wire)
            case 12: cwdRef = try cursor.uint32(wire)
            default: try cursor.skip(wire)
            }
        }
    }

    /// protobuf-c's merge of an earlier occurrence into this later one: strings absent here come from the earlier
    /// one; numbers stay as read here (0 when absent: protobuf-c has no presence for proto3 numbers).
    mutating func merge(_ earlier: ProcessWire) {
        if !comm.isPresent { comm = earlier.comm }
        if !exe.isPresent { exe = earlier.exe }
        if !cwd.isPresent { cwd = earlier.cwd }
    }
}

/// `ContainerRef` fields as read from the wire.
struct ContainerWire {
    var runtime = WireSpan.absent
    var containerID = WireSpan.absent
    var podUID = WireSpan.absent
    var podName = WireSpan.absent
    var namespace = WireSpan.absent
    var containerName = WireSpan.absent
    var image = WireSpan.absent
    var labels: [(key: WireSpan, value: WireSpan)] = []
    var ownerKind = WireSpan.absent
    var ownerName = WireSpan.absent
    var running = false

    init(_ span: WireSpan) throws(WireFormatError) {
        var cursor = WireCursor(span)
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.tag()
            switch number {
            case 1: runtime = try cursor.lengthDelimited(wire)
            case 2: containerID = try cursor.lengthDelimited(wire)
            case 3: podUID = try cursor.lengthDelimited(wire)
            case 4: podName = try cursor.lengthDelimited(wire)
            case 5: namespace = try cursor.lengthDelimited(wire)
            case 6: containerName = try cursor.lengthDelimited(wire)
            case 7: image = try cursor.lengthDelimited(wire)
            case 8:
                var key = WireSpan.absent
                var value = WireSpan.absent
                var entry = WireCursor(try cursor.lengthDelimited(wire))
                while !entry.isAtEnd {
                    let (field, entryWire) = try entry.tag()
                    switch field {
                    case 1: key = try entry.lengthDelimited(entryWire)
                    case 2: value = try entry.lengthDelimited(entryWire)
                    default: try entry.skip(entryWire)
                    }
                }
                labels.append((key, value))
            case 9: ownerKind = try cursor.lengthDelimited(wire)
            case 10: ownerName = try cursor.lengthDelimited(wire)
            case 11: running = try cursor.bool(wire)
            default: try cursor.skip(wire)
            }
        }
    }

    /// protobuf-c's merge (see `ProcessWire.merge`); `labels` is repeated, so the earlier entries come first.
    mutating func merge(_ earlier: ContainerWire) {
        if !runtime.isPresent { runtime = earlier.runtime }
        if !containerID.isPresent { containerID = earlier.containerID }
        if !podUID.isPresent { podUID = earlier.podUID }
        if !podName.isPresent { podName = earlier.podName }
        if !namespace.isPresent { namespace = earlier.namespace }
        if !containerName.isPresent { containerName = earlier.containerName }
        if !image.isPresent { image = earlier.image }
        if !ownerKind.isPresent { ownerKind = earlier.ownerKind }
        if !ownerName.isPresent { ownerName = earlier.ownerName }
        labels = earlier.labels + labels
    }

    /// A container of the batch's table.
    func tableRef(_ position: Int) throws(WireFormatError) -> ContainerRef {
        let name = "EventBatch.containers[\(position)]"
        var ref = ContainerRef(
            runtime: try BatchReader.tableText(runtime, "\(name).runtime"),
            containerID: try BatchReader.tableText(containerID, "\(name).container_id"),
            podUID: try BatchReader.tableText(podUID, "\(name).pod_uid"),
            podName: try BatchReader.tableText(podName, "\(name).pod_name"),
            namespace: try BatchReader.tableText(namespace, "\(name).namespace"),
            containerName: try BatchReader.tableText(containerName, "\(name).container_name"),
            image: try BatchReader.tableText(image, "\(name).image"))
        try kubernetesFields(name, into: &ref)
        return ref
    }

    /// Labels, owner and `running_at_sensor_start`, worded as `WireCodec.kubernetesFields` words them.
    func kubernetesFields(_ name: String, into ref: inout ContainerRef) throws(WireFormatError) {
        if !labels.isEmpty {
            var map: [String: String] = [:]
            map.reserveCapacity(labels.count)
            for (position, label) in labels.enumerated() {
                // Like a protobuf map, a repeated key keeps the last value.
                map[try BatchReader.tableText(label.key, "\(name).labels[\(position)].key")] =
                    try BatchReader.tableText(label.value, "\(name).labels[\(position)].value")
            }
            ref.labels = map
        }
        ref.ownerKind = try BatchReader.tableText(ownerKind, "\(name).owner_kind")
        ref.ownerName = try BatchReader.tableText(ownerName, "\(name).owner_name")
        ref.runningAtSensorStart = running
    }
}

// MARK: - Repeated strings

/// Strings repeat within a batch (argv entries, addresses, container fields written inline): a small open-addressed
/// table keyed by the bytes hands back the Swift string made the first time, saving an allocation and a UTF-8 check.
/// Used by both readers (`BatchReader` over the input bytes, `EventReader` over protobuf-c's unpacked strings). It
/// points into what it was given, so it lives only as long as one decode call. Strings of up to 15 bytes are stored
/// inline by Swift, cost no allocation, and skip the table.
struct TextCache: ~Copyable {
    private let entries: UnsafeMutablePointer<Entry>
    private let mask: Int

    private struct Entry {
        var key: UInt64 = 0
        var bytes: UnsafePointer<UInt8>? = nil
        var length = 0
        var text = ""
    }

    init(expectedStrings: Int) {
        var capacity = 16
        while capacity < expectedStrings * 2 && capacity < 8192 { capacity <<= 1 }
        mask = capacity - 1
        entries = .allocate(capacity: capacity)
        entries.initialize(repeating: Entry(), count: capacity)
    }

    deinit {
        entries.deinitialize(count: mask + 1)
        entries.deallocate()
    }

    /// The string of `span`'s bytes (non-empty, NUL already cut), or nil when they are not valid UTF-8.
    @inline(__always)
    func text(_ span: WireSpan) -> String? {
        let length = span.count
        let pointer = span.base!
        if length <= 15 { return CText.string(span) }
        let raw = UnsafeRawPointer(pointer)
        let first = raw.loadUnaligned(as: UInt64.self)
        let middle = raw.loadUnaligned(fromByteOffset: length / 2 - 4, as: UInt64.self)
        let last = raw.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self)
        var key = (first &* 0x9E37_79B9_7F4A_7C15) ^ (middle &* 0xC2B2_AE3D_27D4_EB4F) ^ (last &* 0x1656_67B1_9E37_79F9)
        key ^= UInt64(truncatingIfNeeded: length) ^ (key >> 29)
        let home = Int(truncatingIfNeeded: key >> 7) & mask
        var target = home
        var probe = home
        for _ in 0..<4 {
            let entry = entries + probe
            guard let bytes = entry.pointee.bytes else {
                target = probe
                break
            }
            if entry.pointee.key == key, entry.pointee.length == length, memcmp(bytes, pointer, length) == 0 {
                return entry.pointee.text
            }
            probe = (probe + 1) & mask
        }
        guard let value = CText.string(span) else { return nil }
        (entries + target).pointee = Entry(key: key, bytes: pointer, length: length, text: value)
        return value
    }
}
