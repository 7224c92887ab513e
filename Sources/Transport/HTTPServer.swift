import Basics
internal import CNNG
import EventModel
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Settings for an `HTTPServer`.
public struct HTTPServerConfiguration: Sendable {
    /// `host:port` to listen on (`0.0.0.0:8443`, `[::]:8443`, `127.0.0.1:0`; port 0 picks a free one).
    public var address: String
    /// The one path served, e.g. `/audit`. Other paths get 404.
    public var path: String
    /// The one method served (POST). Other methods get 405.
    public var method: String
    /// HTTPS when set: `certificateFile` and `privateKeyFile`; with `caFile` and `requireClientCertificate`,
    /// clients must present a certificate signed by that CA.
    public var tls: TLSConfiguration?
    /// Larger bodies get 413 without being handed to the handler.
    public var maxBodyBytes: Int

    public init(
        address: String, path: String = "/", method: String = "POST", tls: TLSConfiguration? = nil,
        maxBodyBytes: Int = 16 << 20
    ) {
        self.address = address
        self.path = path.hasPrefix("/") ? path : "/" + path
        self.method = method.uppercased()
        self.tls = tls
        self.maxBodyBytes = max(0, maxBodyBytes)
    }
}

/// A request the handler is given: method and path already match the configuration.
public struct HTTPServerRequest: Sendable {
    public var method: String
    /// The request target as sent, query included.
    public var target: String
    public var contentType: String?
    public var body: [UInt8]
}

/// What the handler answers.
public struct HTTPServerResponse: Sendable, Equatable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "application/json", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    /// `{"code": status, "message": message}`: errors say what was wrong in a form scripts can read.
    public static func json(_ status: Int, _ message: String) -> HTTPServerResponse {
        let text = JSONText.serialize(.object(["code": .number(Double(status)), "message": .string(message)]))
        return HTTPServerResponse(status: status, body: Array((text + "\n").utf8))
    }
}

/// A snapshot of an `HTTPServer`'s counters.
public struct HTTPServerStats: Sendable, Hashable {
    /// Requests handed to the handler and answered.
    public var served: UInt64
    /// Requests answered by the server itself: wrong path or method, body too large, or refused while stopping.
    public var refused: UInt64
}

/// A small HTTP/1.1 server on libnng's supplemental HTTP server (plain or TLS via nng's mbedtls), for one
/// endpoint that receives POSTed documents, such as kube-apiserver's audit webhook.
///
/// The handler is async and the response goes out when it returns, so a caller can answer 200 only after
/// it has handed the body on. Path, method and body size are checked before the handler sees a request
/// (404, 405 and 413 with a JSON message). The body is read by nng's IO threads; an oversized one is read
/// and discarded up to a bound (so the client sees the 413 rather than a reset connection), beyond which
/// the connection is closed after the 413. Bodies must carry a Content-Length (nng does not read chunked
/// request bodies): a chunked one gets 411, which kube-apiserver never triggers.
///
/// Lifecycle as `RPCServer`: `init` listens (bind and TLS file errors surface there); `run()` serves until
/// `close()` or until the calling task is cancelled.
public final class HTTPServer: Sendable {
    public typealias Handler = @Sendable (HTTPServerRequest) async -> HTTPServerResponse

    public let configuration: HTTPServerConfiguration
    /// `ip:port` actually bound (the port nng picked for port 0).
    public let boundAddress: String
    private let owner: HTTPServerOwner
    private let core: HTTPServerCore
    private let handler: Handler
    private let logger: Logger
    private let running = Atomic<Bool>(false)

    public init(
        configuration: HTTPServerConfiguration, logger: Logger = Logger(label: "patrol.transport.http-server"),
        handler: @escaping Handler
    ) throws(TransportError) {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
        let core = HTTPServerCore(configuration: configuration, logger: logger)
        self.core = core
        owner = try HTTPServerOwner(configuration: configuration, core: core)
        boundAddress = owner.boundAddress
        logger.debug("http server listening", metadata: ["address": "\(boundAddress)"])
    }

    public var stats: HTTPServerStats {
        HTTPServerStats(served: core.served.load(ordering: .relaxed), refused: core.refused.load(ordering: .relaxed))
    }

