import Foundation

/// A real `rsyslogd` on loopback for sink tests: UDP, plain TCP and TLS (GnuTLS) inputs, all parsed as
/// RFC 5424, written to one file by a template that puts each header part in its own tab-separated column.
///
/// Everything lives in a temporary directory: config, pid file, work directory, output and rsyslogd's own
/// messages. `stop()` (or deinit) kills it.
public final class RsyslogServer: @unchecked Sendable {
    public static let binary = "/usr/sbin/rsyslogd"
    public let directory: TemporaryDirectory
    public let udpPort: UInt16
    public let tcpPort: UInt16
    public let tlsPort: UInt16
    public let outputPath: String
    // Set once in init.
    private let process: Process

    /// One received message, split by the template. `structuredData` is the raw STRUCTURED-DATA text.
    public struct Record: Sendable, Equatable {
        public var pri: String
        public var timestamp: String
        public var hostname: String
        public var appName: String
        public var procID: String
        public var msgID: String
        public var structuredData: String
        public var message: String
    }

    public static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    /// Starts rsyslogd and waits until its listeners are up. `certificates` enables the TLS input with the
    /// server certificate; `requireClientCertificate` makes it demand a client certificate from that CA.
    /// `ports` reuses another server's ports (a restart on the same address).
    public init(
        certificates: TestCertificates? = nil, requireClientCertificate: Bool = false,
        ports: (udp: UInt16, tcp: UInt16, tls: UInt16)? = nil
    ) throws {
        directory = try TemporaryDirectory(prefix: "rsyslog")
        udpPort = ports?.udp ?? Ports.freeTCPPort()
        tcpPort = ports?.tcp ?? Ports.freeTCPPort()
        tlsPort = ports?.tls ?? Ports.freeTCPPort()
        outputPath = directory.file("received.log")
        let work = directory.file("work")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        // %structured-data% is the SD text as received (still escaped); %msg% is MSG without the leading space.
        var config = """
            global(workDirectory="\(work)" maxMessageSize="64k")
            module(load="imudp")
            module(load="imtcp" maxSessions="50")
            template(name="columns" type="string"
                string="%pri%\\t%timereported:::date-rfc3339%\\t%hostname%\\t%app-name%\\t%procid%\\t\
            %msgid%\\t%structured-data%\\t%msg%\\n")
            ruleset(name="received" parser="rsyslog.rfc5424") {
                action(type="omfile" file="\(outputPath)" template="columns" flushOnTXEnd="on" asyncWriting="off")
            }
            input(type="imudp" address="127.0.0.1" port="\(udpPort)" ruleset="received")
            input(type="imtcp" address="127.0.0.1" port="\(tcpPort)" ruleset="received")

            """
        if let certificates {
            let auth = requireClientCertificate ? "x509/certvalid" : "anon"
            config += """
                input(type="imtcp" address="127.0.0.1" port="\(tlsPort)" ruleset="received"
                    streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="\(auth)"
                    streamDriver.CAFile="\(certificates.caCertificate)"
                    streamDriver.CertFile="\(certificates.serverCertificate)"
                    streamDriver.KeyFile="\(certificates.serverKey)")

                """
        }
        let configPath = directory.file("rsyslog.conf")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)

        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["-n", "-f", configPath, "-i", directory.file("rsyslogd.pid")]
        let log = directory.file("rsyslogd.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = logHandle
        process.standardError = logHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()

        var ports = [tcpPort]
        if certificates != nil { ports.append(tlsPort) }
        let deadline = Date().addingTimeInterval(20)
        while !(ports.allSatisfy(Self.isListeningTCP) && Self.isBoundUDP(udpPort)) {
            guard process.isRunning else {
                throw TestCertificates.GenerationError(description: "rsyslogd exited: \(self.log)")
            }
            guard Date() < deadline else {
                stop()
                throw TestCertificates.GenerationError(description: "rsyslogd did not start listening: \(self.log)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// rsyslogd's own messages (config errors, TLS handshake failures).
    public var log: String { (try? String(contentsOfFile: directory.file("rsyslogd.log"), encoding: .utf8)) ?? "" }

    public var isRunning: Bool { process.isRunning }

    /// rsyslogd's pid, to freeze it (SIGSTOP) in a test.
    public var processIdentifier: Int32 { process.processIdentifier }

    /// Every message written so far.
    public func records() -> [Record] {
        guard let text = try? String(contentsOfFile: outputPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n", omittingEmptySubsequences: true).compactMap { line in
            let parts = line.split(separator: "\t", maxSplits: 7, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 8 else { return nil }
            return Record(
                pri: parts[0], timestamp: parts[1], hostname: parts[2], appName: parts[3], procID: parts[4],
                msgID: parts[5], structuredData: parts[6], message: parts[7])
        }
    }

    /// Waits (off the cooperative pool's hot path, polling) until at least `count` records arrived.
    public func waitForRecords(_ count: Int, timeout: Duration = .seconds(20)) async -> [Record] {
        _ = await PatrolProcess.eventually(timeout: timeout) { records().count >= count }
        return records()
    }

    public func stop() {
        if process.isRunning {
            // SIGKILL: rsyslogd inherits the test process's signal mask, in which SIGTERM can be blocked.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit {
        stop()
        directory.remove()
    }

    static func isListeningTCP(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// Whether something has bound UDP `port` on IPv4 (from /proc/net/udp, local address column).
    static func isBoundUDP(_ port: UInt16) -> Bool {
        guard let table = try? String(contentsOfFile: "/proc/net/udp", encoding: .utf8) else { return false }
        let suffix = ":" + String(format: "%04X", port)
        return table.split(separator: "\n").dropFirst().contains { line in
            let columns = line.split(separator: " ", omittingEmptySubsequences: true)
            return columns.count > 1 && columns[1].hasSuffix(suffix)
        }
    }
}

extension RsyslogServer.Record {
    /// Parses STRUCTURED-DATA back into `[SD-ID: [(name, value)]]`, undoing RFC 5424 §6.3.3 escaping.
    /// Returns nil if the text is not well formed, so a test sees broken escaping as a failure.
    public func elements() -> [String: [(String, String)]]? {
        var result: [String: [(String, String)]] = [:]
        let chars = Array(structuredData.unicodeScalars)
        var i = 0
        if structuredData == "-" { return [:] }
        while i < chars.count {
            guard chars[i] == "[" else { return nil }
            i += 1
            var id = ""
            while i < chars.count, chars[i] != " ", chars[i] != "]" {
                id.unicodeScalars.append(chars[i])
                i += 1
            }
            var params: [(String, String)] = []
            while i < chars.count, chars[i] == " " {
                i += 1
                var name = ""
                while i < chars.count, chars[i] != "=" {
                    name.unicodeScalars.append(chars[i])
                    i += 1
                }
                guard i + 1 < chars.count, chars[i + 1] == "\"" else { return nil }
                i += 2
                var value = ""
                while i < chars.count, chars[i] != "\"" {
                    if chars[i] == "\\", i + 1 < chars.count, ["\"", "\\", "]"].contains(chars[i + 1]) { i += 1 }
                    value.unicodeScalars.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { return nil }
                i += 1
                params.append((name, value))
            }
            guard i < chars.count, chars[i] == "]" else { return nil }
            i += 1
            result[id] = params
        }
        return result
    }
}
