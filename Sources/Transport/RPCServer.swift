import Basics
internal import CNNG
import EventModel
import Logging
import Synchronization

/// Settings for an `RPCServer`.
public struct RPCServerConfiguration: Sendable {
    /// `tcp://host:port`, `ipc:///path`, `inproc://name` or `tls+tcp://host:port` (port 0 picks a free one).
    public var address: String
    /// Required for `tls+tcp://`.
    public var tls: TLSConfiguration?
    /// How many requests may be in flight at once (one nng context each).
    public var concurrency: Int
    /// Larger messages are refused by nng, which closes the offending connection (`NNG_OPT_RECVMAXSZ`).
    public var maxMessageSize: Int
    /// Answer bytes that do not decode with INVALID_ARGUMENT (true) or drop them without a reply (false).
    /// Either way they are counted and logged.
    public var replyToUndecodable: Bool
    /// For `ipc://`: the socket file's mode (e.g. 0o600), set by nng before it accepts connections. Nil leaves
    /// the process umask's default.
    public var ipcPermissions: Int?

    public init(
        address: String, tls: TLSConfiguration? = nil, concurrency: Int = 16, maxMessageSize: Int = 8 << 20,
        replyToUndecodable: Bool = true, ipcPermissions: Int? = nil
    ) {
        self.ipcPermissions = ipcPermissions
        self.address = address
        self.tls = tls
        self.concurrency = concurrency
        self.maxMessageSize = maxMessageSize
        self.replyToUndecodable = replyToUndecodable
    }
}

/// A snapshot of an `RPCServer`'s counters.
public struct RPCServerStats: Sendable, Hashable {
    /// Requests decoded and answered by the handler.
    public var requestsServed: UInt64
    /// Messages that did not decode as an RPC request.
    public var decodeFailures: UInt64
    /// Replies that could not be sent (peer gone, socket closed).
    public var replyFailures: UInt64
    /// Connections that completed the handshake.
    public var connectionsAccepted: UInt64
    /// Connections that went away, including those nng closed for an oversized message.
    public var connectionsClosed: UInt64
    /// TLS handshakes refused (no client certificate, wrong CA, bad certificate).
    public var tlsRefusals: UInt64
    /// Other accept failures nng counted on the listener (protocol errors, resets).
    public var acceptFailures: UInt64
    /// Connections open now.
    public var openConnections: Int64
}

/// Serves RPCs over NNG REQ/REP. Several requests are in flight at once, each on its own nng context.
///
/// The handler decides when the reply goes out: it is async, and the reply is sent when it returns. A
/// collector therefore acks a batch only after handing it on durably. Messages that fail to decode
/// are counted, logged with what was wrong, and answered with INVALID_ARGUMENT (or dropped); the server
/// keeps serving everyone else.
///
/// Lifecycle: `init` listens (bind errors surface there); `run()` serves until `close()` or until the
/// calling task is cancelled. `run()` has the shape of a swift-service-lifecycle `Service.run()`.
public final class RPCServer: Sendable {
    public typealias Handler = @Sendable (RPCRequest, PeerInfo) async -> RPCReply

    public let configuration: RPCServerConfiguration
    private let socket: SocketOwner
    private let listener: ListenerOwner
    private let tlsConfig: TLSConfigOwner?
    private let handler: Handler
    private let logger: Logger
    private let served = Atomic<UInt64>(0)
    private let decodeFailed = Atomic<UInt64>(0)
    private let replyFailed = Atomic<UInt64>(0)
    private let running = Atomic<Bool>(false)

    /// The address actually bound: for tcp with port 0, the port nng picked.
    public let boundAddress: String

    public init(
        configuration: RPCServerConfiguration, logger: Logger = Logger(label: "patrol.transport.rpc-server"),
        handler: @escaping Handler
    ) throws(TransportError) {
        let address = configuration.address
        precondition(configuration.concurrency > 0, "an RPCServer needs at least one context")
        try validateAddress(address)
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
        let socket = try SocketOwner(.reply, address: address)
        self.socket = socket
        try socket.setSize(NNG_OPT_RECVMAXSZ, configuration.maxMessageSize, address: address)
        if isTLSAddress(address) {
            guard let tls = configuration.tls else {
                throw TransportError(.tls, "address \(address) is TLS but no TLS configuration was given")
            }
            tlsConfig = try TLSConfigOwner(tls, server: true, address: address)
        } else {
            tlsConfig = nil
        }
        listener = try ListenerOwner(
            socket: socket, address: address, tls: tlsConfig, ipcPermissions: configuration.ipcPermissions)
        boundAddress = listener.boundAddress()
        logger.debug("rpc server listening", metadata: ["address": "\(boundAddress)"])
    }

