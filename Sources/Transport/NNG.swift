import Basics
internal import CNNG
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Internal owners of nng handles. Nothing here is public: no C type leaves the module.

/// nng's error numbers that the transport distinguishes.
enum NNGErrno {
    static let closed = Int32(NNG_ECLOSED.rawValue)
    static let timedOut = Int32(NNG_ETIMEDOUT.rawValue)
    static let cancelled = Int32(NNG_ECANCELED.rawValue)
    static let messageSize = Int32(NNG_EMSGSIZE.rawValue)
    static let connectionRefused = Int32(NNG_ECONNREFUSED.rawValue)
    static let unreachable = Int32(NNG_EUNREACHABLE.rawValue)
    static let addressInvalid = Int32(NNG_EADDRINVAL.rawValue)
    static let addressInUse = Int32(NNG_EADDRINUSE.rawValue)
    static let peerAuth = Int32(NNG_EPEERAUTH.rawValue)
    static let crypto = Int32(NNG_ECRYPTO.rawValue)
    static let notSupported = Int32(NNG_ENOTSUP.rawValue)
    static let state = Int32(NNG_ESTATE.rawValue)
    static let protocolError = Int32(NNG_EPROTO.rawValue)
    static let connectionShutdown = Int32(NNG_ECONNSHUT.rawValue)
    static let connectionReset = Int32(NNG_ECONNRESET.rawValue)
    static let connectionAborted = Int32(NNG_ECONNABORTED.rawValue)
}

/// The `Cause` for an nng return code, with `nng_strerror`'s text.
func nngCause(_ rc: Int32) -> Cause {
    .cCode(library: "nng", code: rc, text: String(cString: nng_strerror(rc)))
}

/// Maps an nng return code to a `TransportError`, naming what was being done and where.
func nngError(_ rc: Int32, _ what: String, address: String) -> TransportError {
    let code: TransportError.Code
    switch rc {
    case NNGErrno.timedOut: code = .timeout
    case NNGErrno.closed: code = .closed
    case NNGErrno.cancelled: code = .cancelled
    case NNGErrno.messageSize: code = .messageTooLarge
    case NNGErrno.addressInvalid, NNGErrno.notSupported: code = .addressInvalid
    case NNGErrno.connectionRefused, NNGErrno.unreachable, NNGErrno.addressInUse, NNGErrno.connectionShutdown,
        NNGErrno.connectionReset, NNGErrno.connectionAborted:
        code = .connectFailed
    case NNGErrno.peerAuth, NNGErrno.crypto: code = .tls
    case NNGErrno.protocolError: code = .protocolError
    default: code = .internalError
    }
    return TransportError(code, "\(what) (\(address))", cause: nngCause(rc))
}

/// Checks an address before nng sees it, so that a typo gets a message rather than a bare EADDRINVAL.
func validateAddress(_ address: String) throws(TransportError) {
    let schemes = ["tcp://", "tcp4://", "tcp6://", "ipc://", "inproc://", "tls+tcp://", "tls+tcp4://", "tls+tcp6://"]
    guard let scheme = schemes.first(where: { address.hasPrefix($0) }) else {
        throw TransportError(
            .addressInvalid,
            "address '\(address)' must start with tcp://, ipc://, inproc:// or tls+tcp://")
    }
    let rest = address.dropFirst(scheme.count)
    if rest.isEmpty {
        throw TransportError(.addressInvalid, "address '\(address)' has nothing after '\(scheme)'")
    }
    if scheme.contains("tcp") {
        guard let colon = rest.lastIndex(of: ":"), let port = UInt16(rest[rest.index(after: colon)...]) else {
            throw TransportError(.addressInvalid, "address '\(address)' needs host:port with a numeric port")
        }
        _ = port
    }
}

func isTLSAddress(_ address: String) -> Bool { address.hasPrefix("tls+") }

// MARK: - Messages

/// Copies an nng message's body into Swift bytes and frees the message.
func takeMessageBytes(_ msg: OpaquePointer) -> [UInt8] {
    let length = nng_msg_len(msg)
    let bytes: [UInt8]
    if length == 0 {
        bytes = []
    } else {
        let body = nng_msg_body(msg)!
        bytes = [UInt8](UnsafeRawBufferPointer(start: body, count: length))
    }
    nng_msg_free(msg)
    return bytes
}

