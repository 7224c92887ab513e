internal import CCurl
import Basics
import Foundation
public import Logging
import Synchronization

/// An HTTP/1.1 client over libcurl.
///
/// Requests run on the client's own threads (`curl_easy_perform` blocks), never on the cooperative
/// pool. Each thread reuses a curl easy handle, so connections (and TLS sessions) to the same host
/// are kept alive between requests. `maxConcurrentRequests` bounds both threads and handles.
public final class HTTPClient: Sendable {
    public struct Configuration: Sendable {
        /// Requests running at once; each has its own thread and kept-alive connections.
        public var maxConcurrentRequests: Int
        /// Used when a request has no timeout of its own.
        public var defaultTimeout: Duration
        /// Time allowed to establish the connection (TCP + TLS), within the request timeout.
        public var connectTimeout: Duration
        /// Authentication used when a request sets none.
        public var auth: HTTPAuth
        public var tls: TLSOptions
        /// Headers added to every request (a request's own header of the same name wins).
        public var defaultHeaders: HTTPHeaders
        public var followRedirects: Bool
        /// Larger response bodies fail with `.responseTooLarge`.
        public var maxResponseBodySize: Int
        /// `User-Agent` sent unless the request sets one.
        public var userAgent: String

        public init(
            maxConcurrentRequests: Int = 4, defaultTimeout: Duration = .seconds(30),
            connectTimeout: Duration = .seconds(10), auth: HTTPAuth = .none, tls: TLSOptions = TLSOptions(),
            defaultHeaders: HTTPHeaders = HTTPHeaders(), followRedirects: Bool = false,
            maxResponseBodySize: Int = 256 << 20, userAgent: String = "patrol"
        ) {
            self.maxConcurrentRequests = maxConcurrentRequests
            self.defaultTimeout = defaultTimeout
            self.connectTimeout = connectTimeout
            self.auth = auth
            self.tls = tls
            self.defaultHeaders = defaultHeaders
            self.followRedirects = followRedirects
            self.maxResponseBodySize = maxResponseBodySize
            self.userAgent = userAgent
        }
    }

    public let configuration: Configuration
    private let executor: BlockingExecutor
    private let logger: Logger
    /// Idle easy handles (addresses: pointers are not Sendable), and whether the client is shut down.
    private let pool = Mutex<(idle: [UInt], closed: Bool)>(([], false))

