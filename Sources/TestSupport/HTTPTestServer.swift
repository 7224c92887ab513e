import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A small real HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for tests.
///
/// One route handler closure answers every request; the server records every request it parsed.
/// It speaks keep-alive (HTTP/1.1 default, `Connection: close` honoured), `Content-Length` and chunked
/// request bodies, `Expect: 100-continue`, and can answer with a chunked body. A handler can
/// simulate a slow server (`delay`) and broken ones (close without answering, close mid-body).
///
/// Each connection is served on its own thread; handlers run on that thread, so a handler may block
/// (sleep, wait on a lock) and must be `Sendable`. Higher-level fake servers (Elasticsearch API,
/// Kubernetes API) are built by giving it a handler that routes on `method` and `path`.
public final class HTTPTestServer: Sendable {
    /// A parsed request as the server received it.
    public struct Request: Sendable, CustomStringConvertible {
        public var method: String
        /// The path without the query, percent-encoding kept (e.g. `/index/_doc/a%2Fb`).
        public var path: String
        /// The raw query string after `?`, or "" when there is none.
        public var query: String
        /// Query items, percent- and `+`-decoded, in order.
        public var queryItems: [(name: String, value: String)]
        public var version: String
        /// Header fields in the order received.
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]
        /// Which connection it came on (1, 2, ...): equal ids mean the connection was reused.
        public var connectionID: Int
        /// Whether the body came with `Transfer-Encoding: chunked`.
        public var wasChunked: Bool

        /// The first value of a header, compared case-insensitively.
        public func header(_ name: String) -> String? {
            headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
        }

        /// The first value of a query item.
        public func queryItem(_ name: String) -> String? {
            queryItems.first { $0.name == name }?.value
        }

        public var bodyText: String { String(decoding: body, as: UTF8.self) }

