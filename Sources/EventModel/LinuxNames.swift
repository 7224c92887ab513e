/// Names for the numbers the kernel reports: syscalls, capabilities and `open(2)` flags (x86_64).
///
/// Profiles, rules and alerts show names, as seccomp profiles and KubeCop's ApplicationProfile do, so that a
/// person can read and edit them; the sensor sends numbers because they are smaller and cheaper to compare.
public enum LinuxNames {
    /// The syscall's name, or `syscall_<n>` for a number this kernel header does not know.
    public static func syscall(_ number: UInt32) -> String {
        let index = Int(number)
        if index < x86_64SyscallNames.count, !x86_64SyscallNames[index].isEmpty { return x86_64SyscallNames[index] }
        return "syscall_\(number)"
    }

    /// The number for a syscall name (also accepts `syscall_<n>`).
    public static func syscallNumber(_ name: String) -> UInt32? {
        if let number = syscallNumbers[name] { return number }
        if name.hasPrefix("syscall_"), let number = UInt32(name.dropFirst("syscall_".count)) { return number }
        return nil
    }

    private static let syscallNumbers: [String: UInt32] = {
        var numbers: [String: UInt32] = [:]
        for (index, name) in x86_64SyscallNames.enumerated() where !name.isEmpty { numbers[name] = UInt32(index) }
        return numbers
    }()

    /// Capability names indexed by number (linux/capability.h).
    public static let capabilities: [String] = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    /// The capability's name, or `CAP_<n>` for a number newer than this table.
    public static func capability(_ number: UInt32) -> String {
        Int(number) < capabilities.count ? capabilities[Int(number)] : "CAP_\(number)"
    }

    /// `open(2)` flag bits (x86_64 values from asm-generic/fcntl.h), in the order names are listed.
    /// Composite flags (O_SYNC includes O_DSYNC, O_TMPFILE includes O_DIRECTORY) are listed by their own bit.
    private static let openFlagBits: [(name: String, bits: UInt32)] = [
        ("O_CREAT", 0o100), ("O_EXCL", 0o200), ("O_NOCTTY", 0o400), ("O_TRUNC", 0o1000), ("O_APPEND", 0o2000),
        ("O_NONBLOCK", 0o4000), ("O_DSYNC", 0o10000), ("O_ASYNC", 0o20000), ("O_DIRECT", 0o40000),
        ("O_LARGEFILE", 0o100000), ("O_DIRECTORY", 0o200000), ("O_NOFOLLOW", 0o400000), ("O_NOATIME", 0o1000000),
        ("O_CLOEXEC", 0o2000000), ("O_SYNC", 0o4000000), ("O_PATH", 0o10000000), ("O_TMPFILE", 0o20000000),
    ]

    /// The names of the flags set in `flags`: the access mode first (`O_RDONLY`, `O_WRONLY` or `O_RDWR`),
    /// then each other bit set, like KubeCop's profiles list them.
    public static func openFlags(_ flags: UInt32) -> [String] {
        var names: [String]
        switch flags & 0o3 {
        case 0: names = ["O_RDONLY"]
        case 1: names = ["O_WRONLY"]
        default: names = ["O_RDWR"]
        }
        for flag in openFlagBits where flags & flag.bits == flag.bits { names.append(flag.name) }
        return names
    }

    /// The bits for a list of flag names, or the first name that is not an `open(2)` flag.
    public static func openFlagsValue(_ names: [String]) -> Result<UInt32, UnknownName> {
        var value: UInt32 = 0
        for name in names {
            switch name {
            case "O_RDONLY": continue
            case "O_WRONLY": value |= 1
            case "O_RDWR": value |= 2
            default:
                guard let bits = openFlagBits.first(where: { $0.name == name })?.bits else {
                    return .failure(UnknownName(name: name))
                }
                value |= bits
            }
        }
        return .success(value)
    }

    /// A name these tables do not know.
    public struct UnknownName: Error, Sendable, Equatable { public let name: String }
}
