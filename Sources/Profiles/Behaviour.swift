import EventModel

/// A network peer as a profile records it. Outgoing: the remote address and port connected to.
/// Incoming: the local port accepted on (the remote address is left empty, because clients come and go).
public struct Endpoint: Sendable, Hashable, Comparable, Codable {
    public var proto: TransportProtocol
    public var address: String
    public var port: UInt16

    public init(proto: TransportProtocol, address: String, port: UInt16) {
        self.proto = proto
        self.address = address
        self.port = port
    }

    public static func < (a: Endpoint, b: Endpoint) -> Bool {
        (a.proto.rawValue, a.address, a.port) < (b.proto.rawValue, b.address, b.port)
    }
}

/// What one container of a workload was seen doing while its profile learned.
///
/// Sets are kept in the kernel's terms (syscall and capability numbers, flag bits) so the check on every event
/// is a hash lookup; names appear only on import and export.
public struct Behaviour: Sendable, Hashable, Codable {
    /// Executable path to the argument vectors it ran with (argv[0] included, as KubeCop recorded them).
    public var execs: [String: Set<[String]>] = [:]
    /// File path to the union of the open flags it was opened with (`OpenMask`).
    public var opens: [String: UInt32] = [:]
    public var syscalls: Set<UInt32> = []
    /// `syscall << 32 | capability` pairs.
    public var capabilities: Set<UInt64> = []
    /// Normalised DNS name (lower case, no trailing dot) to the addresses it resolved to.
    public var dns: [String: Set<String>] = [:]
    public var outgoing: Set<Endpoint> = []
    public var incoming: Set<Endpoint> = []

    public init() {}

    /// How many entries of each limited kind the behaviour holds.
    public var counts: Counts {
        Counts(
            execs: execs.values.reduce(0) { $0 + $1.count }, opens: opens.count, dns: dns.count,
            endpoints: outgoing.count + incoming.count)
    }

    /// The counts once `item`, which the behaviour does not hold yet, is added.
    func counts(adding item: ProfileItem) -> Counts {
        var result = counts
        switch item {
        case .exec: result.execs += 1
        case .open(let path, _): if opens[path] == nil { result.opens += 1 }
        case .dns: result.dns += 1
        case .outgoing, .incoming: result.endpoints += 1
        case .syscall, .capability: break  // bounded by the kernel's tables
        }
        return result
    }

    public struct Counts: Sendable, Hashable {
        public var execs: Int
        public var opens: Int
        public var dns: Int
        public var endpoints: Int
    }

    /// Whether the behaviour holds `item`. Exec arguments count only when `compareArgs` is set.
    /// A method on the behaviour (not on the item) so the registry's check reads the profile in place
    /// instead of copying it, which costs a retain per set on every event.
    public func allows(_ item: ProfileItem, compareArgs: Bool) -> Bool {
        switch item {
        case .exec(let path, let argv):
            guard let known = execs[path] else { return false }
            return !compareArgs || known.contains(argv)
        case .open(let path, let flags):
            guard let known = opens[path] else { return false }
            return OpenMask.isSubset(OpenMask.of(flags), of: known)
        case .syscall(let number): return syscalls.contains(number)
        case .capability(let syscall, let capability):
            return capabilities.contains(UInt64(syscall) << 32 | UInt64(capability))
        case .dns(let name): return dns[name] != nil
        case .outgoing(let endpoint): return outgoing.contains(endpoint)
        case .incoming(let endpoint): return incoming.contains(endpoint)
        }
    }

    /// Adds everything `other` holds.
    public mutating func merge(_ other: Behaviour) {
        for (path, argvs) in other.execs { execs[path, default: []].formUnion(argvs) }
        for (path, mask) in other.opens { opens[path, default: 0] |= mask }
        syscalls.formUnion(other.syscalls)
        capabilities.formUnion(other.capabilities)
        for (name, addresses) in other.dns { dns[name, default: []].formUnion(addresses) }
        outgoing.formUnion(other.outgoing)
        incoming.formUnion(other.incoming)
    }
}

/// Open flags as a mask in which `O_RDONLY` has a bit of its own, so that "the event's flags are a subset of
/// the profile's" also holds for the access mode: a file only ever read does not allow a write, and a file
/// only ever written does not allow a read.
public enum OpenMask {
    static let readOnlyBit: UInt32 = 1 << 31

    public static func of(_ flags: UInt32) -> UInt32 {
        flags & 0o3 == 0 ? flags | readOnlyBit : flags
    }

    /// The kernel flags a mask stands for, for names on export.
    public static func flagNames(_ mask: UInt32) -> [String] {
        // Each access mode is listed on its own: a union of O_WRONLY and O_RDWR opens must survive a round trip.
        var names: [String] = []
        if mask & readOnlyBit != 0 { names.append("O_RDONLY") }
        if mask & 0o1 != 0 { names.append("O_WRONLY") }
        if mask & 0o2 != 0 { names.append("O_RDWR") }
        names += LinuxNames.openFlags(mask & ~readOnlyBit & ~0o3).dropFirst()  // dropFirst: its O_RDONLY
        return names
    }

    /// The mask for flag names as a profile lists them.
    public static func of(names: [String]) -> Result<UInt32, LinuxNames.UnknownName> {
        LinuxNames.openFlagsValue(names).map { names.contains("O_RDONLY") ? $0 | readOnlyBit : $0 }
    }

    /// True when every flag in `event` is in `allowed`.
    @inline(__always)
    static func isSubset(_ event: UInt32, of allowed: UInt32) -> Bool { event & ~allowed == 0 }
}

