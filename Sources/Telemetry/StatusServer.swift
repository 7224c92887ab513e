import Basics
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A small HTTP/1.1 server for the status endpoint: `GET /metrics` (Prometheus text format), `GET /healthz`
/// (200 while the process serves) and `GET /readyz` (200 when every readiness check of `Telemetry` holds,
/// else 503 naming the failing ones).
///
/// It serves one request per connection (`Connection: close`), one connection at a time, on a dedicated
/// thread with blocking sockets: scrapes are rare and small, so this is enough, it keeps swift-nio out, and
/// it never touches the cooperative pool. A client that stalls is cut off by a receive timeout.
public final class StatusServer: Sendable {
    /// The address it listens on, `host:port` with the port actually bound.
    public let boundAddress: String
    public let port: Int
    private let listener: Int32
    private let telemetry: Telemetry
    private let logger: Logger
    private let stopped = Mutex(false)
    private let finished = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Binds `address` (`host:port`; an IPv4 host, `localhost`, or empty for all interfaces; port 0 picks
    /// one) and starts serving on its own thread. Bind errors surface here.
    public init(address: String, telemetry: Telemetry, logger: Logger) throws(TelemetryError) {
        self.telemetry = telemetry
        self.logger = logger
        let (host, port) = try Self.parse(address)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TelemetryError(.listen, "cannot create a socket for \(address)", cause: Self.errnoCause()) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr.s_addr = host
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let cause = Self.errnoCause()
            close(fd)
            throw TelemetryError(.listen, "cannot listen on \(address)", cause: cause)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        self.port = Int(UInt16(bigEndian: socketAddress.sin_port))
        let hostText = address[..<(address.lastIndex(of: ":") ?? address.startIndex)]
        boundAddress = "\(hostText.isEmpty ? "0.0.0.0" : String(hostText)):\(self.port)"
        let thread = Thread { [self] in self.acceptLoop() }
        thread.name = "patrol-status-http"
        thread.start()
    }

    deinit { stop() }

    /// Stops accepting. Idempotent; the serving thread closes the listener as it leaves.
    public func stop() {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        // Wakes accept(); the thread itself closes the fd, so its number cannot be reused under accept().
        if first { _ = shutdown(listener, Int32(SHUT_RDWR)) }
    }

    /// Returns once the serving thread has left (after `stop()`).
    public func waitUntilStopped() async {
        await withCheckedContinuation { continuation in
            let resumeNow = finished.withLock { state -> Bool in
                if state.done { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    static func parse(_ address: String) throws(TelemetryError) -> (host: in_addr_t, port: UInt16) {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw TelemetryError(.invalidAddress, "status address '\(address)' is not host:port (e.g. 127.0.0.1:9464)")
        }
        let host = String(address[..<colon])
        switch host {
        case "", "0.0.0.0": return (INADDR_ANY.bigEndian, port)
        case "localhost": return (inet_addr("127.0.0.1"), port)
        default:
            var parsed = in_addr()
            guard inet_pton(AF_INET, host, &parsed) == 1 else {
                throw TelemetryError(.invalidAddress, "status address '\(address)': '\(host)' is not an IPv4 address")
            }
            return (parsed.s_addr, port)
        }
    }

    private static func errnoCause() -> Cause {
        let code = errno
        return .cCode(library: "libc", code: code, text: String(cString: strerror(code)))
    }

    // MARK: - serving thread

    private func acceptLoop() {
        defer {
            close(listener)
            let waiters = finished.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.done = true
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            if stopped.withLock({ $0 }) {
                close(fd)
                return
            }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            serve(fd)
            close(fd)
        }
    }

    private func serve(_ fd: Int32) {
        guard let head = Self.readHead(fd) else { return }
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            Self.write(fd, Self.response(400, "text/plain; charset=utf-8", Array("malformed request\n".utf8), head: false))
            return
        }
        let method = String(parts[0])
        let path = String(parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
        let headOnly = method == "HEAD"
        guard method == "GET" || headOnly else {
            Self.write(fd, Self.response(405, "text/plain; charset=utf-8", Array("only GET and HEAD\n".utf8), head: false))
            return
        }
        Self.write(fd, route(path, headOnly: headOnly))
    }

    private func route(_ path: String, headOnly: Bool) -> [UInt8] {
        let text = "text/plain; charset=utf-8"
        switch path {
        case "/metrics":
            return Self.response(200, "text/plain; version=0.0.4; charset=utf-8", telemetry.render(), head: headOnly)
        case "/healthz":
            return Self.response(200, text, Array("ok\n".utf8), head: headOnly)
        case "/readyz":
            let (ready, checks) = telemetry.readiness
            var body = ready ? "ready\n" : "not ready\n"
            for (name, ok) in checks.sorted(by: { $0.key < $1.key }) { body += "\(name): \(ok ? "ok" : "not ready")\n" }
            return Self.response(ready ? 200 : 503, text, Array(body.utf8), head: headOnly)
        default:
            return Self.response(404, text, Array("not found; try /metrics, /healthz or /readyz\n".utf8), head: headOnly)
        }
    }

    /// The request head up to the blank line; nil when the client closes, stalls or sends more than 16 KiB.
    private static func readHead(_ fd: Int32) -> String? {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while buffer.count <= 16 << 10 {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return nil }
            buffer += chunk[..<count]
            if let text = String(bytes: buffer, encoding: .utf8), let end = text.range(of: "\r\n\r\n") {
                return String(text[..<end.lowerBound])
            }
        }
        return nil
    }

    private static func response(_ status: Int, _ contentType: String, _ body: [UInt8], head: Bool) -> [UInt8] {
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"]
        var text = "HTTP/1.1 \(status) \(reason[status] ?? "Status")\r\n"
        text += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        if status == 405 { text += "Allow: GET, HEAD\r\n" }
        text += "\r\n"
        return Array(text.utf8) + (head ? [] : body)
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return }
            offset += sent
        }
    }
}

/// Runs a `StatusServer` as a Service: it serves from start-up until graceful shutdown, then stops.
public struct StatusService: Service {
    public let server: StatusServer

    public init(server: StatusServer) {
        self.server = server
    }

    public func run() async throws {
        try? await gracefulShutdown()
        server.stop()
        await server.waitUntilStopped()
    }
}
