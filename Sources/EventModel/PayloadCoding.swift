/// JSON shape of a payload: an object with exactly one member named after the kind, e.g.
/// `{"exec": {"path": "/bin/sh", "argv": ["sh"]}}`. This is the replay file format (docs/replay.md).
extension Payload: Codable {
    private struct KindKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
        init(_ kind: EventKind) { self.stringValue = kind.rawValue }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: KindKey.self)
        guard container.allKeys.count == 1, let key = container.allKeys.first else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "a payload has exactly one member named after its kind, found \(container.allKeys.map(\.stringValue))"))
        }
        guard let kind = EventKind(rawValue: key.stringValue) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath + [key], debugDescription: "unknown event kind '\(key.stringValue)'; known: \(EventKind.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        switch kind {
        case .exec: self = .exec(try container.decode(Exec.self, forKey: key))
        case .exit: self = .exit(try container.decode(Exit.self, forKey: key))
        case .open: self = .open(try container.decode(FileOpen.self, forKey: key))
        case .connect: self = .connect(try container.decode(NetworkFlow.self, forKey: key))
        case .accept: self = .accept(try container.decode(NetworkFlow.self, forKey: key))
        case .dns: self = .dns(try container.decode(DNSQuery.self, forKey: key))
        case .syscalls: self = .syscalls(try container.decode(SyscallSet.self, forKey: key))
        case .capability: self = .capability(try container.decode(CapabilityUse.self, forKey: key))
        case .moduleLoad: self = .moduleLoad(try container.decode(ModuleLoad.self, forKey: key))
        case .ptrace: self = .ptrace(try container.decode(PtraceAttach.self, forKey: key))
        case .namespaceChange: self = .namespaceChange(try container.decode(NamespaceChange.self, forKey: key))
        case .memfd: self = .memfd(try container.decode(MemfdCreate.self, forKey: key))
        case .link: self = .link(try container.decode(FileLink.self, forKey: key))
        case .bpf: self = .bpf(try container.decode(BPFCall.self, forKey: key))
        case .scanResult: self = .scanResult(try container.decode(ScanResult.self, forKey: key))
        case .audit: self = .audit(try container.decode(AuditRecord.self, forKey: key))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: KindKey.self)
        let key = KindKey(kind)
        switch self {
        case .exec(let value): try container.encode(value, forKey: key)
        case .exit(let value): try container.encode(value, forKey: key)
        case .open(let value): try container.encode(value, forKey: key)
        case .connect(let value): try container.encode(value, forKey: key)
        case .accept(let value): try container.encode(value, forKey: key)
        case .dns(let value): try container.encode(value, forKey: key)
        case .syscalls(let value): try container.encode(value, forKey: key)
        case .capability(let value): try container.encode(value, forKey: key)
        case .moduleLoad(let value): try container.encode(value, forKey: key)
        case .ptrace(let value): try container.encode(value, forKey: key)
        case .namespaceChange(let value): try container.encode(value, forKey: key)
        case .memfd(let value): try container.encode(value, forKey: key)
        case .link(let value): try container.encode(value, forKey: key)
        case .bpf(let value): try container.encode(value, forKey: key)
        case .scanResult(let value): try container.encode(value, forKey: key)
        case .audit(let value): try container.encode(value, forKey: key)
        }
    }
}
