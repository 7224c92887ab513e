import Basics
internal import CNNG
import EventModel
import Logging
import Synchronization

/// Settings for an `RPCClient`.
public struct RPCClientConfiguration: Sendable {
    /// The server's address: `tcp://`, `ipc://`, `inproc://` or `tls+tcp://`.
    public var address: String
    /// Required for `tls+tcp://`: our certificate and key, and the CA that signs the server.
    public var tls: TLSConfiguration?
    /// Replies larger than this are refused.
    public var maxMessageSize: Int
    /// Reconnect back-off bounds.
    public var reconnectMinimum: Duration
    public var reconnectMaximum: Duration
    /// Connections (dialers) to open to the server; nng spreads calls over them. On a 2-core loopback one
    /// connection is as fast as four, with or without TLS (see the benchmark), so the default is 1.
    public var connections: Int

    public init(
        address: String, tls: TLSConfiguration? = nil, maxMessageSize: Int = 16 << 20,
        reconnectMinimum: Duration = .milliseconds(100), reconnectMaximum: Duration = .seconds(2), connections: Int = 1
    ) {
        self.connections = connections
        self.address = address
        self.tls = tls
        self.maxMessageSize = maxMessageSize
        self.reconnectMinimum = reconnectMinimum
        self.reconnectMaximum = reconnectMaximum
    }
}

/// A snapshot of an `RPCClient`'s counters.
public struct RPCClientStats: Sendable, Hashable {
    public var callsSucceeded: UInt64
    public var callsFailed: UInt64
    public var callsTimedOut: UInt64
    public var connects: UInt64
    public var disconnects: UInt64
    /// TLS handshakes that failed while dialing (server refused us, or we refused its certificate).
    public var tlsFailures: UInt64
    /// Dial attempts refused (nothing listening).
    public var dialsRefused: UInt64
    /// Connections dropped during the handshake (with TLS: usually the server refusing our certificate).
    public var dialsDisconnected: UInt64
    /// Dial attempts that failed otherwise (protocol errors, timeouts).
    public var dialsFailedOther: UInt64
}

/// Calls RPCs over NNG REQ. Each call runs on its own nng context, so many calls can be in flight.
/// The client dials in the background and reconnects by itself; a call made while disconnected waits
/// (up to its timeout) for the connection. nng re-sends a request whose connection broke.
public final class RPCClient: Sendable {
    public let configuration: RPCClientConfiguration
    private let socket: SocketOwner
    private let dialers: [DialerOwner]
    private let tlsConfig: TLSConfigOwner?
    private let logger: Logger
    private let idle = Mutex<[ContextChannel]>([])
    private let succeeded = Atomic<UInt64>(0)
    private let failed = Atomic<UInt64>(0)
    private let timedOut = Atomic<UInt64>(0)
    private static let maxIdleChannels = 256

    public init(
        configuration: RPCClientConfiguration, logger: Logger = Logger(label: "patrol.transport.rpc-client")
    ) throws(TransportError) {
        let address = configuration.address
        try validateAddress(address)
        self.configuration = configuration
        self.logger = logger
        let socket = try SocketOwner(.request, address: address)
        self.socket = socket
        try socket.setSize(NNG_OPT_RECVMAXSZ, configuration.maxMessageSize, address: address)
        try socket.setMilliseconds(NNG_OPT_RECONNMINT, milliseconds(configuration.reconnectMinimum), address: address)
        try socket.setMilliseconds(NNG_OPT_RECONNMAXT, milliseconds(configuration.reconnectMaximum), address: address)
        if isTLSAddress(address) {
            guard let tls = configuration.tls else {
                throw TransportError(.tls, "address \(address) is TLS but no TLS configuration was given")
            }
            tlsConfig = try TLSConfigOwner(tls, server: false, address: address)
        } else {
            tlsConfig = nil
        }
        precondition(configuration.connections > 0, "an RPCClient needs at least one connection")
        var dialers: [DialerOwner] = []
        for _ in 0..<configuration.connections {
            dialers.append(try DialerOwner(socket: socket, address: address, tls: tlsConfig))
        }
        self.dialers = dialers
    }

    /// True while at least one connection to the server is up.
    public var isConnected: Bool { socket.pipeEvents.current.load(ordering: .relaxed) > 0 }

    public var stats: RPCClientStats {
        let dials = dialers.map { $0.counters() }.reduce(into: [String: UInt64]()) { total, next in
            total.merge(next, uniquingKeysWith: +)
        }
        return RPCClientStats(
            callsSucceeded: succeeded.load(ordering: .relaxed), callsFailed: failed.load(ordering: .relaxed),
            callsTimedOut: timedOut.load(ordering: .relaxed),
            connects: socket.pipeEvents.added.load(ordering: .relaxed),
            disconnects: socket.pipeEvents.removed.load(ordering: .relaxed), tlsFailures: dials["auth"] ?? 0,
            dialsRefused: dials["refused"] ?? 0, dialsDisconnected: dials["disconnect"] ?? 0,
            dialsFailedOther: (dials["other"] ?? 0) + (dials["proto"] ?? 0) + (dials["timeout"] ?? 0))
    }

    /// Closes the socket; calls in flight fail with `closed`.
    public func close() {
        socket.close()
        idle.withLock { $0.removeAll() }
    }

