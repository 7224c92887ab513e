internal import CProtobufC
internal import CWireProto
import EventModel

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension WireCodec {
    /// Encodes a batch. Every field is written here, by `PackBuffer` (`EventWriting.swift` for events and
    /// containers); the bytes are a plain `EventBatch` encoding, field for field what protobuf-c would write.
    ///
    /// Why not protobuf-c: packing the whole batch in one call made protobuf-c size every nested message once per
    /// level above it (an event's fields were walked three times, its `Process` four); packing event by event
    /// still copied every string into C structs first and sized `Process` and the payload before writing them.
    /// Written directly, each field is read from the Swift value once.
    public static func encode(_ value: EventBatch) -> [UInt8] {
        let count = value.events.count
        var output = PackBuffer(capacity: 256 + count * 96)
        output.string(field: 1, value.sensorID)
        output.string(field: 2, value.bootID)
        if value.sequence != 0 {
            output.byte(0x18)
            output.varint(value.sequence)
        }
        if value.compressed {
            output.byte(0x20)
            output.byte(1)
        }
        var containers = ContainerTable()
        var strings = StringTable(enabled: true)
        value.events.withUnsafeBufferPointer { events in
            for index in 0..<count {
                let event = events.baseAddress! + index
                let containerIndex = containers.index(of: event)
                let start = output.beginMessage(field: 5)
                output.writeEvent(event, containerIndex: containerIndex, strings: &strings)
                output.endMessage(start)
            }
        }
        for ref in containers.refs {
            let start = output.beginMessage(field: 6)
            output.writeContainer(ref)
            output.endMessage(start)
        }
        for text in strings.strings {
            output.string(field: 7, text, keepEmpty: true)
        }
        return output.bytes()
    }
}

/// The growing output of `encode(_: EventBatch)`, in C memory: protobuf-c packs into it directly.
struct PackBuffer: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = malloc(self.capacity)!.assumingMemoryBound(to: UInt8.self)
    }

    deinit {
        free(base)
    }

    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private mutating func grow(_ needed: Int) {
        var size = capacity * 2
        while size < needed { size *= 2 }
        base = realloc(base, size)!.assumingMemoryBound(to: UInt8.self)
        capacity = size
    }

    @inline(__always)
    mutating func byte(_ value: UInt8) {
        reserve(1)
        base[count] = value
        count += 1
    }

    @inline(__always)
    mutating func varint(_ value: UInt64) {
        reserve(10)
        var value = value
        while value >= 0x80 {
            base[count] = UInt8(truncatingIfNeeded: value) | 0x80
            count += 1
            value >>= 7
        }
        base[count] = UInt8(value)
        count += 1
    }

    /// A length-delimited string field; an empty one is left out (proto3) unless `keepEmpty` (a repeated entry).
    mutating func string(field: UInt8, _ text: String, keepEmpty: Bool = false) {
        let length = text.utf8.count
        guard length > 0 || keepEmpty else { return }
        byte(field << 3 | 2)
        varint(UInt64(length))
        reserve(length)
        let destination = base + count
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { buffer in
            destination.update(from: buffer.baseAddress!, count: length)
        }
        if copied == nil {
            var offset = 0
            for unit in text.utf8 {
                destination[offset] = unit
                offset += 1
            }
        }
        count += length
    }

    /// Bytes written so far.
    var written: Int { count }

    /// Overwrites one byte already written (a one-byte length placeholder).
    @inline(__always)
    mutating func patch(at offset: Int, _ value: UInt8) {
        base[offset] = value
    }

    /// Stores the length of the body written since `start` when it needs more than the one byte reserved before
    /// it: the body moves up to make room.
    mutating func widenLength(_ start: Int, _ size: Int) {
        var lengthBytes = 1
        var rest = size >> 7
        while rest > 0 {
            lengthBytes += 1
            rest >>= 7
        }
        reserve(lengthBytes - 1)
        memmove(base + start - 1 + lengthBytes, base + start, size)
        count = start - 1
        varint(UInt64(size))
        count += size
    }

    /// `length` raw bytes.
    @inline(__always)
    mutating func append(_ bytes: UnsafePointer<UInt8>, count length: Int) {
        reserve(length)
        (base + count).update(from: bytes, count: length)
        count += length
    }

    /// The first `length` UTF-8 bytes of `text`.
    @inline(__always)
    mutating func appendUTF8(_ text: String, count length: Int) {
        reserve(length)
        let destination = base + count
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { buffer in
            destination.update(from: buffer.baseAddress!, count: length)
        }
        if copied == nil {
            for (offset, unit) in text.utf8.prefix(length).enumerated() { destination[offset] = unit }
        }
        count += length
    }

    /// An exactly sized copy of what was written.
    func bytes() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { buffer.baseAddress!.initialize(from: base, count: count) }
            initialized = count
        }
    }
}

/// The encoder's side of `EventBatch.containers`: each distinct container once, with its 1-based index.
///
/// Events of one pod share their `ContainerRef`'s storage, so the common case is answered by the storage's
/// identity: a scan of the identities seen so far (a handful per batch), no retain, release or string comparison
/// per event. A storage not seen yet is compared by value with the table (a scan, or a dictionary for many), so
/// equal containers in separate storages still share one entry, and then remembered. Every remembered identity
/// belongs to a batch event, alive for the whole encode call, so no identity is reused for another value meanwhile.
struct ContainerTable: ~Copyable {
    private(set) var refs: [ContainerRef] = []
    private var indexByID: [String: UInt32] = [:]
    /// Storage identities seen, and the table index each stands for (parallel arrays, scanned).
    private var identities: [ObjectIdentifier] = []
    private var identityIndexes: [UInt32] = []
    /// Beyond `maxScanned` identities, a dictionary.
    private var indexByIdentity: [ObjectIdentifier: UInt32] = [:]

    private static let maxScanned = 32

    init() {}

    /// The 1-based table index of the event's container, added on first sight; 0 for an event on the host.
    @inline(__always)
    mutating func index(of event: UnsafePointer<Event>) -> UInt32 {
        guard let identity = event.pointee.container?.storageIdentity else { return 0 }
        for slot in 0..<identities.count where identities[slot] == identity { return identityIndexes[slot] }
        if let known = indexByIdentity[identity] { return known }
        return slowIndex(event, identity)
    }

    private mutating func slowIndex(_ event: UnsafePointer<Event>, _ identity: ObjectIdentifier) -> UInt32 {
        let ref = event.pointee.container!
        var index: UInt32 = 0
        if refs.count <= 16 {
            for known in 0..<refs.count where refs[known] == ref {
                index = UInt32(known + 1)
                break
            }
        } else if let known = indexByID[ref.containerID], refs[Int(known) - 1] == ref {
            index = known
        }
        if index == 0 {
            refs.append(ref)
            index = UInt32(refs.count)
            if refs.count > 16 {
                if indexByID.isEmpty {
                    for (position, known) in refs.enumerated() where indexByID[known.containerID] == nil {
                        indexByID[known.containerID] = UInt32(position + 1)
                    }
                }
                if indexByID[ref.containerID] == nil { indexByID[ref.containerID] = index }
            }
        }
        if identities.count < Self.maxScanned {
            identities.append(identity)
            identityIndexes.append(index)
        } else {
            indexByIdentity[identity] = index
        }
        return index
    }
}