    /// Serves until `close()` is called or the task is cancelled. Requests being handled when it stops are
    /// answered before it returns; then the listener and its connections are closed.
    public func run() async {
        precondition(!running.exchange(true, ordering: .relaxed), "HTTPServer.run() called twice")
        let handler = self.handler
        let core = self.core
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                for await exchange in core.exchanges {
                    group.addTask {
                        let response = await handler(exchange.request)
                        // Waiting for the write means a shutdown below never cuts a response short.
                        await exchange.respondAndWait(response)
                        core.served.add(1, ordering: .relaxed)
                    }
                }
            }
        } onCancel: {
            core.stopAccepting()
        }
        // nng_http_server_stop waits for every connection to wind down: not on the cooperative pool.
        let owner = self.owner
        let stopper = BlockingExecutor(name: "http-server-stop")
        try? await stopper.run { owner.stop() }
        stopper.shutdown()
    }

    /// Stops taking requests; `run()` answers what it holds and returns.
    public func close() {
        core.stopAccepting()
    }
}

// MARK: - Internals: nothing below is public, no C type leaves the module.

/// nng_http_server_hold shares one server per host:port, and a fresh port-0 server only learns its port when
/// it starts, so creation is serialised: two servers made at once must not end up as one.
private let serverCreation = Mutex<Void>(())

/// Owns the nng HTTP server (one hold on it), its handler and TLS configuration.
final class HTTPServerOwner: @unchecked Sendable {
    private let server: OpaquePointer
    private let tlsConfig: TLSConfigOwner?
    let boundAddress: String
    private let stopped = Atomic<Bool>(false)
    /// The handler's data pointer keeps the core alive for nng; released after the server is gone.
    private let coreReference: Unmanaged<HTTPServerCore>

    init(configuration: HTTPServerConfiguration, core: HTTPServerCore) throws(TransportError) {
        let address = configuration.address
        guard let colon = address.lastIndex(of: ":"), UInt16(address[address.index(after: colon)...]) != nil,
            colon != address.startIndex
        else {
            throw TransportError(.addressInvalid, "listen address '\(address)' must be host:port with a numeric port")
        }
        let scheme = configuration.tls == nil ? "http" : "https"
        var tlsConfig: TLSConfigOwner?
        if let tls = configuration.tls {
            guard tls.certificateFile != nil else {
                throw TransportError(.tls, "HTTPS on \(address) needs a certificate and key")
            }
            tlsConfig = try TLSConfigOwner(tls, server: true, address: address)
        }
        self.tlsConfig = tlsConfig
        let retained = Unmanaged.passRetained(core)
        coreReference = retained
        var created: OpaquePointer?
        let result: Result<String, TransportError> = serverCreation.withLock { _ in
            var url: UnsafeMutablePointer<nng_url>?
            var rc = nng_url_parse(&url, "\(scheme)://\(address)/")
            guard rc == 0, let url else {
                return .failure(
                    TransportError(.addressInvalid, "listen address '\(address)' is not valid", cause: nngCause(rc)))
            }
            defer { nng_url_free(url) }
            var server: OpaquePointer?
            rc = nng_http_server_hold(&server, url)
            guard rc == 0, let server else {
                return .failure(nngError(rc, "cannot create the HTTP server", address: address))
            }
            func fail(_ rc: Int32, _ what: String) -> Result<String, TransportError> {
                nng_http_server_release(server)
                return .failure(nngError(rc, what, address: address))
            }
            if let tlsConfig {
                rc = nng_http_server_set_tls(server, tlsConfig.config)
                guard rc == 0 else { return fail(rc, "cannot use the TLS configuration") }
            }
            var handler: OpaquePointer?
            rc = nng_http_handler_alloc(&handler, "/", httpHandlerCallback)
            guard rc == 0, let handler else { return fail(rc, "cannot allocate the HTTP handler") }
            // Every path and method come to us, so that 404/405 answers carry a JSON message too; the body
            // is read by us, so that an oversized one gets 413 (nng's own limit answers 400).
            nng_http_handler_set_method(handler, nil)
            nng_http_handler_set_tree(handler)
            nng_http_handler_collect_body(handler, false, 0)
            nng_http_handler_set_data(handler, retained.toOpaque(), nil)
            rc = nng_http_server_add_handler(server, handler)
            guard rc == 0 else {
                nng_http_handler_free(handler)
                return fail(rc, "cannot register the HTTP handler")
            }
            rc = nng_http_server_start(server)
            guard rc == 0 else { return fail(rc, "cannot listen") }
            var bound = nng_sockaddr()
            let name = nng_http_server_get_addr(server, &bound) == 0 ? formatSockaddr(bound) : address
            created = server
            return .success(name)
        }
        switch result {
        case .success(let name):
            boundAddress = name
            server = created!
        case .failure(let error):
            retained.release()
            throw error
        }
    }

