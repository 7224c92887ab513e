import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real `prometheus-alertmanager` (Debian's package, installed by scripts/bootstrap) on a loopback port,
/// with a minimal configuration in a temporary directory and clustering off.
///
/// `stop()` and `start()` bring it down and up again on the same port, as an outage. Alertmanager keeps
/// alerts in memory only, so after a restart it holds just what it has been sent since.
public final class AlertmanagerProcess: @unchecked Sendable {
    public static let binary = "/usr/bin/prometheus-alertmanager"
    public static var available: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    public struct LaunchError: Error, CustomStringConvertible {
        public let description: String
    }

    public let port: UInt16
    public let directory: TemporaryDirectory
    /// `https://` when started with TLS files, else `http://`.
    public let baseURL: String
    private let webConfigPath: String?
    // Guarded by `lock`: replaced on each start.
    private let lock = NSLock()
    private var process: Process?

    /// - Parameter tls: the server certificate and key to serve HTTPS with (`--web.config.file`).
    public init(tls: (certificate: String, key: String)? = nil) throws {
        directory = try TemporaryDirectory(prefix: "patrol-alertmanager")
        port = Ports.freeTCPPort()
        let config = """
            route:
              receiver: blackhole
              group_wait: 1h
            receivers:
              - name: blackhole
            """
        try config.write(toFile: directory.file("alertmanager.yml"), atomically: true, encoding: .utf8)
        if let tls {
            let web = "tls_server_config:\n  cert_file: \(tls.certificate)\n  key_file: \(tls.key)\n"
            try web.write(toFile: directory.file("web.yml"), atomically: true, encoding: .utf8)
            webConfigPath = directory.file("web.yml")
            baseURL = "https://127.0.0.1:\(port)"
        } else {
            webConfigPath = nil
            baseURL = "http://127.0.0.1:\(port)"
        }
        try start()
    }

    deinit {
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
        directory.remove()
    }

    public var isRunning: Bool { lock.withLock { process?.isRunning ?? false } }

    /// Starts the process (again) on the same port and waits until `/-/ready` answers 200.
    public func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        var arguments = [
            "--config.file=\(directory.file("alertmanager.yml"))", "--storage.path=\(directory.file("data"))",
            "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address=", "--log.level=warn",
        ]
        if let webConfigPath { arguments.append("--web.config.file=\(webConfigPath)") }
        process.arguments = arguments
        let log = directory.file("alertmanager.log")
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        lock.withLock { self.process = process }
        // Readiness: with TLS the plain probe gets a TLS alert instead of 200, so there a listening port will do.
        for _ in 0..<300 {
            guard process.isRunning else { break }
            if webConfigPath == nil {
                if LoopbackHTTP.status(port: port, path: "/-/ready") == 200 { return }
            } else if LoopbackHTTP.connects(port: port) {
                return
            }
            usleep(50_000)
        }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        kill(process.processIdentifier, SIGKILL)
        throw LaunchError(description: "alertmanager did not become ready on port \(port): \(output.suffix(2000))")
    }

    /// Stops the process (SIGTERM, then SIGKILL) and waits until it is gone and the port is closed.
    public func stop() {
        guard let process = lock.withLock({ self.process }) else { return }
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        for _ in 0..<100 where process.isRunning { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        while process.isRunning { usleep(10_000) }
    }

    /// SIGKILL, as a crash.
    public func kill9() {
        guard let process = lock.withLock({ self.process }) else { return }
        kill(process.processIdentifier, SIGKILL)
        while process.isRunning { usleep(10_000) }
    }
}

/// A minimal blocking HTTP/1.0 client for readiness probes in TestSupport (which must not depend on the
/// project's own HTTP client it is used to test).
enum LoopbackHTTP {
    static func connects(port: UInt16) -> Bool {
        let fd = connectedSocket(port: port)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    /// The status code of `GET path`, or nil when nothing answered.
    static func status(port: UInt16, path: String) -> Int? {
        let fd = connectedSocket(port: port)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count
        else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 12 else { return nil }
        let head = String(decoding: buffer[0..<count], as: UTF8.self)
        let parts = head.split(separator: " ", maxSplits: 2)
        return parts.count >= 2 ? Int(parts[1]) : nil
    }

    private static func connectedSocket(port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 {
            close(fd)
            return -1
        }
        return fd
    }
}