/// Allocates an nng message holding `bytes`.
func makeMessage(_ bytes: [UInt8]) -> (OpaquePointer?, Int32) {
    var msg: OpaquePointer?
    let rc = nng_msg_alloc(&msg, bytes.count)
    guard rc == 0, let msg else { return (nil, rc) }
    if !bytes.isEmpty {
        bytes.withUnsafeBytes { source in
            nng_msg_body(msg)!.copyMemory(from: source.baseAddress!, byteCount: source.count)
        }
    }
    return (msg, 0)
}

// MARK: - Asynchronous I/O

/// Owns one `nng_aio`. Its completion callback (on an nng thread) resumes the async caller, so no
/// blocking nng call ever runs on the cooperative pool.
final class AsyncIO: @unchecked Sendable {
    // `state` guards the continuation and the cancel flag; `handle` is set once in init.
    private struct State {
        var continuation: CheckedContinuation<Int32, Never>?
        var cancelled = false
        /// The timeout given to nng for the next operation, -1 for none.
        var timeoutMilliseconds: Int32 = -1
        /// nng never completed an operation, even after a cancel: the handle may still be in use inside
        /// nng, so it is neither reused nor freed (freeing would block until nng lets go of it).
        var abandoned = false
    }
    private let state = Mutex(State())
    private(set) var handle: OpaquePointer!

    init() throws(TransportError) {
        var aio: OpaquePointer?
        let callback: @convention(c) (UnsafeMutableRawPointer?) -> Void = { argument in
            // No strong reference here: if the callback held the last one, releasing it would run deinit
            // on this nng thread, and deinit's nng_aio_free waits for this very callback (a deadlock seen
            // when a caller gave up on an operation). The aio lives until nng_aio_free has returned, which
            // waits for this callback, so the object is valid for its duration.
            Unmanaged<AsyncIO>.fromOpaque(argument!)._withUnsafeGuaranteedRef { $0.completed() }
        }
        let rc = nng_aio_alloc(&aio, callback, Unmanaged.passUnretained(self).toOpaque())
        guard rc == 0, let aio else {
            throw TransportError(.internalError, "cannot allocate an nng aio", cause: nngCause(rc))
        }
        handle = aio
    }

    deinit {
        // Waits for a running callback to finish; never called from the callback itself.
        if !state.withLock({ $0.abandoned }) { nng_aio_free(handle) }
    }

    /// True once an operation had to be given up on; the owner must not reuse this aio.
    var isAbandoned: Bool { state.withLock { $0.abandoned } }

    private func completed() {
        let continuation = state.withLock { state in
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: nng_aio_result(handle))
    }

    /// Sets the timeout of the next operation, in milliseconds (`-1`: none).
    func setTimeout(milliseconds: Int32) {
        state.withLock { $0.timeoutMilliseconds = milliseconds }
        nng_aio_set_timeout(handle, milliseconds)
    }

