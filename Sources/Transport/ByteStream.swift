import Basics
internal import CNNG
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A plain byte stream to a TCP or TLS server, for protocols that are not nng's own (syslog over TCP and
/// TLS). It uses nng's stream API, so TLS comes from the same library and certificate handling as the
/// sensor link, and every operation completes through nng aio, never blocking the cooperative pool.
///
/// The stream is write-only for its users; a receive is kept pending so that a peer that closes the
/// connection is noticed (`isPeerClosed`) before the next write goes into a dead socket.
public final class ByteStream: Sendable {
    private let handles: StreamHandles
    private let sendIO: AsyncIO
    private let watch: PeerCloseWatch
    public let address: String

    /// Connects to `tcp://host:port` or `tls+tcp://host:port` (TLS needs `tls`; the server certificate is
    /// verified against `tls.caFile` unless `verifyServer` is off, and `serverName` defaults to the host).
    public static func connect(address: String, tls: TLSConfiguration?, timeout: Duration) async throws(TransportError)
        -> ByteStream
    {
        try validateAddress(address)
        guard address.hasPrefix("tcp") || address.hasPrefix("tls+tcp") else {
            throw TransportError(.addressInvalid, "a byte stream needs tcp:// or tls+tcp://, not '\(address)'")
        }
        var dialer: OpaquePointer?
        var rc = nng_stream_dialer_alloc(&dialer, address)
        guard rc == 0, let dialer else { throw nngError(rc, "cannot create a stream dialer", address: address) }
        let handles = StreamHandles(dialer: dialer)
        if isTLSAddress(address) {
            let config = try TLSConfigOwner(tls ?? TLSConfiguration(), server: false, address: address)
            handles.tlsConfig = config
            rc = nng_stream_dialer_set_ptr(dialer, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(config.config))
            guard rc == 0 else { throw nngError(rc, "cannot apply the TLS configuration", address: address) }
        }
        let dialIO = try AsyncIO()
        dialIO.setTimeout(milliseconds: Self.milliseconds(timeout))
        // Pointers are not Sendable; their bits are, and nng owns what they point to.
        let dialerBits = UInt(bitPattern: dialer)
        rc = await dialIO.perform { nng_stream_dialer_dial(OpaquePointer(bitPattern: dialerBits), $0) }
        guard rc == 0 else { throw nngError(rc, "cannot connect", address: address) }
        guard let stream = nng_aio_get_output(dialIO.handle, 0) else {
            throw TransportError(.internalError, "nng returned no stream after connecting (\(address))")
        }
        handles.stream = OpaquePointer(stream)
        _ = nng_stream_set_bool(OpaquePointer(stream), NNG_OPT_TCP_NODELAY, true)
        return try ByteStream(handles: handles, address: address)
    }

    private init(handles: StreamHandles, address: String) throws(TransportError) {
        self.handles = handles
        self.address = address
        self.sendIO = try AsyncIO()
        self.watch = try PeerCloseWatch(stream: handles.stream!)
    }

    deinit {
        // Closing completes the pending receive; the watch's aio is freed before the stream it reads.
        handles.close()
        watch.stop()
    }

    /// True once the peer closed or reset the connection (or sent bytes, which syslog servers never do).
    public var isPeerClosed: Bool { watch.fired }