    /// Sends `request` and waits for the reply, at most `timeout` in all.
    public func call(_ request: RPCRequest, timeout: Duration) async throws(TransportError) -> RPCReply {
        let address = configuration.address
        if socket.isClosed { throw TransportError(.closed, "client for \(address) is closed") }
        let channel = try takeChannel()
        let result = await exchange(Envelope.encode(request), on: channel, timeout: timeout)
        switch result {
        case .success(let bytes):
            let reply: RPCReply
            do {
                reply = try Envelope.decodeReply(bytes)
            } catch {
                failed.add(1, ordering: .relaxed)
                throw TransportError(
                    .protocolError, "reply to \(request.method) from \(address) does not decode: \(error)")
            }
            succeeded.add(1, ordering: .relaxed)
            returnChannel(channel)
            return reply
        case .failure(let error):
            // The context may still hold the abandoned request; drop it rather than reuse it.
            if error.code == .timeout { timedOut.add(1, ordering: .relaxed) } else { failed.add(1, ordering: .relaxed) }
            if error.code == .timeout, !isConnected, tlsConfig != nil {
                // nng retries refused handshakes silently; its dialer counts them. Say so instead of "timeout".
                let dials = dialers.map { $0.counters() }.reduce(into: [String: UInt64]()) { total, next in
                    total.merge(next, uniquingKeysWith: +)
                }
                // An untrusted server certificate counts as "auth"; a server refusing our certificate shows up
                // as "other" (or a dropped handshake). "refused" (nothing listening) is not a TLS problem.
                let refusals = ["auth", "disconnect", "proto", "other"].reduce(0) { $0 + (dials[$1] ?? 0) }
                if refusals > 0 {
                    logger.warning(
                        "tls handshake with the server failed",
                        metadata: ["address": "\(address)", "failures": "\(refusals)"])
                    throw TransportError(
                        .tls,
                        "\(request.method): no TLS connection to \(address): \(refusals) handshake(s) failed "
                            + "(certificate refused by the server, or the server's certificate not trusted)",
                        cause: error.cause)
                }
            }
            throw TransportError(error.code, "\(request.method): \(error.message)", cause: error.cause)
        }
    }

    /// One request/reply exchange on a context, on raw bytes.
    func exchange(_ bytes: [UInt8], on channel: ContextChannel, timeout: Duration) async -> Result<
        [UInt8], TransportError
    > {
        let address = configuration.address
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        channel.aio.setTimeout(milliseconds: max(1, milliseconds(timeout)))
        var rc = await channel.send(bytes)
        guard rc == 0 else { return .failure(nngError(rc, "cannot send request", address: address)) }
        let remaining = clock.now.duration(to: deadline)
        guard remaining > .zero else { return .failure(TransportError(.timeout, "no reply in time", address: address)) }
        channel.aio.setTimeout(milliseconds: max(1, milliseconds(remaining)))
        let received = await channel.receive()
        rc = received.rc
        guard rc == 0 else {
            if rc == NNGErrno.timedOut {
                return .failure(
                    TransportError(
                        .timeout,
                        "no reply within \(timeout) (\(address), \(isConnected ? "connected" : "not connected"))",
                        cause: nngCause(rc)))
            }
            return .failure(nngError(rc, "no reply", address: address))
        }
        return .success(received.bytes)
    }

    /// Raw bytes in, raw bytes out: for tests that send garbage.
    func rawCall(_ bytes: [UInt8], timeout: Duration) async -> Result<[UInt8], TransportError> {
        let channel: ContextChannel
        do { channel = try takeChannel() } catch { return .failure(error) }
        return await exchange(bytes, on: channel, timeout: timeout)
    }

    private func takeChannel() throws(TransportError) -> ContextChannel {
        if let channel = idle.withLock({ $0.popLast() }) { return channel }
        return try ContextChannel(socket: socket.socket, address: configuration.address)
    }

    private func returnChannel(_ channel: ContextChannel) {
        idle.withLock { channels in
            if channels.count < Self.maxIdleChannels && !socket.isClosed { channels.append(channel) }
        }
    }
}

extension TransportError {
    init(_ code: Code, _ message: String, address: String) {
        self.init(code, "\(message) (\(address))")
    }
}

func milliseconds(_ duration: Duration) -> Int32 {
    let (seconds, attoseconds) = duration.components
    let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000
    return Int32(clamping: total)
}

/// Owns an nng dialer that connects in the background and reconnects by itself.
final class DialerOwner: @unchecked Sendable {
    let dialer: nng_dialer

    init(socket: SocketOwner, address: String, tls: TLSConfigOwner?) throws(TransportError) {
        var dialer = nng_dialer()
        var rc = nng_dialer_create(&dialer, socket.socket, address)
        guard rc == 0 else { throw nngError(rc, "cannot create a dialer", address: address) }
        self.dialer = dialer
        if let tls {
            rc = nng_dialer_set_ptr(dialer, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(tls.config))
            guard rc == 0 else { throw nngError(rc, "cannot apply the TLS configuration", address: address) }
        }
        // Non-blocking: a sensor started before its collector keeps dialing in the background.
        rc = nng_dialer_start(dialer, Int32(NNG_FLAG_NONBLOCK))
        guard rc == 0 else { throw nngError(rc, "cannot start dialing", address: address) }
    }

    func counters() -> [String: UInt64] {
        readScopeCounters(
            scope: "dialer", id: nng_dialer_id(dialer),
            names: ["connect", "refused", "disconnect", "auth", "proto", "other", "timeout"])
    }
}
