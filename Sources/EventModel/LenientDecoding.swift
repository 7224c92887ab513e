// Replay files and hand-written fixtures leave out fields that have an obvious default (empty lists, zero
// flags, false). These decoders accept that; encoding stays the synthesized, complete form.

extension KeyedDecodingContainer {
    func value<T: Decodable>(_ key: Key, default fallback: @autoclosure () -> T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback()
    }
}

extension Exec {
    private enum LenientKeys: String, CodingKey { case path, argv, env, upperLayer, fromVolume, stdioSocket }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: LenientKeys.self)
        self.init(
            path: try c.decode(String.self, forKey: .path), argv: try c.value(.argv, default: []),
            env: try c.value(.env, default: []), upperLayer: try c.value(.upperLayer, default: false),
            fromVolume: try c.value(.fromVolume, default: false), stdioSocket: try c.value(.stdioSocket, default: false))
    }
}

extension Exit {
    private enum LenientKeys: String, CodingKey { case code, signal }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: LenientKeys.self)
        self.init(code: try c.value(.code, default: 0), signal: try c.value(.signal, default: 0))
    }
}

extension FileOpen {
    private enum LenientKeys: String, CodingKey { case path, flags, result, fromVolume }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: LenientKeys.self)
        self.init(
            path: try c.decode(String.self, forKey: .path), flags: try c.value(.flags, default: 0),
            result: try c.value(.result, default: 0), fromVolume: try c.value(.fromVolume, default: false))
    }
}

extension NetworkFlow {
    private enum LenientKeys: String, CodingKey {
        case family, proto, localAddress, localPort, remoteAddress, remotePort, result
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: LenientKeys.self)
        self.init(
            family: try c.value(.family, default: .inet), proto: try c.value(.proto, default: .tcp),
            localAddress: try c.value(.localAddress, default: ""), localPort: try c.value(.localPort, default: 0),
            remoteAddress: try c.decode(String.self, forKey: .remoteAddress),
            remotePort: try c.decode(UInt16.self, forKey: .remotePort), result: try c.value(.result, default: 0))
    }
}

extension DNSQuery {
    private enum LenientKeys: String, CodingKey { case name, queryType, answers }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: LenientKeys.self)
        self.init(
            name: try c.decode(String.self, forKey: .name), queryType: try c.value(.queryType, default: 1),
            answers: try c.value(.answers, default: []))
    }
}

extension CapabilityUse {
    private enum LenientKeys: String, CodingKey { case capability, syscall, granted }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: LenientKeys.self)
        self.init(
            capability: try c.decode(UInt32.self, forKey: .capability), syscall: try c.value(.syscall, default: 0),
            granted: try c.value(.granted, default: true))
    }
}

extension ModuleLoad {
    private enum LenientKeys: String, CodingKey { case syscall, name }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: LenientKeys.self)
        self.init(syscall: try c.decode(String.self, forKey: .syscall), name: try c.value(.name, default: ""))
    }
}

extension NamespaceChange {
    private enum LenientKeys: String, CodingKey { case syscall, flags, source, target, fsType }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: LenientKeys.self)
        self.init(
            syscall: try c.decode(String.self, forKey: .syscall), flags: try c.value(.flags, default: 0),
            source: try c.value(.source, default: ""), target: try c.value(.target, default: ""),
            fsType: try c.value(.fsType, default: ""))
    }
}

extension MemfdCreate {
    private enum LenientKeys: String, CodingKey { case name, flags }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: LenientKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), flags: try c.value(.flags, default: 0))
    }
}

extension ScanResult {
    private enum LenientKeys: String, CodingKey { case scanID, path, signature, sha256, sizeBytes, partOfImage }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: LenientKeys.self)
        self.init(
            scanID: try c.value(.scanID, default: ""), path: try c.decode(String.self, forKey: .path),
            signature: try c.decode(String.self, forKey: .signature), sha256: try c.value(.sha256, default: ""),
            sizeBytes: try c.value(.sizeBytes, default: 0), partOfImage: try c.value(.partOfImage, default: false))
    }
}