    /// Writes all of `bytes`, or throws. A short write continues where it stopped.
    public func send(_ bytes: [UInt8], timeout: Duration) async throws(TransportError) {
        guard !bytes.isEmpty else { return }
        guard let stream = handles.stream, !handles.isClosed else {
            throw TransportError(.closed, "stream is closed (\(address))")
        }
        let streamBits = UInt(bitPattern: stream)
        // nng reads the buffer until the aio completes, so it lives in memory we own, not in an Array.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 1)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var offset = 0
        var failure: TransportError?
        sendIO.setTimeout(milliseconds: Self.milliseconds(timeout))
        while offset < bytes.count {
            let start = UInt(bitPattern: buffer + offset)
            let length = bytes.count - offset
            let rc = await sendIO.perform { aio in
                var iov = nng_iov(iov_buf: UnsafeMutableRawPointer(bitPattern: start), iov_len: length)
                _ = nng_aio_set_iov(aio, 1, &iov)
                nng_stream_send(OpaquePointer(bitPattern: streamBits), aio)
            }
            guard rc == 0 else {
                failure = nngError(rc, "cannot write to the stream", address: address)
                break
            }
            let written = nng_aio_count(sendIO.handle)
            if written == 0 {
                failure = TransportError(.connectFailed, "the stream accepted no bytes (\(address))")
                break
            }
            offset += written
        }
        // An abandoned send may still read the buffer inside nng; leaking it is the safe choice.
        if !sendIO.isAbandoned { buffer.deallocate() }
        if let failure { throw failure }
    }

    /// Closes the connection; a send in progress fails. Safe to call more than once.
    public func close() { handles.close() }

    static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    /// The host part of `scheme://host:port` (brackets of an IPv6 literal removed).
    static func host(of address: String) -> String {
        guard let range = address.range(of: "://") else { return address }
        var rest = address[range.upperBound...]
        if let colon = rest.lastIndex(of: ":") { rest = rest[..<colon] }
        if rest.hasPrefix("["), rest.hasSuffix("]") { rest = rest.dropFirst().dropLast() }
        return String(rest)
    }
}

/// Owns the dialer, the TLS configuration and the stream. Freed in the order nng needs: stream, dialer.
private final class StreamHandles: @unchecked Sendable {
    // Set once during connect, before the object is shared; `closed` guards close().
    let dialer: OpaquePointer
    var tlsConfig: TLSConfigOwner?
    var stream: OpaquePointer?
    private let closed = Atomic<Bool>(false)

    init(dialer: OpaquePointer) { self.dialer = dialer }

    var isClosed: Bool { closed.load(ordering: .acquiring) }

    func close() {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        if let stream { nng_stream_close(stream) }
        nng_stream_dialer_close(dialer)
    }

    deinit {
        close()
        if let stream { nng_stream_free(stream) }
        nng_stream_dialer_free(dialer)
    }
}

/// A receive kept pending on the stream: its completion means the peer closed (or misbehaved).
private final class PeerCloseWatch: @unchecked Sendable {
    // `handle` and `buffer` are set once in init; `firedFlag` is atomic.
    private var handle: OpaquePointer!
    private let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 1)
    private let firedFlag = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    init(stream: OpaquePointer) throws(TransportError) {
        var aio: OpaquePointer?
        let callback: @convention(c) (UnsafeMutableRawPointer?) -> Void = { argument in
            // Unretained: the aio is freed (which waits for this callback) before the object goes away.
            Unmanaged<PeerCloseWatch>.fromOpaque(argument!)._withUnsafeGuaranteedRef {
                $0.firedFlag.store(true, ordering: .releasing)
            }
        }
        let rc = nng_aio_alloc(&aio, callback, Unmanaged.passUnretained(self).toOpaque())
        guard rc == 0, let aio else {
            throw TransportError(.internalError, "cannot allocate an nng aio", cause: nngCause(rc))
        }
        handle = aio
        var iov = nng_iov(iov_buf: buffer, iov_len: 64)
        _ = nng_aio_set_iov(aio, 1, &iov)
        nng_stream_recv(stream, aio)
    }

    var fired: Bool { firedFlag.load(ordering: .acquiring) }

    /// Cancels the receive and waits for its callback; then the buffer can go.
    func stop() {
        if stopped.exchange(true, ordering: .acquiringAndReleasing) { return }
        nng_aio_stop(handle)
        nng_aio_free(handle)
        buffer.deallocate()
    }

    deinit { stop() }
}