        public var description: String { "\(method) \(path)\(query.isEmpty ? "" : "?" + query) (\(body.count) bytes)" }
    }

    /// What to send back.
    public struct Response: Sendable {
        /// How the server ends the exchange.
        public enum Action: Sendable {
            /// Send the response normally.
            case respond
            /// Close the connection without sending anything (a crashed or reset server).
            case closeWithoutResponse
            /// Send the status line, headers and half of the body, then close (a torn response).
            case closeMidBody
            /// Send the head with a chunked body that the function writes, on the connection's thread, for as
            /// long as it likes (a Kubernetes watch, a log follow): each `write` goes out at once as one chunk.
            /// When it returns the connection closes, after the last chunk (a complete body) if it returned true,
            /// without (a torn stream) if false. `body` and `chunked` are ignored.
            case stream(@Sendable (StreamWriter) -> Bool)
        }

        public var status: Int
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]
        /// Wait this long before answering (a slow server, for timeouts).
        public var delay: Duration?
        /// Send the body with `Transfer-Encoding: chunked` instead of `Content-Length`.
        public var chunked: Bool
        /// Close the connection after this response even if the client wants keep-alive.
        public var closeConnection: Bool
        public var action: Action

        public init(
            status: Int = 200, headers: [(name: String, value: String)] = [], body: [UInt8] = [],
            delay: Duration? = nil, chunked: Bool = false, closeConnection: Bool = false, action: Action = .respond
        ) {
            self.status = status
            self.headers = headers
            self.body = body
            self.delay = delay
            self.chunked = chunked
            self.closeConnection = closeConnection
            self.action = action
        }

        /// A text body (`text/plain` unless `contentType` says otherwise).
        public static func text(_ text: String, status: Int = 200, contentType: String = "text/plain; charset=utf-8")
            -> Response
        {
            Response(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
        }

        /// A JSON body from already-encoded text.
        public static func json(_ json: String, status: Int = 200) -> Response {
            text(json, status: status, contentType: "application/json")
        }

        /// Close the connection without answering.
        public static var drop: Response { Response(action: .closeWithoutResponse) }
    }

    public typealias Handler = @Sendable (Request) -> Response

    /// Writes a streamed (`Response.Action.stream`) body, one chunk per `write`.
    public final class StreamWriter: Sendable {
        private let fd: Int32
        private let stopped: @Sendable () -> Bool
        private let broken = Atomic<Bool>(false)

        init(fd: Int32, stopped: @escaping @Sendable () -> Bool) {
            self.fd = fd
            self.stopped = stopped
        }

        /// Whether the client may still read: false once a write failed (the client went away) or the server was
        /// stopped. A producer that waits for something to send checks this so it ends with the test.
        public var isOpen: Bool { !broken.load(ordering: .relaxed) && !stopped() }

        /// Sends `bytes` as one chunk now; false when the client is gone.
        @discardableResult
        public func write(_ bytes: [UInt8]) -> Bool {
            guard !bytes.isEmpty else { return isOpen }
            var framed = Array(String(bytes.count, radix: 16).utf8) + [13, 10]
            framed += bytes
            framed += [13, 10]
            let ok = Connection(fd: fd).write(framed)
            if !ok { broken.store(true, ordering: .relaxed) }
            return ok
        }

        @discardableResult
        public func write(_ text: String) -> Bool { write(Array(text.utf8)) }
    }

    private struct State {
        var handler: Handler
        var requests: [Request] = []
        var connections: [Int: Int32] = [:]
        var nextConnectionID = 1
        var acceptedConnections = 0
        var stopped = false
    }

    private let state: Mutex<State>
    private let listener: Int32
    /// The port the server listens on (127.0.0.1).
    public let port: Int
    /// `http://127.0.0.1:<port>`
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// Requests with bodies larger than this get 413.
    public let maxBodySize: Int

    /// Starts listening at once. `handler` answers every request; change it later with `setHandler`. `port` 0
    /// takes an ephemeral port; a given one lets a test bring a server back where a stopped one was.
    public init(
        port: Int = 0, maxBodySize: Int = 64 << 20, handler: @escaping Handler = { _ in Response(status: 404) }
    ) throws {
        self.maxBodySize = maxBodySize
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(errnoCode) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            let error = POSIXError(errnoCode)
            close(fd)
            throw error
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.listener = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
        self.state = Mutex(State(handler: handler))
        let thread = Thread { [self] in self.acceptLoop() }
        thread.name = "http-test-server-\(port)"
        thread.start()
    }

    deinit { stop() }

    /// Replaces the handler for requests that arrive from now on.
    public func setHandler(_ handler: @escaping Handler) {
        state.withLock { $0.handler = handler }
    }

    /// Every request parsed so far, in arrival order.
    public var requests: [Request] { state.withLock { $0.requests } }

    /// How many TCP connections were accepted (keep-alive reuse shows as fewer connections than requests).
    public var acceptedConnections: Int { state.withLock { $0.acceptedConnections } }

    /// Forgets the recorded requests.
    public func clearRequests() { state.withLock { $0.requests.removeAll() } }

    /// Stops accepting and closes every open connection. Idempotent.
    ///
    /// The server's threads keep it alive until this is called: call it (e.g. in a `defer`) when done.
    public func stop() {
        state.withLock { state in
            guard !state.stopped else { return }
            state.stopped = true
            // Under the lock: a connection thread removes its fd (under the lock) before closing it,
            // so no fd shut down here can have been closed and reused by someone else.
            for fd in state.connections.values { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
            // Wakes accept(); the accept thread closes the listener itself, so its fd number cannot be
            // reused while that thread may still call accept() on it.
            _ = Glibc.shutdown(listener, Int32(SHUT_RDWR))
        }
    }

    // MARK: - serving

    private func acceptLoop() {
        defer { close(listener) }
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            let id = state.withLock { state -> Int? in
                guard !state.stopped else { return nil }
                let id = state.nextConnectionID
                state.nextConnectionID += 1
                state.acceptedConnections += 1
                state.connections[id] = fd
                return id
            }
            guard let id else {
                close(fd)
                return
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let thread = Thread { [self] in
                var connection = Connection(fd: fd)
                self.serve(&connection, id: id)
                state.withLock { _ = $0.connections.removeValue(forKey: id) }
                close(fd)
            }
            thread.name = "http-test-conn-\(id)"
            thread.start()
        }
    }

    private func serve(_ connection: inout Connection, id: Int) {
        while true {
            let request: Request
            switch readRequest(&connection, id: id) {
            case .closed: return
            case .bad(let status, let reason):
                connection.write(Self.render(Response.text(reason + "\n", status: status), head: false, close: true))
                return
            case .request(let parsed): request = parsed
            }
            let handler = state.withLock { state -> Handler in
                state.requests.append(request)
                return state.handler
            }
            let response = handler(request)
            if let delay = response.delay { Self.sleep(delay) }
            let clientCloses =
                request.header("Connection")?.lowercased().contains("close") == true
                || (request.version == "HTTP/1.0"
                    && request.header("Connection")?.lowercased().contains("keep-alive") != true)
            let close = response.closeConnection || clientCloses
            switch response.action {
            case .closeWithoutResponse:
                return
            case .closeMidBody:
                var torn = response
                torn.chunked = false
                let bytes = Self.render(torn, head: request.method == "HEAD", close: false)
                let headerEnd = bytes.count - torn.body.count
                connection.write(Array(bytes[..<(headerEnd + torn.body.count / 2)]))
                return
            case .stream(let producer):
                var head = response
                head.body = []
                head.chunked = true
                let bytes = Self.render(head, head: true, close: true)
                guard connection.write(bytes) else { return }
                let writer = StreamWriter(fd: connection.fd) { [self] in self.state.withLock { $0.stopped } }
                // The producer says how the stream ends: true sends the last chunk (a complete body), false just
                // closes (a broken one).
                if producer(writer) { connection.write(Array("0\r\n\r\n".utf8)) }
                return
            case .respond:
                if !connection.write(Self.render(response, head: request.method == "HEAD", close: close)) { return }
                if close { return }
            }
        }
    }

    private enum ReadResult {
        case request(Request)
        case closed
        case bad(Int, String)
    }

    private func readRequest(_ connection: inout Connection, id: Int) -> ReadResult {
        guard let headEnd = connection.readUntil(Connection.headerTerminator, limit: 64 << 10) else {
            return connection.buffer.isEmpty ? .closed : .bad(431, "request head too large or incomplete")
        }
        let head = String(decoding: connection.take(headEnd), as: UTF8.self)
        _ = connection.take(4)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true)
        guard requestLine.count == 3 else { return .bad(400, "malformed request line") }
        var headers: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return .bad(400, "malformed header line") }
            headers.append(
                (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        func header(_ name: String) -> String? {
            headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
        }
        let target = String(requestLine[1])
        let path: String
        let query: String
        if let mark = target.firstIndex(of: "?") {
            path = String(target[..<mark])
            query = String(target[target.index(after: mark)...])
        } else {
            path = target
            query = ""
        }
        if header("Expect")?.lowercased() == "100-continue" {
            connection.write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        var body: [UInt8] = []
        let chunked = header("Transfer-Encoding")?.lowercased().contains("chunked") == true
        if chunked {
            while true {
                guard let lineEnd = connection.readUntil(Connection.lineTerminator, limit: 1024) else {
                    return .bad(400, "truncated chunk size")
                }
                let sizeLine = String(decoding: connection.take(lineEnd), as: UTF8.self)
                _ = connection.take(2)
                let sizeText = sizeLine.split(separator: ";").first.map(String.init) ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                    return .bad(400, "malformed chunk size")
                }
                if size == 0 {
                    // Trailers, then the final CRLF.
                    while let end = connection.readUntil(Connection.lineTerminator, limit: 64 << 10) {
                        let isLast = end == 0
                        _ = connection.take(end + 2)
                        if isLast { break }
                    }
                    break
                }
                guard body.count + size <= maxBodySize else { return .bad(413, "request body too large") }
                guard connection.readExactly(size + 2) else { return .bad(400, "truncated chunk") }
                body += connection.take(size)
                _ = connection.take(2)
            }
        } else if let lengthText = header("Content-Length") {
            guard let length = Int(lengthText), length >= 0 else { return .bad(400, "malformed Content-Length") }
            guard length <= maxBodySize else { return .bad(413, "request body too large") }
            guard connection.readExactly(length) else { return .bad(400, "truncated body") }
            body = connection.take(length)
        }
        return .request(
            Request(
                method: String(requestLine[0]), path: path, query: query, queryItems: Self.parseQuery(query),
                version: String(requestLine[2]), headers: headers, body: body, connectionID: id, wasChunked: chunked))
    }

    static func parseQuery(_ query: String) -> [(name: String, value: String)] {
        guard !query.isEmpty else { return [] }
        return query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                let spaced = text.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    static func render(_ response: Response, head: Bool, close: Bool) -> [UInt8] {
        var text = "HTTP/1.1 \(response.status) \(reasonPhrase(response.status))\r\n"
        var headers = response.headers
        func has(_ name: String) -> Bool {
            headers.contains { $0.name.caseInsensitiveCompare(name) == .orderedSame }
        }
        if response.chunked {
            if !has("Transfer-Encoding") { headers.append(("Transfer-Encoding", "chunked")) }
        } else if !has("Content-Length") {
            headers.append(("Content-Length", String(response.body.count)))
        }
        if close && !has("Connection") { headers.append(("Connection", "close")) }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        var bytes = Array(text.utf8)
        guard !head else { return bytes }
        if response.chunked {
            var offset = 0
            // Split into a few chunks so clients really have to reassemble.
            let chunkSize = max(1, (response.body.count + 2) / 3)
            while offset < response.body.count {
                let end = min(offset + chunkSize, response.body.count)
                bytes += Array(String(end - offset, radix: 16).utf8) + [13, 10]
                bytes += response.body[offset..<end]
                bytes += [13, 10]
                offset = end
            }
            bytes += Array("0\r\n\r\n".utf8)
        } else {
            bytes += response.body
        }
        return bytes
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 410: "Gone"
        case 413: "Content Too Large"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status \(status)"
        }
    }

    static func sleep(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var spec = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&spec, &remaining) != 0 && errno == EINTR { spec = remaining }
    }
}

