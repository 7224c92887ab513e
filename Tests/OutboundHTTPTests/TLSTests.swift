import Foundation
import OutboundHTTP
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A real TLS server: `openssl s_server -www` with a certificate from a throwaway CA.
// Immutable after init; the child process is only signalled.
final class OpenSSLServer: @unchecked Sendable {
    static let available = FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")

    let directory: URL
    let port: Int
    private let process: Process

    var url: String { "https://127.0.0.1:\(port)/" }
    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// - Parameter requireClientCertificate: mutual TLS: refuse clients without a certificate from the CA.
    init(requireClientCertificate: Bool = false) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("patrol-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Self.shell(
            """
            set -e
            cd '\(directory.path)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=patrol-test-ca 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=patrol-client 2>/dev/null
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 2>/dev/null
            """)
        port = try Self.freePort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        var arguments = [
            "s_server", "-accept", "127.0.0.1:\(port)", "-cert", directory.appendingPathComponent("server.pem").path,
            "-key", directory.appendingPathComponent("server.key").path, "-www", "-quiet",
        ]
        if requireClientCertificate {
            arguments += ["-Verify", "1", "-CAfile", directory.appendingPathComponent("ca.pem").path]
        }
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try waitUntilListening()
    }

    deinit {
        // SIGKILL: s_server ignores SIGTERM. Not waitUntilExit(): it can hang in corelibs Foundation
        // when called from a deinit on the cooperative pool; Foundation reaps the child itself.
        kill(process.processIdentifier, SIGKILL)
        try? FileManager.default.removeItem(at: directory)
    }

    static func shell(_ script: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw POSIXError(.EIO) }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 ? getsockname(fd, pointer, &length) : -1
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private func waitUntilListening() throws {
        for _ in 0..<100 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            close(fd)
            if rc == 0 { return }
            usleep(50_000)
        }
        throw POSIXError(.ETIMEDOUT)
    }
}

@Suite(.enabled(if: OpenSSLServer.available, "needs /usr/bin/openssl to run a TLS server"), .serialized)
struct TLSTests {
    @Test func verifiesTheServerWithTheGivenCA() async throws {
        let server = try await offPool { try OpenSSLServer() }
        let trusted = HTTPClient(configuration: .init(tls: TLSOptions(caFile: server.path("ca.pem"))))
        let response = try await trusted.get(server.url)
        #expect(response.status == 200)

        let untrusting = HTTPClient()
        do {
            _ = try await untrusting.get(server.url)
            Issue.record("a certificate from an unknown CA was accepted")
        } catch {
            print("untrusted certificate refused as expected: \(error)")
            #expect(error.code == .tls)
            #expect(error.message.contains(server.url))
        }

        let insecure = HTTPClient(configuration: .init(tls: TLSOptions(insecureSkipVerify: true)))
        #expect(try await insecure.get(server.url).status == 200)

        let missingCA = HTTPClient(configuration: .init(tls: TLSOptions(caFile: server.path("absent.pem"))))
        await #expect {
            _ = try await missingCA.get(server.url)
        } throws: { error in
            (error as? OutboundHTTPError)?.code == .tls
        }
    }

    @Test func presentsAClientCertificate() async throws {
        let server = try await offPool { try OpenSSLServer(requireClientCertificate: true) }
        let client = HTTPClient(
            configuration: .init(
                tls: TLSOptions(
                    caFile: server.path("ca.pem"), clientCertificateFile: server.path("client.pem"),
                    clientKeyFile: server.path("client.key"))))
        #expect(try await client.get(server.url).status == 200)

        let anonymous = HTTPClient(configuration: .init(tls: TLSOptions(caFile: server.path("ca.pem"))))
        await #expect {
            _ = try await anonymous.get(server.url)
        } throws: { error in
            let code = (error as? OutboundHTTPError)?.code
            return code == .tls || code == .transfer
        }
    }
}