    /// Starts an operation with `start(aio)` and suspends until its callback fires; returns nng's result.
    ///
    /// With a timeout set, a watchdog backs nng's own timer: seen here, a REQ context send made while the
    /// peer was gone for about a minute never completed, which left a sensor waiting forever. If nng has
    /// not answered a second after its deadline, the operation is cancelled; if even that does not
    /// complete it, the caller gets a timeout and this aio is abandoned.
    func perform(_ start: @escaping @Sendable (OpaquePointer) -> Void) async -> Int32 {
        let timeout = state.withLock { $0.timeoutMilliseconds }
        guard timeout >= 0 else { return await performUnguarded(start) }
        return await withTaskGroup(of: Int32?.self) { group in
            group.addTask { await self.performUnguarded(start) }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int(timeout) + 1_000))
                if Task.isCancelled { return nil }
                nng_aio_cancel(self.handle)
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { return nil }
                self.abandon()
                return nil
            }
            var result = NNGErrno.timedOut
            while let next = await group.next() {
                if let next {
                    result = next
                    break
                }
            }
            group.cancelAll()
            return result
        }
    }

    private func abandon() {
        let continuation = state.withLock { state in
            defer { state.continuation = nil }
            if state.continuation != nil { state.abandoned = true }
            return state.continuation
        }
        continuation?.resume(returning: NNGErrno.timedOut)
    }

    private func performUnguarded(_ start: (OpaquePointer) -> Void) async -> Int32 {
        state.withLock { $0.cancelled = false }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
                state.withLock { $0.continuation = continuation }
                start(handle)
                if state.withLock({ $0.cancelled }) { nng_aio_cancel(handle) }
            }
        } onCancel: {
            state.withLock { $0.cancelled = true }
            nng_aio_cancel(handle)
        }
    }

    /// Takes the message a completed receive left in the aio.
    func takeMessage() -> [UInt8]? {
        guard let msg = nng_aio_get_msg(handle) else { return nil }
        nng_aio_set_msg(handle, nil)
        return takeMessageBytes(msg)
    }

    /// The pipe id of the message a completed receive left in the aio (read before `takeMessage`).
    func messagePipe() -> nng_pipe? {
        guard let msg = nng_aio_get_msg(handle) else { return nil }
        return nng_msg_get_pipe(msg)
    }

    /// After a failed send the message still belongs to us.
    func freeUnsentMessage() {
        if let msg = nng_aio_get_msg(handle) {
            nng_aio_set_msg(handle, nil)
            nng_msg_free(msg)
        }
    }

    func setMessage(_ msg: OpaquePointer) { nng_aio_set_msg(handle, msg) }
}

// MARK: - Contexts

/// Owns one `nng_ctx` and the aio its operations use: one request in flight.
final class ContextChannel: @unchecked Sendable {
    let context: nng_ctx
    let aio: AsyncIO
    let address: String

    init(socket: nng_socket, address: String) throws(TransportError) {
        var context = nng_ctx()
        let rc = nng_ctx_open(&context, socket)
        guard rc == 0 else { throw nngError(rc, "cannot open an nng context", address: address) }
        self.context = context
        self.address = address
        do {
            self.aio = try AsyncIO()
        } catch {
            nng_ctx_close(context)
            throw error
        }
    }

    deinit { nng_ctx_close(context) }

    /// Sends `bytes` on this context.
    func send(_ bytes: [UInt8]) async -> Int32 {
        let (msg, rc) = makeMessage(bytes)
        guard let msg else { return rc }
        aio.setMessage(msg)
        let context = self.context
        let result = await aio.perform { nng_ctx_send(context, $0) }
        // An abandoned send may still own the message inside nng; then it is not ours to free.
        if result != 0 && !aio.isAbandoned { aio.freeUnsentMessage() }
        return result
    }

    /// Receives one message on this context.
    func receive() async -> (rc: Int32, bytes: [UInt8], pipe: nng_pipe?) {
        let context = self.context
        let rc = await aio.perform { nng_ctx_recv(context, $0) }
        guard rc == 0 else { return (rc, [], nil) }
        let pipe = aio.messagePipe()
        return (0, aio.takeMessage() ?? [], pipe)
    }
}

// MARK: - Sockets

/// Connection events seen through `nng_pipe_notify`, shared by clients and servers.
final class PipeEvents: Sendable {
    let added = Atomic<UInt64>(0)
    let removed = Atomic<UInt64>(0)
    let current = Atomic<Int64>(0)
}

/// Owns one nng socket (REQ or REP), closing it on deinit.
final class SocketOwner: @unchecked Sendable {
    enum Kind { case request, reply }
    let socket: nng_socket
    let pipeEvents = PipeEvents()
    private let closed = Atomic<Bool>(false)

