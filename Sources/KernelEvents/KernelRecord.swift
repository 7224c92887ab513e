public import EventModel

/// One decoded ring-buffer record: the event (container nil, node empty: the caller fills both) and the
/// cgroup id the kernel saw, which the container resolver maps to a container.
public struct KernelRecord: Sendable, Hashable {
    public var cgroupID: UInt64
    public var event: Event

    public init(cgroupID: UInt64, event: Event) {
        self.cgroupID = cgroupID
        self.event = event
    }
}

/// The record kinds of bpf/include/sensor_abi.h (`enum patrol_record_kind`), by their fixed numbers.
public enum KernelRecordKind: UInt16, Sendable, Hashable, CaseIterable {
    case exec = 1
    case exit = 2
    case open = 3
    case connect = 4
    case accept = 5
    case dns = 6
    case capability = 7
    case module = 8
    case namespace = 9
    case ptrace = 10
    case memfd = 11
    case link = 12
    case bpf = 13
    /// Never a ring-buffer record: the per-cgroup syscall bitmaps. Its enable bit switches them on.
    case syscalls = 14

    /// The event kind records of this kind decode to.
    public var eventKind: EventKind {
        switch self {
        case .exec: .exec
        case .exit: .exit
        case .open: .open
        case .connect: .connect
        case .accept: .accept
        case .dns: .dns
        case .capability: .capability
        case .module: .moduleLoad
        case .namespace: .namespaceChange
        case .ptrace: .ptrace
        case .memfd: .memfd
        case .link: .link
        case .bpf: .bpf
        case .syscalls: .syscalls
        }
    }

    /// The kernel kinds that produce events of `kind` (empty for kinds no hook produces).
    public static func kinds(for kind: EventKind) -> [KernelRecordKind] {
        allCases.filter { $0.eventKind == kind }
    }

    /// A label for metrics and logs.
    public var name: String { eventKind.rawValue }
}
