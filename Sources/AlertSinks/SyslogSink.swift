import Basics
import EventModel
import Logging
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// Sends alerts to a syslog server as RFC 5424 messages (`SyslogFormat`) over UDP (RFC 5426, one message
/// per datagram), TCP with octet counting (RFC 6587) or TLS (RFC 5425, octet counting).
///
/// TCP and TLS deliver at least once. Syslog has no acknowledgement, and a write that returned only means the
/// bytes reached the kernel: a server killed with messages in its socket buffer or its own queue loses them
/// although every write succeeded. So the sink vouches for alerts (`settled`, which moves the outbox cursor)
/// only once the connection they went over has stayed open for `confirmAfter` after the write; if the
/// server closes or resets the connection before that, or a write fails, the sink drops the connection and
/// throws, and the outbox sends every alert after the last settled one again on a new connection (counted in
/// `patrol_sink_alerts_redelivered_total`). A server that dies closes its sockets, so its peer sees FIN or
/// RST at once; what stays unprotected is a server that keeps the connection open yet loses a message it
/// read more than `confirmAfter` earlier, or a peer that vanishes without FIN or RST (a cut network) after
/// `confirmAfter` (docs/alerts.md#syslog). UDP has no acknowledgement at all: a datagram the network or a
/// stopped server drops is lost, which is why TCP or TLS is the choice for alerts that matter.
public actor SyslogSink: AlertSink {
    public enum Transport: String, Sendable, CaseIterable {
        case udp, tcp, tls
    }

    public struct Configuration: Sendable {
        /// `host:port` (IPv6 as `[addr]:port`).
        public var address: String
        public var transport: Transport
        public var format: SyslogFormat
        /// TLS: the CA bundle the server's certificate must chain to, and an optional client certificate.
        public var caFile: String?
        public var certificateFile: String?
        public var keyFile: String?
        /// TLS: the name expected in the server's certificate; nil: the host from `address`.
        public var serverName: String?
        public var connectTimeout: Duration
        public var sendTimeout: Duration
        /// TCP/TLS: how long a connection must stay open after a write before the alerts in it count as
        /// delivered. Longer than the server takes from reading a message to storing it.
        public var confirmAfter: Duration

        public init(
            address: String, transport: Transport, format: SyslogFormat = SyslogFormat(), caFile: String? = nil,
            certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil,
            connectTimeout: Duration = .seconds(5), sendTimeout: Duration = .seconds(10),
            confirmAfter: Duration = .seconds(2)
        ) {
            self.address = address
            self.transport = transport
            self.format = format
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.serverName = serverName
            self.connectTimeout = connectTimeout
            self.sendTimeout = sendTimeout
            self.confirmAfter = confirmAfter
        }
    }

    public nonisolated let name: String
    private let configuration: Configuration
    private let logger: Logger
    private var stream: ByteStream?
    private var datagram: DatagramSocket?
    /// Outbox positions written on the current connection and not yet vouched for, oldest first, each with
    /// when its write completed.
    private var unsettled: [(position: Int64, written: ContinuousClock.Instant)] = []
    private var settledThrough: Int64 = 0

    /// Checks the address and the TLS files at start-up, so a misconfiguration is reported before any alert.
    public init(configuration: Configuration, name: String = "syslog", logger: Logger) throws(AlertSinksError) {
        guard Self.splitHostPort(configuration.address) != nil else {
            throw AlertSinksError(
                .configuration, "syslog address '\(configuration.address)' must be host:port with a numeric port")
        }
        if configuration.transport == .tls {
            for file in [configuration.caFile, configuration.certificateFile, configuration.keyFile].compactMap({ $0 })
            where access(file, R_OK) != 0 {
                throw AlertSinksError(.configuration, "syslog TLS file '\(file)' cannot be read")
            }
            // Without a CA there is nothing to verify the server against, and an unverified TLS link would
            // look secure while trusting anyone who answers; so it is refused rather than allowed quietly.
            guard configuration.caFile != nil else {
                throw AlertSinksError(.configuration, "syslog over TLS needs caFile to verify the server")
            }
            if (configuration.certificateFile == nil) != (configuration.keyFile == nil) {
                throw AlertSinksError(.configuration, "syslog TLS needs both certFile and keyFile, or neither")
            }
        }
        self.configuration = configuration
        self.name = name
        var logger = logger
        logger[metadataKey: "sink"] = "\(name)"
        self.logger = logger
    }

    public func deliver(_ alerts: [Alert]) async throws(AlertSinksError) {
        guard !alerts.isEmpty else { return }
        let messages = alerts.map { configuration.format.message($0) }
        switch configuration.transport {
        case .udp: try await sendDatagrams(messages)
        case .tcp, .tls: try await sendFramed(messages)
        }
    }

    public func flush() async throws(AlertSinksError) {
        stream?.close()
        stream = nil
        unsettled.removeAll()
    }

    public func settled(sentThrough sent: Int64) async throws(AlertSinksError) -> Int64 {
        guard configuration.transport != .udp else { return sent }
        if sent > (unsettled.last?.position ?? settledThrough) { unsettled.append((sent, .now)) }
        try checkConnection()
        let now = ContinuousClock.now
        var settledCount = 0
        for entry in unsettled where now - entry.written >= configuration.confirmAfter {
            settledThrough = max(settledThrough, entry.position)
            settledCount += 1
        }
        unsettled.removeFirst(settledCount)
        return settledThrough
    }

    /// Drops a connection the server closed; throws if alerts written on it were not settled yet, since the
    /// server may have lost them (the outbox sends them again).
    private func checkConnection() throws(AlertSinksError) {
        guard let current = stream, current.isPeerClosed else { return }
        logger.info("syslog server closed the connection; reconnecting")
        current.close()
        stream = nil
        try dropUnsettled("the syslog server closed the connection")
    }

    private func dropUnsettled(_ reason: String) throws(AlertSinksError) {
        guard let first = unsettled.first, let last = unsettled.last else { return }
        unsettled.removeAll()
        throw AlertSinksError(
            .unavailable,
            "\(reason) before alerts up to outbox position \(last.position) (from after \(settledThrough), first "
                + "batch ending at \(first.position)) were confirmed; they are sent again")
    }

    /// RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`, the whole batch in one write.
    public static func frame(_ messages: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(messages.reduce(0) { $0 + $1.count + 8 })
        for message in messages {
            bytes += Array("\(message.count) ".utf8)
            bytes += message
        }
        return bytes
    }

    private func sendFramed(_ messages: [[UInt8]]) async throws(AlertSinksError) {
        try checkConnection()
        let connection: ByteStream
        if let current = stream {
            connection = current
        } else {
            connection = try await connect()
            stream = connection
        }
        do {
            try await connection.send(Self.frame(messages), timeout: configuration.sendTimeout)
        } catch {
            connection.close()
            stream = nil
            unsettled.removeAll()
            throw AlertSinksError(
                .unavailable, "cannot send to syslog server \(configuration.address)", cause: .error(error))
        }
    }

    private func connect() async throws(AlertSinksError) -> ByteStream {
        let scheme = configuration.transport == .tls ? "tls+tcp" : "tcp"
        var tls: TLSConfiguration?
        if configuration.transport == .tls {
            tls = TLSConfiguration(
                certificateFile: configuration.certificateFile, privateKeyFile: configuration.keyFile,
                caFile: configuration.caFile, serverName: configuration.serverName, verifyServer: true)
        }
        do {
            let connection = try await ByteStream.connect(
                address: "\(scheme)://\(configuration.address)", tls: tls, timeout: configuration.connectTimeout)
            logger.info("connected to syslog server", metadata: ["address": "\(configuration.address)"])
            return connection
        } catch {
            let code: AlertSinksError.Code = error.code == .tls ? .configuration : .unavailable
            throw AlertSinksError(
                code,
                "cannot connect to syslog server \(configuration.address) over \(configuration.transport.rawValue)",
                cause: .error(error))
        }
    }

    private func sendDatagrams(_ messages: [[UInt8]]) async throws(AlertSinksError) {
        if datagram == nil { datagram = try await DatagramSocket.open(address: configuration.address) }
        for message in messages { try datagram!.send(message) }
    }

    /// `host:port` or `[v6]:port` split in two; nil without a numeric port.
    static func splitHostPort(_ address: String) -> (host: String, port: UInt16)? {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            return nil
        }
        var host = address[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { return nil }
        return (String(host), port)
    }
}