    private static let globalInit: CURLcode = curl_global_init(patrol_curl_global_default())

    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "patrol.http")) {
        precondition(configuration.maxConcurrentRequests > 0, "maxConcurrentRequests must be positive")
        _ = Self.globalInit
        self.configuration = configuration
        self.logger = logger
        self.executor = BlockingExecutor(name: "http-client", threadCount: configuration.maxConcurrentRequests)
    }

    deinit { shutdown() }

    /// Stops the threads and frees every handle (closing kept-alive connections). Later sends fail
    /// with `.unavailable`. Idempotent.
    public func shutdown() {
        let idle = pool.withLock { pool -> [UInt] in
            pool.closed = true
            defer { pool.idle = [] }
            return pool.idle
        }
        for address in idle { curl_easy_cleanup(UnsafeMutableRawPointer(bitPattern: address)) }
        executor.shutdown()
    }

    /// Sends `request` and returns the complete response, whatever its status.
    ///
    /// Throws when there is no response: connection refused, timeout, TLS failure, a connection
    /// closed mid-exchange. The error names the method and URL and carries curl's own text.
    public func send(_ request: HTTPRequest) async throws(OutboundHTTPError) -> HTTPResponse {
        try await run(request, onChunk: nil)
    }

    /// Sends `request` and hands a successful (2xx) response's body to `onChunk` piece by piece as it arrives,
    /// for responses that stay open, such as a Kubernetes watch.
    ///
    /// `onChunk` runs on the client's own thread, in order, and should return quickly (hand the bytes over, do not
    /// process them there): the transfer waits for it. Pieces split the body anywhere, not at lines or messages.
    /// A response with any other status is not streamed: it comes back whole, body included, as from `send`. For
    /// a 2xx the returned response has an empty body. The request's timeout bounds the whole stream (so set one
    /// longer than the stream is meant to last); cancelling the calling task aborts the transfer within about a
    /// second (curl checks between reads) and throws `.cancelled`. `maxResponseBodySize` applies only to bodies
    /// that are kept, not to streamed ones.
    public func stream(_ request: HTTPRequest, onChunk: @escaping @Sendable ([UInt8]) -> Void)
        async throws(OutboundHTTPError) -> HTTPResponse
    {
        try await run(request, onChunk: onChunk)
    }

    private func run(_ request: HTTPRequest, onChunk: (@Sendable ([UInt8]) -> Void)?)
        async throws(OutboundHTTPError) -> HTTPResponse
    {
        if Self.globalInit != CURLE_OK {
            throw OutboundHTTPError(.unavailable, "curl_global_init failed", cause: Self.cause(Self.globalInit))
        }
        if pool.withLock({ $0.closed }) {
            throw OutboundHTTPError(.unavailable, "\(request.method) \(request.url): the HTTP client is shut down")
        }
        let cancelled = CancellationFlag()
        let result: Result<HTTPResponse, OutboundHTTPError>
        do {
            result = try await withTaskCancellationHandler {
                try await executor.run { [self] in self.perform(request, cancelled: cancelled, onChunk: onChunk) }
            } onCancel: {
                cancelled.cancel()
            }
        } catch {
            throw OutboundHTTPError(
                .unavailable, "\(request.method) \(request.url): request could not run", cause: .error(error))
        }
        return try result.get()
    }

    /// Convenience: GET `url`.
    public func get(_ url: String, headers: HTTPHeaders = HTTPHeaders()) async throws(OutboundHTTPError)
        -> HTTPResponse
    {
        try await send(HTTPRequest(method: .get, url: url, headers: headers))
    }

    // MARK: - on the client's threads

    private func checkout() -> UnsafeMutableRawPointer? {
        if let address = pool.withLock({ $0.idle.popLast() }) { return UnsafeMutableRawPointer(bitPattern: address) }
        return curl_easy_init()
    }

    private func checkin(_ handle: UnsafeMutableRawPointer) {
        let address = UInt(bitPattern: Int(bitPattern: handle))
        let keep = pool.withLock { pool -> Bool in
            guard !pool.closed else { return false }
            pool.idle.append(address)
            return true
        }
        if !keep { curl_easy_cleanup(handle) }
    }

    private func perform(
        _ request: HTTPRequest, cancelled: CancellationFlag, onChunk: (@Sendable ([UInt8]) -> Void)?
    ) -> Result<HTTPResponse, OutboundHTTPError> {
        let label = "\(request.method) \(request.url)"
        guard let handle = checkout() else {
            return .failure(OutboundHTTPError(.unavailable, "\(label): curl_easy_init failed"))
        }
        defer { checkin(handle) }
        // Keeps live connections, DNS and TLS session caches; clears every option.
        curl_easy_reset(handle)

        let transfer = Transfer(
            maxBodySize: configuration.maxResponseBodySize, cancelled: cancelled, logger: logger, label: label,
            onChunk: onChunk)
        let context = Unmanaged.passRetained(transfer)
        defer { context.release() }
        let opaque = context.toOpaque()

        var errorBuffer = [CChar](repeating: 0, count: Int(patrol_curl_error_size()) + 1)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }

        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorPointer in
            var failed: CURLcode = CURLE_OK
            func set(_ rc: CURLcode) { if failed == CURLE_OK && rc != CURLE_OK { failed = rc } }

            set(patrol_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorPointer.baseAddress))
            set(patrol_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
            set(patrol_curl_setopt_string(handle, CURLOPT_URL, request.url))
            set(patrol_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
            set(patrol_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Self.milliseconds(request.timeout ?? configuration.defaultTimeout)))
            set(patrol_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(configuration.connectTimeout)))
            set(patrol_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, configuration.followRedirects ? 1 : 0))

            // Method and body.
            switch request.method {
            case .get where request.body.isEmpty:
                set(patrol_curl_setopt_long(handle, CURLOPT_HTTPGET, 1))
            case .head:
                set(patrol_curl_setopt_long(handle, CURLOPT_NOBODY, 1))
            default:
                if !request.body.isEmpty || request.method == .post || request.method == .put
                    || request.method == .patch
                {
                    set(patrol_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
                    request.body.withUnsafeBytes { bytes in
                        // COPYPOSTFIELDS copies, so the body need not outlive this call.
                        let pointer = bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
                        set(patrol_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: pointer)))
                    }
                }
                if request.method != .post {
                    set(patrol_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method.rawValue))
                }
            }

            // Headers: defaults, then the request's, then auth.
            var headers = configuration.defaultHeaders
            for field in request.headers { headers[field.name] = nil }
            for field in request.headers { headers.add(name: field.name, value: field.value) }
            if !headers.contains("User-Agent") { headers["User-Agent"] = configuration.userAgent }
            // curl would otherwise add "Expect: 100-continue" and a form Content-Type to bodies.
            if !headers.contains("Expect") { headers["Expect"] = "" }
            if !request.body.isEmpty && !headers.contains("Content-Type") { headers["Content-Type"] = "" }
            switch request.auth ?? configuration.auth {
            case .none: break
            case .basic(let username, let password):
                set(patrol_curl_setopt_long(handle, CURLOPT_HTTPAUTH, Int(bitPattern: patrol_curlauth_basic())))
                set(patrol_curl_setopt_string(handle, CURLOPT_USERNAME, username))
                set(patrol_curl_setopt_string(handle, CURLOPT_PASSWORD, password))
            case .bearer(let token): headers["Authorization"] = "Bearer \(token)"
            case .apiKey(let key): headers["Authorization"] = "ApiKey \(key)"
            case .header(let name, let value): headers[name] = value
            }
            for field in headers {
                // "Name:" removes a header curl would add; "Name;" sends it empty.
                let line = field.value.isEmpty ? "\(field.name):" : "\(field.name): \(field.value)"
                if line.contains("\r") || line.contains("\n") {
                    failed = CURLE_BAD_FUNCTION_ARGUMENT
                    continue
                }
                headerList = curl_slist_append(headerList, line)
            }
            set(patrol_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList))

            // TLS.
            let tls = configuration.tls
            if let caFile = tls.caFile { set(patrol_curl_setopt_string(handle, CURLOPT_CAINFO, caFile)) }
            if let cert = tls.clientCertificateFile { set(patrol_curl_setopt_string(handle, CURLOPT_SSLCERT, cert)) }
            if let key = tls.clientKeyFile { set(patrol_curl_setopt_string(handle, CURLOPT_SSLKEY, key)) }
            if let password = tls.clientKeyPassword {
                set(patrol_curl_setopt_string(handle, CURLOPT_KEYPASSWD, password))
            }
            if tls.insecureSkipVerify {
                set(patrol_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 0))
                set(patrol_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 0))
            }

            // Callbacks, with the transfer as context.
            set(patrol_curl_setopt_data_fn(handle, CURLOPT_WRITEFUNCTION, Transfer.onBody))
            set(patrol_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, opaque))
            set(patrol_curl_setopt_data_fn(handle, CURLOPT_HEADERFUNCTION, Transfer.onHeader))
            set(patrol_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, opaque))
            set(patrol_curl_setopt_xferinfo_fn(handle, Transfer.onProgress))
            set(patrol_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, opaque))
            set(patrol_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0))
            if logger.logLevel <= .trace {
                set(patrol_curl_setopt_debug_fn(handle, Transfer.onDebug))
                set(patrol_curl_setopt_pointer(handle, CURLOPT_DEBUGDATA, opaque))
                set(patrol_curl_setopt_long(handle, CURLOPT_VERBOSE, 1))
            }
            guard failed == CURLE_OK else { return failed }
            return curl_easy_perform(handle)
        }

        guard code == CURLE_OK else {
            let curlText = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return .failure(Self.error(code, label: label, detail: curlText, transfer: transfer))
        }
        var status = 0
        _ = patrol_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        var effective: UnsafeMutablePointer<CChar>?
        _ = patrol_curl_getinfo_string(handle, CURLINFO_EFFECTIVE_URL, &effective)
        return .success(
            HTTPResponse(
                status: status, headers: transfer.headers, body: transfer.body,
                url: effective.map { String(cString: $0) } ?? request.url))
    }

    private static func error(_ code: CURLcode, label: String, detail: String, transfer: Transfer)
        -> OutboundHTTPError
    {
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        let kind: OutboundHTTPError.Code
        switch code {
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT, CURLE_BAD_FUNCTION_ARGUMENT:
            kind = .invalidRequest
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            kind = .connect
        case CURLE_OPERATION_TIMEDOUT:
            kind = .timeout
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
            CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CLIENTCERT, CURLE_SSL_ENGINE_NOTFOUND,
            CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_CRL_BADFILE:
            kind = .tls
        case CURLE_WRITE_ERROR where transfer.tooLarge:
            return OutboundHTTPError(
                .responseTooLarge, "\(label): response body exceeds \(transfer.maxBodySize) bytes",
                cause: cause(code))
        case CURLE_ABORTED_BY_CALLBACK where transfer.cancelled.isCancelled:
            kind = .cancelled
        default:
            kind = .transfer
        }
        return OutboundHTTPError(kind, "\(label) failed: \(text)", cause: cause(code))
    }

    static func cause(_ code: CURLcode) -> Cause {
        .cCode(library: "libcurl", code: Int32(bitPattern: code.rawValue), text: String(cString: curl_easy_strerror(code)))
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}