    /// Stops listening and closes every connection (waiting for them); then drops our hold. Blocking.
    func stop() {
        if stopped.exchange(true, ordering: .acquiringAndReleasing) { return }
        nng_http_server_stop(server)
        nng_http_server_release(server)
    }

    deinit {
        stop()
        coreReference.release()
    }
}

/// The handler's callback, on an nng thread: inputs are the request, the handler and the connection.
private let httpHandlerCallback: @convention(c) (OpaquePointer?) -> Void = { aio in
    guard let aio, let request = nng_aio_get_input(aio, 0), let handler = nng_aio_get_input(aio, 1),
        let connection = nng_aio_get_input(aio, 2), let data = nng_http_handler_get_data(OpaquePointer(handler))
    else {
        if let aio { nng_aio_finish(aio, Int32(NNG_EINVAL.rawValue)) }
        return
    }
    let core = Unmanaged<HTTPServerCore>.fromOpaque(data).takeUnretainedValue()
    core.begin(aio: aio, request: OpaquePointer(request), connection: OpaquePointer(connection))
}

/// Routes requests from nng's threads to `HTTPServer.run()` and counts them.
final class HTTPServerCore: Sendable {
    let configuration: HTTPServerConfiguration
    let logger: Logger
    let exchanges: AsyncStream<HTTPExchange>
    private let continuation: AsyncStream<HTTPExchange>.Continuation
    private let accepting = Atomic<Bool>(true)
    let served = Atomic<UInt64>(0)
    let refused = Atomic<UInt64>(0)
    /// An oversized body up to this size is read and discarded so that the client sees the 413.
    var drainLimit: Int { max(configuration.maxBodyBytes * 4, 1 << 20) }

    init(configuration: HTTPServerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        (exchanges, continuation) = AsyncStream.makeStream(
            of: HTTPExchange.self, bufferingPolicy: .bufferingOldest(256))
    }

    func stopAccepting() {
        accepting.store(false, ordering: .relaxed)
        continuation.finish()
    }

    /// Checks what can be checked from the request line and headers, then reads the body.
    func begin(aio: OpaquePointer, request: OpaquePointer, connection: OpaquePointer) {
        let method = String(cString: nng_http_req_get_method(request))
        let target = String(cString: nng_http_req_get_uri(request))
        let contentType = nng_http_req_get_header(request, "Content-Type").map { String(cString: $0) }
        let lengthText = nng_http_req_get_header(request, "Content-Length").map { String(cString: $0) }
        let chunked = nng_http_req_get_header(request, "Transfer-Encoding") != nil
        let exchange = HTTPExchange(
            aio: aio, connection: connection, core: self,
            request: HTTPServerRequest(method: method, target: target, contentType: contentType, body: []))
        let path =
            target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/"
        let length = lengthText.flatMap { Int($0.trimmingSpaces) }
        let refusal: HTTPServerResponse?
        if path != configuration.path, path != configuration.path + "/" {
            refusal = .json(
                404, "no such endpoint: \(path) (this server serves \(configuration.method) \(configuration.path))")
        } else if method != configuration.method {
            refusal = .json(405, "method \(method) not allowed on \(path); use \(configuration.method)")
        } else if chunked || (lengthText != nil && length == nil) {
            refusal = .json(411, "the request body needs a valid Content-Length (chunked bodies are not read)")
        } else {
            refusal = nil
        }
        if let refusal {
            refused.add(1, ordering: .relaxed)
            // A body of known, bounded length is read and discarded, so the connection stays usable; any other
            // (chunked, unparsable length, huge) ends the connection after the answer.
            if let size = length ?? (lengthText == nil && !chunked ? 0 : nil), size <= drainLimit {
                exchange.readBody(length: size, discardThen: refusal)
            } else {
                exchange.respond(refusal, closeConnection: true)
            }
            return
        }
        let size = length ?? 0
        if size > configuration.maxBodyBytes {
            refused.add(1, ordering: .relaxed)
            let response = HTTPServerResponse.json(
                413, "request body of \(size) bytes exceeds the limit of \(configuration.maxBodyBytes) bytes")
            if size > drainLimit {
                exchange.respond(response, closeConnection: true)
            } else {
                exchange.readBody(length: size, discardThen: response)
            }
            return
        }
        exchange.readBody(length: size, discardThen: nil)
    }