private var errnoCode: POSIXErrorCode { POSIXErrorCode(rawValue: errno) ?? .EIO }

/// A socket with a read buffer.
private struct Connection {
    static let headerTerminator: [UInt8] = [13, 10, 13, 10]
    static let lineTerminator: [UInt8] = [13, 10]

    let fd: Int32
    var buffer: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    /// Reads more bytes; false on EOF or error.
    mutating func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            buffer += chunk[..<count]
            return true
        }
    }

    /// The index of `terminator` in the buffer, reading until it appears (nil on EOF or past `limit`).
    mutating func readUntil(_ terminator: [UInt8], limit: Int) -> Int? {
        var searchFrom = 0
        while true {
            if buffer.count >= terminator.count {
                var index = searchFrom
                while index + terminator.count <= buffer.count {
                    if buffer[index] == terminator[0] && Array(buffer[index..<(index + terminator.count)]) == terminator {
                        return index
                    }
                    index += 1
                }
                searchFrom = max(0, buffer.count - terminator.count + 1)
            }
            guard buffer.count <= limit, fill() else { return nil }
        }
    }

    mutating func readExactly(_ count: Int) -> Bool {
        while buffer.count < count {
            guard fill() else { return false }
        }
        return true
    }

    mutating func take(_ count: Int) -> [UInt8] {
        let taken = Array(buffer[..<count])
        buffer.removeFirst(count)
        return taken
    }

    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }
}
