import EventModel

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes the protobuf encoding of an `Event` (and an inline `ContainerRef`) straight from the Swift value into a
/// `PackBuffer`, for `encode(_: EventBatch)`.
///
/// Why not protobuf-c: packing an event through protobuf-c meant copying every string into C structs first, then a
/// descriptor-driven walk that sizes each nested message (`Process`, the payload) before writing it; together
/// that was most of the encoder's time. Here each field is written once, and a nested message gets a one-byte
/// length that is widened afterwards (its body moved up) when it turns out to be 128 bytes or more.
///
/// The bytes are exactly what `protobuf_c_message_pack` writes for the same message (fields in number order, proto3
/// zero values and empty strings left out, negative int32 as ten-byte varints, `SyscallSet.syscalls` packed, a
/// string cut at its first NUL as protobuf-c's C strings are); `EventWriterTests` compares the two for every kind.
/// `WireCodec.encode(_: Event)` still packs with protobuf-c and is the reference.
extension PackBuffer {
    /// One `Event`. `containerIndex` non-zero: the batch's table entry instead of an inline container. String
    /// table references are taken in the same order as before (node, comm, exe, cwd, then the payload's path), so
    /// the table and the bytes are unchanged.
    @inline(__always)
    mutating func writeEvent(
        _ event: UnsafePointer<Event>, containerIndex: UInt32, strings: inout StringTable
    ) {
        uint64(field: 1, event.pointee.time)
        let nodeRef = strings.ref(event.pointee.node)
        if nodeRef == 0 { text(field: 2, event.pointee.node) }

        let process = beginMessage(field: 3)
        int32(field: 1, event.pointee.process.pid)
        int32(field: 2, event.pointee.process.ppid)
        int32(field: 3, event.pointee.process.tid)
        uint32(field: 4, event.pointee.process.uid)
        uint32(field: 5, event.pointee.process.gid)
        let commRef = strings.ref(event.pointee.process.comm)
        let exeRef = strings.ref(event.pointee.process.exe)
        let cwdRef = strings.ref(event.pointee.process.cwd)
        if commRef == 0 { text(field: 6, event.pointee.process.comm) }
        if exeRef == 0 { text(field: 7, event.pointee.process.exe) }
        if cwdRef == 0 { text(field: 8, event.pointee.process.cwd) }
        uint64(field: 9, event.pointee.process.mountNamespace)
        uint32(field: 10, commRef)
        uint32(field: 11, exeRef)
        uint32(field: 12, cwdRef)
        endMessage(process)

        if containerIndex == 0, event.pointee.container != nil {
            let container = beginMessage(field: 4)
            writeContainer(event.pointee.container!)
            endMessage(container)
        }
        uint32(field: 5, event.pointee.count)
        uint32(field: 6, containerIndex)
        writePayload(event, strings: &strings)
        uint32(field: 26, nodeRef)
    }

    /// The payload oneof: the case's message is always written, even when all its fields are zero.
    @inline(__always)
    private mutating func writePayload(_ event: UnsafePointer<Event>, strings: inout StringTable) {
        switch event.pointee.payload {
        case .exec(let exec):
            let start = beginMessage(field: 10)
            let pathRef = strings.ref(exec.path)
            if pathRef == 0 { text(field: 1, exec.path) }
            texts(field: 2, exec.argv)
            texts(field: 3, exec.env)
            bool(field: 4, exec.upperLayer)
            uint32(field: 5, pathRef)
            bool(field: 6, exec.fromVolume)
            bool(field: 7, exec.stdioSocket)
            endMessage(start)
        case .exit(let exit):
            let start = beginMessage(field: 11)
            int32(field: 1, exit.code)
            int32(field: 2, exit.signal)
            endMessage(start)
        case .open(let open):
            let start = beginMessage(field: 12)
            let pathRef = strings.ref(open.path)
            if pathRef == 0 { text(field: 1, open.path) }
            uint32(field: 2, open.flags)
            int32(field: 3, open.result)
            uint32(field: 4, pathRef)
            bool(field: 5, open.fromVolume)
            endMessage(start)
        case .connect(let flow):
            writeFlow(field: 13, flow)
        case .accept(let flow):
            writeFlow(field: 14, flow)
        case .dns(let dns):
            let start = beginMessage(field: 15)
            text(field: 1, dns.name)
            uint32(field: 2, UInt32(dns.queryType))
            texts(field: 3, dns.answers)
            endMessage(start)
        case .syscalls(let set):
            let start = beginMessage(field: 16)
            if !set.syscalls.isEmpty {
                let packed = beginMessage(field: 1)
                for number in set.syscalls { varint(UInt64(number)) }
                endMessage(packed)
            }
            endMessage(start)
        case .capability(let use):
            let start = beginMessage(field: 17)
            uint32(field: 1, use.capability)
            uint32(field: 2, use.syscall)
            bool(field: 3, use.granted)
            endMessage(start)
        case .moduleLoad(let load):
            let start = beginMessage(field: 18)
            text(field: 1, load.syscall)
            text(field: 2, load.name)
            endMessage(start)
        case .ptrace(let attach):
            let start = beginMessage(field: 19)
            int32(field: 1, attach.request)
            int32(field: 2, attach.targetPid)
            endMessage(start)
        case .namespaceChange(let change):
            let start = beginMessage(field: 20)
            text(field: 1, change.syscall)
            uint64(field: 2, change.flags)
            text(field: 3, change.source)
            text(field: 4, change.target)
            text(field: 5, change.fsType)
            endMessage(start)
        case .memfd(let memfd):
            let start = beginMessage(field: 21)
            text(field: 1, memfd.name)
            uint32(field: 2, memfd.flags)
            endMessage(start)
        case .link(let link):
            let start = beginMessage(field: 22)
            text(field: 1, link.target)
            text(field: 2, link.linkPath)
            bool(field: 3, link.symbolic)
            endMessage(start)
        case .bpf(let call):
            let start = beginMessage(field: 23)
            int32(field: 1, call.command)
            endMessage(start)
        case .scanResult(let scan):
            let start = beginMessage(field: 24)
            text(field: 1, scan.scanID)
            text(field: 2, scan.path)
            text(field: 3, scan.signature)
            text(field: 4, scan.sha256)
            uint64(field: 5, scan.sizeBytes)
            bool(field: 6, scan.partOfImage)
            endMessage(start)
        case .audit(let record):
            let start = beginMessage(field: 25)
            text(field: 1, JSONText.serialize(record.document))
            text(field: 2, record.sourceID)
            endMessage(start)
        }
    }