    /// A request whose body has been read, for `run()`.
    func deliver(_ exchange: HTTPExchange) {
        guard accepting.load(ordering: .relaxed) else {
            refused.add(1, ordering: .relaxed)
            exchange.respond(.json(503, "the server is shutting down"), closeConnection: true)
            return
        }
        switch continuation.yield(exchange) {
        case .enqueued: break
        case .dropped:
            refused.add(1, ordering: .relaxed)
            exchange.respond(.json(503, "too many requests in progress; retry"))
        case .terminated:
            refused.add(1, ordering: .relaxed)
            exchange.respond(.json(503, "the server is shutting down"), closeConnection: true)
        @unknown default:
            exchange.respond(.json(503, "unavailable"))
        }
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return text
    }
}

/// One request in progress: the handler aio nng waits on, and the body being read. Its state is touched by
/// one party at a time (nng callback, then `run()`'s task), each hand-off ordered by nng's aio completion or
/// the stream, hence `@unchecked Sendable`.
final class HTTPExchange: @unchecked Sendable {
    private let handlerAio: OpaquePointer
    private let connection: OpaquePointer
    private let core: HTTPServerCore
    private(set) var request: HTTPServerRequest
    private var readAio: OpaquePointer?
    private var buffer: UnsafeMutableRawPointer?
    private var bufferSize = 0
    private var remaining = 0
    private var discardResponse: HTTPServerResponse?
    private var body: [UInt8] = []
    private let responded = Atomic<Bool>(false)
    private var writeAio: OpaquePointer?
    private var pendingResponse: OpaquePointer?
    private var closeAfterWrite = false
    private var whenWritten: (@Sendable () -> Void)?

    init(aio: OpaquePointer, connection: OpaquePointer, core: HTTPServerCore, request: HTTPServerRequest) {
        self.handlerAio = aio
        self.connection = connection
        self.core = core
        self.request = request
    }

    deinit {
        // nng_aio_reap frees without waiting, so this is safe even if the last reference goes in a callback.
        if let readAio { nng_aio_reap(readAio) }
        if let writeAio { nng_aio_reap(writeAio) }
        buffer?.deallocate()
    }