    /// Serves until `close()` is called or the task is cancelled (which closes the socket).
    public func run() async {
        precondition(!running.exchange(true, ordering: .relaxed), "RPCServer.run() called twice")
        let channels: [ContextChannel]
        do {
            channels = try (0..<configuration.concurrency).map { _ throws(TransportError) in
                try ContextChannel(socket: socket.socket, address: boundAddress)
            }
        } catch {
            logger.error(
                "rpc server cannot open contexts", metadata: ["address": "\(boundAddress)", "error": "\(error)"])
            return
        }
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                for channel in channels {
                    group.addTask { await self.serve(on: channel) }
                }
                group.addTask { await self.watchListener() }
            }
        } onCancel: {
            self.close()
        }
    }

    /// Stops listening; pending requests finish with `closed`. Safe to call more than once.
    public func close() {
        socket.close()
    }

    public var stats: RPCServerStats {
        let listenerStats = listener.statistics()
        return RPCServerStats(
            requestsServed: served.load(ordering: .relaxed),
            decodeFailures: decodeFailed.load(ordering: .relaxed),
            replyFailures: replyFailed.load(ordering: .relaxed),
            connectionsAccepted: socket.pipeEvents.added.load(ordering: .relaxed),
            connectionsClosed: socket.pipeEvents.removed.load(ordering: .relaxed),
            tlsRefusals: listenerStats.auth,
            acceptFailures: listenerStats.other,
            openConnections: socket.pipeEvents.current.load(ordering: .relaxed))
    }

    public var requestsServed: UInt64 { served.load(ordering: .relaxed) }
    public var decodeFailures: UInt64 { decodeFailed.load(ordering: .relaxed) }
    public var tlsRefusals: UInt64 { listener.statistics().auth }

    private func serve(on channel: ContextChannel) async {
        while true {
            let (rc, bytes, pipe) = await channel.receive()
            if rc == NNGErrno.closed || socket.isClosed { return }
            if rc != 0 {
                logger.warning(
                    "rpc server receive failed",
                    metadata: ["address": "\(boundAddress)", "error": "\(nngCause(rc))"])
                continue
            }
            let peer = peerInfo(pipe: pipe)
            let request: RPCRequest
            do {
                request = try Envelope.decodeRequest(bytes)
            } catch {
                decodeFailed.add(1, ordering: .relaxed)
                logger.warning(
                    "rpc request does not decode",
                    metadata: [
                        "address": "\(boundAddress)", "peer": "\(peer.remoteAddress)", "bytes": "\(bytes.count)",
                        "error": "\(error)",
                    ])
                guard configuration.replyToUndecodable else { continue }
                let reply = RPCReply(status: .invalidArgument, message: "request does not decode: \(error)")
                await sendReply(reply, on: channel, peer: peer)
                continue
            }
            let reply = await handler(request, peer)
            served.add(1, ordering: .relaxed)
            await sendReply(reply, on: channel, peer: peer)
        }
    }

    /// nng counts refused handshakes and failed accepts on the listener but has no callback for them;
    /// this polls the counters so that each refusal is logged.
    private func watchListener() async {
        var last = listener.statistics()
        while !socket.isClosed {
            try? await Task.sleep(for: .milliseconds(250))
            let now = listener.statistics()
            if now.auth > last.auth {
                logger.warning(
                    "tls handshake refused",
                    metadata: [
                        "address": "\(boundAddress)", "refused": "\(now.auth - last.auth)", "total": "\(now.auth)",
                    ])
            }
            if now.other > last.other {
                logger.info(
                    "connection attempts failed at the listener",
                    metadata: ["address": "\(boundAddress)", "count": "\(now.other - last.other)"])
            }
            last = now
        }
    }

    private func sendReply(_ reply: RPCReply, on channel: ContextChannel, peer: PeerInfo) async {
        let rc = await channel.send(Envelope.encode(reply))
        if rc != 0 {
            replyFailed.add(1, ordering: .relaxed)
            if rc != NNGErrno.closed {
                logger.info(
                    "rpc reply not sent",
                    metadata: [
                        "address": "\(boundAddress)", "peer": "\(peer.remoteAddress)", "error": "\(nngCause(rc))",
                    ])
            }
        }
    }
}

/// Owns an nng listener (closed with its socket) and reads its statistics.
final class ListenerOwner: @unchecked Sendable {
    let listener: nng_listener
    let address: String

    init(
        socket: SocketOwner, address: String, tls: TLSConfigOwner?, ipcPermissions: Int? = nil
    ) throws(TransportError) {
        var listener = nng_listener()
        var rc = nng_listener_create(&listener, socket.socket, address)
        guard rc == 0 else { throw nngError(rc, "cannot create a listener", address: address) }
        self.listener = listener
        self.address = address
        if let tls {
            rc = nng_listener_set_ptr(listener, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(tls.config))
            guard rc == 0 else { throw nngError(rc, "cannot apply the TLS configuration", address: address) }
        }
        if let mode = ipcPermissions, address.hasPrefix("ipc://") {
            rc = nng_listener_set_int(listener, NNG_OPT_IPC_PERMISSIONS, Int32(mode))
            guard rc == 0 else { throw nngError(rc, "cannot set the socket file's permissions", address: address) }
        }
        rc = nng_listener_start(listener, 0)
        guard rc == 0 else { throw nngError(rc, "cannot listen", address: address) }
    }

    func boundAddress() -> String {
        guard address.contains("tcp") else { return address }
        var port: Int32 = 0
        guard nng_listener_get_int(listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0,
            let colon = address.lastIndex(of: ":")
        else { return address }
        return String(address[..<colon]) + ":\(port)"
    }

    struct Statistics {
        var auth: UInt64 = 0
        var other: UInt64 = 0
    }

    /// nng's per-listener counters: `auth` counts failed TLS handshakes.
    func statistics() -> Statistics {
        let values = readScopeCounters(
            scope: "listener", id: nng_listener_id(listener), names: ["auth", "proto", "other"])
        return Statistics(auth: values["auth"] ?? 0, other: (values["proto"] ?? 0) + (values["other"] ?? 0))
    }
}