    @inline(__always)
    private mutating func writeFlow(field: UInt32, _ flow: NetworkFlow) {
        let start = beginMessage(field: field)
        uint32(field: 1, WireEnums.number(flow.family))
        uint32(field: 2, WireEnums.number(flow.proto))
        text(field: 3, flow.localAddress)
        uint32(field: 4, UInt32(flow.localPort))
        text(field: 5, flow.remoteAddress)
        uint32(field: 6, UInt32(flow.remotePort))
        int32(field: 7, flow.result)
        endMessage(start)
    }

    /// A `ContainerRef`'s fields (the caller writes its tag and length). Labels go in key order, so equal label
    /// sets give equal bytes.
    mutating func writeContainer(_ ref: ContainerRef) {
        text(field: 1, ref.runtime)
        text(field: 2, ref.containerID)
        text(field: 3, ref.podUID)
        text(field: 4, ref.podName)
        text(field: 5, ref.namespace)
        text(field: 6, ref.containerName)
        text(field: 7, ref.image)
        if !ref.labels.isEmpty {
            for label in ref.labels.sorted(by: { $0.key < $1.key }) {
                let entry = beginMessage(field: 8)
                text(field: 1, label.key)
                text(field: 2, label.value)
                endMessage(entry)
            }
        }
        text(field: 9, ref.ownerKind)
        text(field: 10, ref.ownerName)
        bool(field: 11, ref.runningAtSensorStart)
    }

    // MARK: Fields

    @inline(__always)
    mutating func tag(field: UInt32, wireType: UInt32) {
        let key = field << 3 | wireType
        if key < 0x80 { byte(UInt8(key)) } else { varint(UInt64(key)) }
    }

    /// uint64 (and uint32) fields; proto3 leaves zero out.
    @inline(__always)
    mutating func uint64(field: UInt32, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field: field, wireType: 0)
        varint(value)
    }

    @inline(__always)
    mutating func uint32(field: UInt32, _ value: UInt32) { uint64(field: field, UInt64(value)) }

    /// int32 fields: a negative value is sign-extended to ten bytes, as protobuf requires.
    @inline(__always)
    mutating func int32(field: UInt32, _ value: Int32) {
        uint64(field: field, UInt64(bitPattern: Int64(value)))
    }

    @inline(__always)
    mutating func bool(field: UInt32, _ value: Bool) {
        guard value else { return }
        tag(field: field, wireType: 0)
        byte(1)
    }

    /// A string field; empty is left out (proto3).
    @inline(__always)
    mutating func text(field: UInt32, _ value: String) {
        if value.isEmpty { return }
        writeText(field: field, value, keepEmpty: false)
    }

    /// A repeated string field: every entry is written, empty ones too.
    @inline(__always)
    mutating func texts(field: UInt32, _ values: [String]) {
        for value in values { writeText(field: field, value, keepEmpty: true) }
    }

    /// Tag, length and bytes of `value`, cut at its first NUL like protobuf-c's C strings (a cut to nothing is left
    /// out unless `keepEmpty`).
    @inline(__always)
    private mutating func writeText(field: UInt32, _ value: String, keepEmpty: Bool) {
        let full = value.utf8.count
        var length = full
        if full > 0 {
            let cut: Int? = value.utf8.withContiguousStorageIfAvailable { bytes in
                guard let nul = memchr(bytes.baseAddress!, 0, full) else { return full }
                return UnsafeRawPointer(bytes.baseAddress!).distance(to: UnsafeRawPointer(nul))
            }
            length = cut ?? Array(value.utf8).firstIndex(of: 0) ?? full
        }
        guard length > 0 || keepEmpty else { return }
        tag(field: field, wireType: 2)
        varint(UInt64(length))
        if length > 0 { appendUTF8(value, count: length) }
    }

    /// Starts a length-delimited field whose body follows: writes the tag and one byte for the length, and returns
    /// where the body starts, for `endMessage`.
    @inline(__always)
    mutating func beginMessage(field: UInt32) -> Int {
        tag(field: field, wireType: 2)
        byte(0)
        return written
    }

    /// Ends the field begun at `start`: stores the body's length, moving the body up when it needs more than one
    /// length byte (bodies of 128 bytes or more).
    @inline(__always)
    mutating func endMessage(_ start: Int) {
        let size = written - start
        if size < 0x80 {
            patch(at: start - 1, UInt8(size))
        } else {
            widenLength(start, size)
        }
    }
}

extension WireCodec {
    /// A lone event written by `PackBuffer` rather than protobuf-c (container inline, no string table), for tests
    /// that compare it with `encode(_: Event)`.
    static func writtenEvent(_ event: Event) -> [UInt8] {
        var output = PackBuffer(capacity: 256)
        var strings = StringTable(enabled: false)
        withUnsafePointer(to: event) { output.writeEvent($0, containerIndex: 0, strings: &strings) }
        return output.bytes()
    }
}