    /// Reads `length` body bytes: kept for the handler, or (with `discardThen`) thrown away before answering.
    func readBody(length: Int, discardThen response: HTTPServerResponse?) {
        discardResponse = response
        remaining = length
        guard length > 0 else { return finishedReading() }
        if response == nil { body.reserveCapacity(length) }
        bufferSize = min(length, 256 * 1024)
        buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 8)
        var aio: OpaquePointer?
        // The read keeps this exchange alive until its callback has run.
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = nng_aio_alloc(&aio, httpReadCallback, context)
        guard rc == 0, let aio else {
            Unmanaged<HTTPExchange>.fromOpaque(context).release()
            return respond(.json(500, "out of resources"), closeConnection: true)
        }
        readAio = aio
        readNext()
    }

    private func readNext() {
        var iov = nng_iov(iov_buf: buffer, iov_len: min(remaining, bufferSize))
        nng_aio_set_iov(readAio, 1, &iov)
        nng_http_conn_read_all(connection, readAio)
    }

    /// On an nng thread, after each read. Returns whether another read was started (the retain carries on).
    fileprivate func readCompleted() -> Bool {
        guard let readAio else { return false }
        let rc = nng_aio_result(readAio)
        guard rc == 0 else {
            // The client went away or the server is stopping: nothing to answer.
            if !responded.exchange(true, ordering: .acquiringAndReleasing) { nng_aio_finish(handlerAio, rc) }
            return false
        }
        let count = nng_aio_count(readAio)
        if discardResponse == nil, let buffer {
            body.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: count))
        }
        remaining -= count
        if remaining > 0 {
            readNext()
            return true
        }
        finishedReading()
        return false
    }

    private func finishedReading() {
        if let response = discardResponse { return respond(response) }
        request.body = body
        body = []
        core.deliver(self)
    }

    /// Sends `response` (once) and waits until it has been written.
    func respondAndWait(_ response: HTTPServerResponse) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            respond(response) { continuation.resume() }
        }
    }

    /// Sends `response` (once), then lets nng read the connection's next request (or closes the connection).
    ///
    /// The response is written here rather than handed to nng as the handler's output, because nng gives no
    /// signal when its own write is done, and a shutdown must not close a connection under a 200 still being
    /// written (seen: the apiserver side got an empty reply). Only once the write has completed is the
    /// handler's aio finished. `done` runs after that, on an nng thread.
    func respond(
        _ response: HTTPServerResponse, closeConnection: Bool = false, done: (@Sendable () -> Void)? = nil
    ) {
        guard !responded.exchange(true, ordering: .acquiringAndReleasing) else {
            done?()
            return
        }
        var res: OpaquePointer?
        guard nng_http_res_alloc(&res) == 0, let res else {
            nng_aio_finish(handlerAio, Int32(NNG_ENOMEM.rawValue))
            done?()
            return
        }
        nng_http_res_set_status(res, UInt16(clamping: response.status))
        nng_http_res_set_header(res, "Content-Type", response.contentType)
        if response.status == 405 { nng_http_res_set_header(res, "Allow", core.configuration.method) }
        if closeConnection { nng_http_res_set_header(res, "Connection", "close") }
        response.body.withUnsafeBytes { bytes in
            _ = nng_http_res_copy_data(res, bytes.baseAddress, bytes.count)
        }
        pendingResponse = res
        closeAfterWrite = closeConnection
        whenWritten = done
        var aio: OpaquePointer?
        // The write keeps this exchange alive until its callback has run.
        let context = Unmanaged.passRetained(self).toOpaque()
        guard nng_aio_alloc(&aio, httpWriteCallback, context) == 0, let aio else {
            Unmanaged<HTTPExchange>.fromOpaque(context).release()
            nng_http_res_free(res)
            pendingResponse = nil
            nng_aio_finish(handlerAio, Int32(NNG_ENOMEM.rawValue))
            done?()
            return
        }
        writeAio = aio
        nng_http_conn_write_res(connection, res, aio)
    }

    /// On an nng thread once the response is out (or the write failed).
    fileprivate func writeCompleted() {
        let rc = writeAio.map { nng_aio_result($0) } ?? Int32(NNG_ECLOSED.rawValue)
        if let res = pendingResponse {
            nng_http_res_free(res)
            pendingResponse = nil
        }
        // No output: we answered ourselves. An error result makes nng close the connection, which is wanted
        // after a failed write and after a response that said Connection: close.
        nng_aio_set_output(handlerAio, 0, nil)
        let result = rc != 0 ? rc : (closeAfterWrite ? Int32(NNG_ECLOSED.rawValue) : 0)
        nng_aio_finish(handlerAio, result)
        let done = whenWritten
        whenWritten = nil
        done?()
    }
}

private let httpWriteCallback: @convention(c) (UnsafeMutableRawPointer?) -> Void = { context in
    let exchange = Unmanaged<HTTPExchange>.fromOpaque(context!)
    exchange.takeUnretainedValue().writeCompleted()
    exchange.release()
}

private let httpReadCallback: @convention(c) (UnsafeMutableRawPointer?) -> Void = { context in
    let exchange = Unmanaged<HTTPExchange>.fromOpaque(context!)
    if !exchange.takeUnretainedValue().readCompleted() { exchange.release() }
}
