import EventModel

/// One behaviour a profile can hold: what an anomaly names, what `patrolctl profiles allow` adds.
public enum ProfileItem: Sendable, Hashable {
    case exec(path: String, argv: [String])
    case open(path: String, flags: UInt32)
    case syscall(UInt32)
    case capability(syscall: UInt32, capability: UInt32)
    case dns(String)
    case outgoing(Endpoint)
    case incoming(Endpoint)

    /// Adds the item to `behaviour`.
    public func add(to behaviour: inout Behaviour) {
        switch self {
        case .exec(let path, let argv): behaviour.execs[path, default: []].insert(argv)
        case .open(let path, let flags): behaviour.opens[path, default: 0] |= OpenMask.of(flags)
        case .syscall(let number): behaviour.syscalls.insert(number)
        case .capability(let syscall, let capability):
            behaviour.capabilities.insert(UInt64(syscall) << 32 | UInt64(capability))
        case .dns(let name): behaviour.dns[name, default: []] = behaviour.dns[name, default: []]
        case .outgoing(let endpoint): behaviour.outgoing.insert(endpoint)
        case .incoming(let endpoint): behaviour.incoming.insert(endpoint)
        }
    }

    /// The behaviour in words, for alert messages: `exec /bin/sh -c id`, `open /etc/shadow (O_RDONLY)`.
    public var summary: String {
        switch self {
        case .exec(let path, let argv): return (["exec", path] + argv.dropFirst()).joined(separator: " ")
        case .open(let path, let flags):
            return "open \(path) (\(OpenMask.flagNames(OpenMask.of(flags)).joined(separator: "|")))"
        case .syscall(let number): return "syscall \(LinuxNames.syscall(number))"
        case .capability(let syscall, let capability):
            return "capability \(LinuxNames.capability(capability)) in \(LinuxNames.syscall(syscall))"
        case .dns(let name): return "DNS \(name)"
        case .outgoing(let endpoint): return "connect \(endpoint.url)"
        case .incoming(let endpoint): return "accept \(endpoint.url)"
        }
    }

    /// The `patrolctl profiles allow` arguments that add this item, shell-quoted.
    public var allowArguments: [String] {
        switch self {
        case .exec(let path, let argv): return ["--exec", path] + argv.flatMap { ["--arg", $0] }
        case .open(let path, let flags):
            return ["--open", path, "--flags", OpenMask.flagNames(OpenMask.of(flags)).joined(separator: ",")]
        case .syscall(let number): return ["--syscall", LinuxNames.syscall(number)]
        case .capability(let syscall, let capability):
            return ["--capability", LinuxNames.capability(capability), "--syscall", LinuxNames.syscall(syscall)]
        case .dns(let name): return ["--dns", name]
        case .outgoing(let endpoint): return ["--connect", endpoint.url]
        case .incoming(let endpoint): return ["--accept", endpoint.url]
        }
    }

    /// The exact command that allows the item in `key`'s profile.
    public func allowCommand(for key: ProfileKey) -> String {
        (["patrolctl", "profiles", "allow", key.workload.description, "--container", key.container] + allowArguments)
            .map(shellQuoted).joined(separator: " ")
    }
}

extension Endpoint {
    /// `tcp://10.0.0.1:443`, `udp://[fd00::1]:53`, `tcp://:8080` (incoming: the local port).
    public var url: String {
        let host = address.contains(":") ? "[\(address)]" : address
        return "\(proto == .unspecified ? "tcp" : proto.rawValue)://\(host):\(port)"
    }

    /// Parses `proto://host:port` as `url` writes it.
    public init?(url: String) {
        guard let schemeEnd = url.range(of: "://"),
            let proto = TransportProtocol(rawValue: String(url[..<schemeEnd.lowerBound])),
            let colon = url.lastIndex(of: ":"), colon > schemeEnd.lowerBound,
            let port = UInt16(url[url.index(after: colon)...])
        else { return nil }
        var host = String(url[schemeEnd.upperBound..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(proto: proto, address: host, port: port)
    }
}

/// Quotes a word for a POSIX shell when it needs it, so a printed command can be pasted as is.
func shellQuoted(_ word: String) -> String {
    let plain = !word.isEmpty && word.unicodeScalars.allSatisfy { scalar in
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".", "/", ":", ",", "=", "@", "+", "[", "]": return true
        default: return false
        }
    }
    guard !plain else { return word }
    var quoted = "'"
    for character in word { quoted += character == "'" ? "'\\''" : String(character) }
    return quoted + "'"
}
