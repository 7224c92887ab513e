/// What an event says happened. One case per kind; `EventKind` names them without data.
public enum Payload: Sendable, Hashable {
    case exec(Exec)
    case exit(Exit)
    case open(FileOpen)
    case connect(NetworkFlow)
    case accept(NetworkFlow)
    case dns(DNSQuery)
    case syscalls(SyscallSet)
    case capability(CapabilityUse)
    case moduleLoad(ModuleLoad)
    case ptrace(PtraceAttach)
    case namespaceChange(NamespaceChange)
    case memfd(MemfdCreate)
    case link(FileLink)
    case bpf(BPFCall)
    case scanResult(ScanResult)
    /// A Kubernetes audit event from the audit pipeline; sensors never send these.
    case audit(AuditRecord)

    public var kind: EventKind {
        switch self {
        case .exec: return .exec
        case .exit: return .exit
        case .open: return .open
        case .connect: return .connect
        case .accept: return .accept
        case .dns: return .dns
        case .syscalls: return .syscalls
        case .capability: return .capability
        case .moduleLoad: return .moduleLoad
        case .ptrace: return .ptrace
        case .namespaceChange: return .namespaceChange
        case .memfd: return .memfd
        case .link: return .link
        case .bpf: return .bpf
        case .scanResult: return .scanResult
        case .audit: return .audit
        }
    }
}

/// The kinds of event, used to index rules and label metrics. Raw values are the names rule files use.
public enum EventKind: String, Sendable, Hashable, Codable, CaseIterable {
    case exec, exit, open, connect, accept, dns, syscalls, capability
    case moduleLoad = "module_load"
    case ptrace
    case namespaceChange = "namespace_change"
    case memfd, link, bpf
    case scanResult = "scan_result"
    /// A Kubernetes audit event from the audit pipeline; never sent by sensors.
    case audit
}

public struct Exec: Sendable, Hashable, Codable {
    public var path: String
    public var argv: [String]
    /// The environment variables the sensor keeps (for example `LD_PRELOAD`), as `NAME=value`.
    public var env: [String]
    /// True when the executable lives in the container's writable (upper) layer rather than its image.
    public var upperLayer: Bool
    /// True when the executable lives under one of the container's volume mounts.
    public var fromVolume: Bool
    /// True when the new program's stdin or stdout is a socket (the shape of a reverse shell).
    public var stdioSocket: Bool

    public init(
        path: String, argv: [String] = [], env: [String] = [], upperLayer: Bool = false, fromVolume: Bool = false,
        stdioSocket: Bool = false
    ) {
        self.path = path
        self.argv = argv
        self.env = env
        self.upperLayer = upperLayer
        self.fromVolume = fromVolume
        self.stdioSocket = stdioSocket
    }
}

public struct Exit: Sendable, Hashable, Codable {
    public var code: Int32
    public var signal: Int32
    public init(code: Int32 = 0, signal: Int32 = 0) {
        self.code = code
        self.signal = signal
    }
}

public struct FileOpen: Sendable, Hashable, Codable {
    public var path: String
    /// `open(2)` flags as the kernel saw them (O_RDONLY, O_WRONLY, O_CREAT, ...).
    public var flags: UInt32
    /// The syscall result: a file descriptor, or a negative errno.
    public var result: Int32
    /// True when the path is under one of the container's volume mounts (R0002's `ignoreMounts`).
    public var fromVolume: Bool

    public init(path: String, flags: UInt32 = 0, result: Int32 = 0, fromVolume: Bool = false) {
        self.path = path
        self.flags = flags
        self.result = result
        self.fromVolume = fromVolume
    }
}

public enum AddressFamily: String, Sendable, Hashable, Codable {
    case unspecified, inet, inet6, unix
}

public enum TransportProtocol: String, Sendable, Hashable, Codable {
    case unspecified, tcp, udp
}

/// A connect (outgoing) or accept (incoming) on a socket.
public struct NetworkFlow: Sendable, Hashable, Codable {
    public var family: AddressFamily
    public var proto: TransportProtocol
    public var localAddress: String
    public var localPort: UInt16
    public var remoteAddress: String
    public var remotePort: UInt16
    /// The syscall result: 0, or a negative errno (`-EINPROGRESS` is common for non-blocking connects).
    public var result: Int32

