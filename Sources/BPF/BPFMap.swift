internal import CLibBPF
import Foundation

/// A map of a loaded `BPFObject`, accessed by raw key and value bytes (filter maps, counters).
///
/// Keeps its object alive. For per-CPU maps a value is `valueSize * possibleCPUs` bytes.
public final class BPFMap: @unchecked Sendable {
    // `handle` belongs to `owner`; every use goes through `owner.withObject`, which also guards against close().
    private let owner: BPFObject
    private let handle: OpaquePointer
    public let name: String
    public let keySize: Int
    /// Size of one value as declared (per CPU for per-CPU maps).
    public let valueSize: Int
    public let maxEntries: Int
    /// Bytes a lookup or update value must have (valueSize, times possible CPUs for per-CPU maps).
    public let fullValueSize: Int

    init(owner: BPFObject, handle: OpaquePointer, name: String) {
        self.owner = owner
        self.handle = handle
        self.name = name
        self.keySize = Int(bpf_map__key_size(handle))
        self.valueSize = Int(bpf_map__value_size(handle))
        self.maxEntries = Int(bpf_map__max_entries(handle))
        switch bpf_map__type(handle) {
        case BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH,
            BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
            let cpus = Int(libbpf_num_possible_cpus())
            self.fullValueSize = ((valueSize + 7) / 8) * 8 * max(cpus, 1)
        default:
            self.fullValueSize = valueSize
        }
    }

    /// How an update treats an existing or missing key.
    public enum UpdateMode: Sendable {
        case any, onlyIfAbsent, onlyIfPresent
        var flags: UInt64 {
            switch self {
            case .any: UInt64(BPF_ANY)
            case .onlyIfAbsent: UInt64(BPF_NOEXIST)
            case .onlyIfPresent: UInt64(BPF_EXIST)
            }
        }
    }

    /// Inserts or replaces `key` → `value`.
    public func update(key: [UInt8], value: [UInt8], mode: UpdateMode = .any) throws(BPFError) {
        try checkSizes(key: key, value: value)
        let rc = owner.withObject { _ in
            key.withUnsafeBytes { k in
                value.withUnsafeBytes { v in
                    bpf_map__update_elem(handle, k.baseAddress, k.count, v.baseAddress, v.count, mode.flags)
                }
            }
        }
        if rc != 0 {
            throw BPFError(.map, "cannot update map \(name) of \(owner.name)", cause: LibBPFLog.cause(rc))
        }
    }

    /// The value for `key`, or nil when the key is absent.
    public func lookup(key: [UInt8]) throws(BPFError) -> [UInt8]? {
        try checkSizes(key: key, value: nil)
        var value = [UInt8](repeating: 0, count: fullValueSize)
        let rc = owner.withObject { _ in
            key.withUnsafeBytes { k in
                value.withUnsafeMutableBytes { v in
                    bpf_map__lookup_elem(handle, k.baseAddress, k.count, v.baseAddress, v.count, 0)
                }
            }
        }
        if rc == -ENOENT { return nil }
        if rc != 0 {
            throw BPFError(.map, "cannot look up in map \(name) of \(owner.name)", cause: LibBPFLog.cause(rc))
        }
        return value
    }

    /// Removes `key`; returns false when it was absent.
    @discardableResult
    public func delete(key: [UInt8]) throws(BPFError) -> Bool {
        try checkSizes(key: key, value: nil)
        let rc = owner.withObject { _ in
            key.withUnsafeBytes { k in bpf_map__delete_elem(handle, k.baseAddress, k.count, 0) }
        }
        if rc == -ENOENT { return false }
        if rc != 0 {
            throw BPFError(.map, "cannot delete from map \(name) of \(owner.name)", cause: LibBPFLog.cause(rc))
        }
        return true
    }

    /// Every key currently in the map (`bpf_map__get_next_key`), for hash maps user space sweeps.
    /// Keys added or removed while iterating may or may not be seen.
    public func keys(limit: Int = .max) throws(BPFError) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var current: [UInt8]? = nil
        var next = [UInt8](repeating: 0, count: keySize)
        while result.count < limit {
            let rc = owner.withObject { _ in
                next.withUnsafeMutableBytes { n in
                    if let current {
                        return current.withUnsafeBytes { c in
                            bpf_map__get_next_key(handle, c.baseAddress, n.baseAddress, n.count)
                        }
                    }
                    return bpf_map__get_next_key(handle, nil, n.baseAddress, n.count)
                }
            }
            if rc == -ENOENT { break }
            if rc != 0 {
                throw BPFError(.map, "cannot iterate map \(name) of \(owner.name)", cause: LibBPFLog.cause(rc))
            }
            result.append(next)
            current = next
        }
        return result
    }

    /// The map's file descriptor (valid while the object is open); for ring buffers and pinning.
    var fileDescriptor: Int32 { owner.withObject { _ in bpf_map__fd(handle) } }

    var isRingBuffer: Bool { bpf_map__type(handle) == BPF_MAP_TYPE_RINGBUF }

    private func checkSizes(key: [UInt8], value: [UInt8]?) throws(BPFError) {
        guard key.count == keySize else {
            throw BPFError(.invalidArgument, "map \(name) key must be \(keySize) bytes, got \(key.count)")
        }
        if let value, value.count != fullValueSize {
            throw BPFError(.invalidArgument, "map \(name) value must be \(fullValueSize) bytes, got \(value.count)")
        }
    }
}

extension BPFMap {
    /// Little-endian bytes of a fixed-width integer, for keys and values.
    public static func bytes<T: FixedWidthInteger>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    /// A NUL-padded fixed-size C string key (e.g. a `char comm[16]` key).
    public static func bytes(ofString string: String, size: Int) -> [UInt8] {
        var bytes = Array(string.utf8.prefix(size - 1))
        bytes += [UInt8](repeating: 0, count: size - bytes.count)
        return bytes
    }
}