/// Set when the awaiting task is cancelled; the progress callback then aborts the transfer.
final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func cancel() { flag.store(true, ordering: .relaxed) }
    var isCancelled: Bool { flag.load(ordering: .relaxed) }
}

/// The state of one transfer, reached from curl's callbacks through `Unmanaged`.
/// Used by one thread at a time (the one running `curl_easy_perform`).
final class Transfer {
    var body: [UInt8] = []
    var headers = HTTPHeaders()
    var tooLarge = false
    /// The status of the response being received (from its status line), 0 before one arrives.
    var status = 0
    /// Set for `HTTPClient.stream`: 2xx bodies go here instead of into `body`.
    let onChunk: (@Sendable ([UInt8]) -> Void)?
    let maxBodySize: Int
    let cancelled: CancellationFlag
    let logger: Logger
    let label: String

    init(
        maxBodySize: Int, cancelled: CancellationFlag, logger: Logger, label: String,
        onChunk: (@Sendable ([UInt8]) -> Void)? = nil
    ) {
        self.onChunk = onChunk
        self.maxBodySize = maxBodySize
        self.cancelled = cancelled
        self.logger = logger
        self.label = label
    }

    static func from(_ context: UnsafeMutableRawPointer?) -> Transfer {
        Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    }

    static let onBody: patrol_curl_data_fn = { data, size, count, context in
        let transfer = Transfer.from(context)
        let length = size * count
        if let onChunk = transfer.onChunk, (200..<300).contains(transfer.status) {
            if let data, length > 0 { onChunk(Array(UnsafeRawBufferPointer(start: data, count: length))) }
            return length
        }
        guard transfer.body.count + length <= transfer.maxBodySize else {
            transfer.tooLarge = true
            return 0
        }
        if let data, length > 0 {
            transfer.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
        }
        return length
    }