    public init(
        family: AddressFamily = .inet, proto: TransportProtocol = .tcp, localAddress: String = "",
        localPort: UInt16 = 0, remoteAddress: String, remotePort: UInt16, result: Int32 = 0
    ) {
        self.family = family
        self.proto = proto
        self.localAddress = localAddress
        self.localPort = localPort
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.result = result
    }
}

public struct DNSQuery: Sendable, Hashable, Codable {
    /// The query name as sent, possibly with a trailing dot; rules compare the normalised form.
    public var name: String
    /// The numeric query type (1 = A, 28 = AAAA, ...).
    public var queryType: UInt16
    public var answers: [String]

    public init(name: String, queryType: UInt16 = 1, answers: [String] = []) {
        self.name = name
        self.queryType = queryType
        self.answers = answers
    }
}

/// A DNS name lower-cased and without its trailing dot: `Example.COM.` and `example.com` are one name. Rules and
/// profiles compare names in this form (KubeCop compared them as sent, so its domain rules never matched).
public func normalisedDNSName(_ name: String) -> String {
    var text = name
    while text.utf8.last == UInt8(ascii: ".") { text.removeLast() }
    if text.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A || $0 >= 0x80 }) { text = text.lowercased() }
    return text
}

/// The set of syscall numbers a container used in one window, from the in-kernel bitmap.
public struct SyscallSet: Sendable, Hashable, Codable {
    public var syscalls: [UInt32]
    public init(syscalls: [UInt32]) { self.syscalls = syscalls }
}

public struct CapabilityUse: Sendable, Hashable, Codable {
    /// The capability number (CAP_SYS_ADMIN = 21, ...).
    public var capability: UInt32
    /// The syscall that asked for it.
    public var syscall: UInt32
    /// True when the kernel granted it.
    public var granted: Bool

    public init(capability: UInt32, syscall: UInt32 = 0, granted: Bool = true) {
        self.capability = capability
        self.syscall = syscall
        self.granted = granted
    }
}

public struct ModuleLoad: Sendable, Hashable, Codable {
    /// `init_module` or `finit_module`.
    public var syscall: String
    public var name: String
    public init(syscall: String, name: String = "") {
        self.syscall = syscall
        self.name = name
    }
}

public struct PtraceAttach: Sendable, Hashable, Codable {
    public var request: Int32
    public var targetPid: Int32
    public init(request: Int32, targetPid: Int32) {
        self.request = request
        self.targetPid = targetPid
    }
}

public struct NamespaceChange: Sendable, Hashable, Codable {
    /// `unshare`, `setns` or `mount`.
    public var syscall: String
    /// CLONE_NEW* flags for unshare/setns, mount flags for mount.
    public var flags: UInt64
    /// For mount: the source; for setns: the target namespace path when known.
    public var source: String
    /// For mount: the target directory.
    public var target: String
    public var fsType: String

    public init(syscall: String, flags: UInt64 = 0, source: String = "", target: String = "", fsType: String = "") {
        self.syscall = syscall
        self.flags = flags
        self.source = source
        self.target = target
        self.fsType = fsType
    }
}

public struct MemfdCreate: Sendable, Hashable, Codable {
    public var name: String
    public var flags: UInt32
    public init(name: String, flags: UInt32 = 0) {
        self.name = name
        self.flags = flags
    }
}

/// A symlink or hard link being created.
public struct FileLink: Sendable, Hashable, Codable {
    public var target: String
    public var linkPath: String
    public var symbolic: Bool
    public init(target: String, linkPath: String, symbolic: Bool) {
        self.target = target
        self.linkPath = linkPath
        self.symbolic = symbolic
    }
}

/// A `bpf(2)` call.
public struct BPFCall: Sendable, Hashable, Codable {
    public var command: Int32
    public init(command: Int32) { self.command = command }
}

/// A malware scanner finding.
public struct ScanResult: Sendable, Hashable, Codable {
    public var scanID: String
    /// The path relative to the host root.
    public var path: String
    public var signature: String
    public var sha256: String
    public var sizeBytes: UInt64
    /// True when the file comes from the container image's lower layers, false when written at run time.
    public var partOfImage: Bool

    public init(
        scanID: String = "", path: String, signature: String, sha256: String = "", sizeBytes: UInt64 = 0,
        partOfImage: Bool = false
    ) {
        self.scanID = scanID
        self.path = path
        self.signature = signature
        self.sha256 = sha256
        self.sizeBytes = sizeBytes
        self.partOfImage = partOfImage
    }
}