    init(_ kind: Kind, address: String) throws(TransportError) {
        var socket = nng_socket()
        let rc = kind == .request ? nng_req0_open(&socket) : nng_rep0_open(&socket)
        guard rc == 0 else { throw nngError(rc, "cannot open an nng socket", address: address) }
        self.socket = socket
        let callback: nng_pipe_cb = { _, event, argument in
            let events = Unmanaged<PipeEvents>.fromOpaque(argument!).takeUnretainedValue()
            switch event {
            case NNG_PIPE_EV_ADD_POST:
                events.added.add(1, ordering: .relaxed)
                events.current.add(1, ordering: .relaxed)
            case NNG_PIPE_EV_REM_POST:
                events.removed.add(1, ordering: .relaxed)
                events.current.subtract(1, ordering: .relaxed)
            default: break
            }
        }
        let argument = Unmanaged.passUnretained(pipeEvents).toOpaque()
        nng_pipe_notify(socket, NNG_PIPE_EV_ADD_POST, callback, argument)
        nng_pipe_notify(socket, NNG_PIPE_EV_REM_POST, callback, argument)
    }

    func setSize(_ option: String, _ value: Int, address: String) throws(TransportError) {
        let rc = nng_socket_set_size(socket, option, value)
        guard rc == 0 else { throw nngError(rc, "cannot set socket option \(option)", address: address) }
    }

    func setMilliseconds(_ option: String, _ value: Int32, address: String) throws(TransportError) {
        let rc = nng_socket_set_ms(socket, option, value)
        guard rc == 0 else { throw nngError(rc, "cannot set socket option \(option)", address: address) }
    }

    /// Closes the socket; pending operations complete with NNG_ECLOSED. Safe to call more than once.
    func close() {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        nng_close(socket)
    }

    var isClosed: Bool { closed.load(ordering: .acquiring) }

    deinit { close() }
}

// MARK: - TLS

/// Owns an `nng_tls_config` built from certificate files.
final class TLSConfigOwner: @unchecked Sendable {
    let config: OpaquePointer

    init(_ settings: TLSConfiguration, server: Bool, address: String) throws(TransportError) {
        var config: OpaquePointer?
        var rc = nng_tls_config_alloc(&config, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT)
        guard rc == 0, let config else { throw nngError(rc, "cannot allocate a TLS configuration", address: address) }
        self.config = config
        func check(_ rc: Int32, _ what: String) throws(TransportError) {
            guard rc == 0 else {
                throw TransportError(.tls, "\(what) (\(address))", cause: nngCause(rc))
            }
        }
        if let caFile = settings.caFile {
            rc = nng_tls_config_ca_file(config, caFile)
            try check(rc, "cannot load CA file '\(caFile)'")
        }
        if let certificateFile = settings.certificateFile {
            // nng wants certificate and key in one PEM file; with separate files we join them in memory.
            let keyFile = settings.privateKeyFile ?? certificateFile
            if keyFile == certificateFile {
                rc = nng_tls_config_cert_key_file(config, certificateFile, nil)
                try check(rc, "cannot load certificate and key from '\(certificateFile)'")
            } else {
                guard let certificate = readWholeFile(certificateFile) else {
                    throw TransportError(.tls, "cannot read certificate file '\(certificateFile)' (\(address))")
                }
                guard let key = readWholeFile(keyFile) else {
                    throw TransportError(.tls, "cannot read private key file '\(keyFile)' (\(address))")
                }
                rc = nng_tls_config_own_cert(config, certificate, key, nil)
                try check(rc, "cannot use certificate '\(certificateFile)' with key '\(keyFile)'")
            }
        }
        // A client checks the name it dialed unless told another: a certificate that merely chains to the CA
        // (another sensor's, say) must not pass for the collector's.
        if let serverName = settings.serverName ?? (server ? nil : ByteStream.host(of: address)) {
            rc = nng_tls_config_server_name(config, serverName)
            try check(rc, "cannot set TLS server name '\(serverName)'")
        }
        let mode: nng_tls_auth_mode
        if server {
            mode = settings.requireClientCertificate ? NNG_TLS_AUTH_MODE_REQUIRED : NNG_TLS_AUTH_MODE_NONE
        } else {
            mode = settings.verifyServer ? NNG_TLS_AUTH_MODE_REQUIRED : NNG_TLS_AUTH_MODE_NONE
        }
        rc = nng_tls_config_auth_mode(config, mode)
        try check(rc, "cannot set TLS authentication mode")
    }