/// A non-blocking UDP socket aimed at one resolved address. Non-blocking so a send never stalls the
/// cooperative pool: a full socket buffer fails the batch, which the outbox retries.
final class DatagramSocket: @unchecked Sendable {
    // Immutable after init; sendto on one fd from one actor at a time.
    private let fd: Int32
    private let target: [UInt8]
    private let address: String

    private init(fd: Int32, target: [UInt8], address: String) {
        self.fd = fd
        self.target = target
        self.address = address
    }

    deinit { close(fd) }

    /// Resolves `host:port` (getaddrinfo may block on DNS, so it runs on a dedicated thread).
    static func open(address: String) async throws(AlertSinksError) -> DatagramSocket {
        guard let (host, port) = SyslogSink.splitHostPort(address) else {
            throw AlertSinksError(.configuration, "syslog address '\(address)' must be host:port")
        }
        let resolved: (family: Int32, bytes: [UInt8])?
        do {
            resolved = try await resolver.run { Self.resolve(host: host, port: port) }
        } catch {
            throw AlertSinksError(.unavailable, "cannot resolve syslog host '\(host)'", cause: .error(error))
        }
        guard let resolved else { throw AlertSinksError(.unavailable, "cannot resolve syslog host '\(host)'") }
        let fd = socket(
            resolved.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
            0)
        guard fd >= 0 else {
            let code = errno
            throw AlertSinksError(
                .io, "cannot open a UDP socket",
                cause: .cCode(library: "libc", code: code, text: String(cString: strerror(code))))
        }
        return DatagramSocket(fd: fd, target: resolved.bytes, address: address)
    }

    private static let resolver = BlockingExecutor(name: "syslog-resolve")

    private static func resolve(host: String, port: UInt16) -> (family: Int32, bytes: [UInt8])? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        let bytes = [UInt8](UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        return (first.pointee.ai_family, bytes)
    }

    func send(_ message: [UInt8]) throws(AlertSinksError) {
        while true {
            let sent = message.withUnsafeBytes { body in
                target.withUnsafeBytes { raw in
                    sendto(
                        fd, body.baseAddress, body.count, 0, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self),
                        socklen_t(raw.count))
                }
            }
            if sent >= 0 { return }
            let code = errno
            if code == EINTR { continue }
            throw AlertSinksError(
                .unavailable, "cannot send a syslog datagram to \(address)",
                cause: .cCode(library: "libc", code: code, text: String(cString: strerror(code))))
        }
    }
}