    static let onHeader: patrol_curl_data_fn = { data, size, count, context in
        let transfer = Transfer.from(context)
        let length = size * count
        guard let data else { return length }
        let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
            .trimmingCharacters(in: .newlines)
        if line.hasPrefix("HTTP/") {
            // A new response head (after 100 Continue or a redirect): keep only the last one's headers.
            transfer.headers = HTTPHeaders()
            let fields = line.split(separator: " ", maxSplits: 2)
            transfer.status = fields.count > 1 ? Int(fields[1]) ?? 0 : 0
        } else if let colon = line.firstIndex(of: ":") {
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            transfer.headers.add(name: name, value: value)
        }
        return length
    }

    static let onProgress: patrol_curl_xferinfo_fn = { context, _, _, _, _ in
        Transfer.from(context).cancelled.isCancelled ? 1 : 0
    }

    static let onDebug: patrol_curl_debug_fn = { _, type, data, size, context in
        let transfer = Transfer.from(context)
        let kind: String
        switch type {
        case CURLINFO_TEXT: kind = "info"
        case CURLINFO_HEADER_IN: kind = "header_in"
        case CURLINFO_HEADER_OUT: kind = "header_out"
        case CURLINFO_DATA_IN: kind = "data_in"
        case CURLINFO_DATA_OUT: kind = "data_out"
        default: return 0  // TLS records: only sizes would be meaningful
        }
        var metadata: Logger.Metadata = ["request": "\(transfer.label)", "kind": "\(kind)", "bytes": "\(size)"]
        if type == CURLINFO_TEXT || type == CURLINFO_HEADER_IN || type == CURLINFO_HEADER_OUT, let data {
            let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
                .trimmingCharacters(in: .newlines)
            metadata["text"] = "\(text)"
        }
        transfer.logger.trace("curl", metadata: metadata)
        return 0
    }
}