    deinit { nng_tls_config_free(config) }
}

/// Reads a whole file as a C string (PEM is text), or nil.
func readWholeFile(_ path: String) -> String? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 8192)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
        if count < chunk.count { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}

// MARK: - Peer addresses

func formatSockaddr(_ address: nng_sockaddr) -> String {
    var address = address
    switch Int(address.s_family) {
    case Int(NNG_AF_INET.rawValue):
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        var raw = in_addr(s_addr: address.s_in.sa_addr)
        inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
        return "\(text.withUnsafeBytes { cString(in: $0) }):\(UInt16(bigEndian: address.s_in.sa_port))"
    case Int(NNG_AF_INET6.rawValue):
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafeBytes(of: &address.s_in6.sa_addr) { raw in
            _ = inet_ntop(AF_INET6, raw.baseAddress, &text, socklen_t(text.count))
        }
        return "[\(text.withUnsafeBytes { cString(in: $0) })]:\(UInt16(bigEndian: address.s_in6.sa_port))"
    case Int(NNG_AF_IPC.rawValue):
        return withUnsafeBytes(of: &address.s_ipc.sa_path) { "ipc://" + cString(in: $0) }
    case Int(NNG_AF_INPROC.rawValue):
        return withUnsafeBytes(of: &address.s_inproc.sa_name) { "inproc://" + cString(in: $0) }
    default:
        return "unknown"
    }
}

/// What the server knows about the peer of a request.
func peerInfo(pipe: nng_pipe?) -> PeerInfo {
    guard let pipe, nng_pipe_id(pipe) > 0 else { return PeerInfo(connectionID: 0, remoteAddress: "unknown") }
    var address = nng_sockaddr()
    let remote = nng_pipe_get_addr(pipe, NNG_OPT_REMADDR, &address) == 0 ? formatSockaddr(address) : "unknown"
    var verified = false
    let hasTLS = nng_pipe_get_bool(pipe, NNG_OPT_TLS_VERIFIED, &verified) == 0
    var uid: UInt64 = 0
    // Only ipc pipes have the option; nng reads it from the socket's SO_PEERCRED.
    let hasUID = remote.hasPrefix("ipc://") && nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, &uid) == 0
    return PeerInfo(
        connectionID: UInt32(nng_pipe_id(pipe)), remoteAddress: remote, tlsVerified: hasTLS && verified,
        peerUID: hasUID ? UInt32(truncatingIfNeeded: uid) : nil)
}

/// The NUL-terminated text in a fixed-size C char array.
func cString(in raw: UnsafeRawBufferPointer) -> String {
    let bytes = raw.bindMemory(to: UInt8.self)
    let end = bytes.firstIndex(of: 0) ?? bytes.count
    return String(decoding: UnsafeBufferPointer(rebasing: bytes[0..<end]), as: UTF8.self)
}

/// Finds the statistics scope named `scope` ("listener", "dialer", "socket") whose `id` child equals
/// `id`, and reads the named counters. (nng 1.5's `nng_stat_find_listener` matches the first listener
/// whatever the id, so we walk the tree ourselves.)
func readScopeCounters(scope: String, id: Int32, names: [String]) -> [String: UInt64] {
    var root: OpaquePointer?
    guard nng_stats_get(&root) == 0, let root else { return [:] }
    defer { nng_stats_free(root) }
    func childValue(_ node: OpaquePointer, _ name: String) -> UInt64? {
        var child = nng_stat_child(node)
        while let current = child {
            if String(cString: nng_stat_name(current)) == name { return nng_stat_value(current) }
            child = nng_stat_next(current)
        }
        return nil
    }
    func search(_ node: OpaquePointer) -> OpaquePointer? {
        if String(cString: nng_stat_name(node)) == scope, childValue(node, "id") == UInt64(id) { return node }
        var child = nng_stat_child(node)
        while let current = child {
            if let found = search(current) { return found }
            child = nng_stat_next(current)
        }
        return nil
    }
    guard let node = search(root) else { return [:] }
    var values: [String: UInt64] = [:]
    for name in names { values[name] = childValue(node, name) ?? 0 }
    return values
}
