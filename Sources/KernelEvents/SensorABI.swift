internal import CSensorABI

/// What user space needs of the sensor ABI besides decoding: the embedded object, map value layouts, limits.
public enum SensorABI {
    /// `PATROL_ABI_VERSION`: every record carries it.
    public static var version: UInt16 { UInt16(PATROL_ABI_VERSION) }
    /// Syscall numbers covered by the per-cgroup bitmaps (`PATROL_SYSCALL_BITS`).
    public static var syscallBits: Int { Int(PATROL_SYSCALL_BITS) }
    /// Entries of the per-CPU `drops` map (`PATROL_RECORD_KIND_MAX`), indexed by kind.
    public static var kindSlots: Int { Int(PATROL_RECORD_KIND_MAX.rawValue) }

    /// The ELF bytes of bpf/build/sensor.bpf.o embedded in this binary (see `make sensor-embed`).
    public static func embeddedObject() -> [UInt8] {
        var size = 0
        guard let pointer = patrol_sensor_object(&size), size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: pointer, count: size))
    }

    /// Map names in sensor.bpf.c.
    public enum MapName {
        public static let events = "events"
        public static let config = "sensor_config"
        public static let ignoredCgroups = "ignored_cgroups"
        public static let drops = "drops"
        public static let syscallSets = "syscall_sets"
    }

    /// The value of map `sensor_config` (`struct patrol_config`), little endian.
    public static func configValue(enabled: Set<KernelRecordKind>, ignoreTgid: UInt32) -> [UInt8] {
        var config = patrol_config()
        config.enabled_kinds = enabled.reduce(0) { $0 | (1 << UInt32($1.rawValue)) }
        config.ignore_tgid = ignoreTgid
        return withUnsafeBytes(of: &config) { Array($0) }
    }

    /// The syscall numbers set in a `struct patrol_syscall_bitmap` value.
    public static func syscalls(inBitmap bytes: [UInt8]) -> [UInt32] {
        var result: [UInt32] = []
        for (index, byte) in bytes.prefix(syscallBits / 8).enumerated() where byte != 0 {
            for bit in 0..<8 where byte & (1 << bit) != 0 { result.append(UInt32(index * 8 + bit)) }
        }
        return result
    }
}
