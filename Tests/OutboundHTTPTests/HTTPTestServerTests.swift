import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Exercises the test server at the byte level, for what HTTPClient never sends (chunked bodies,
/// HTTP/1.0, malformed requests).
@Suite struct HTTPTestServerTests {
    /// Sends raw bytes and reads until the server closes the connection.
    func exchange(_ port: Int, _ text: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(rc == 0)
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            received += buffer[..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    @Test func decodesChunkedRequestBodies() throws {
        let server = try HTTPTestServer { request in .text("got \(request.body.count): \(request.bodyText)") }
        defer { server.stop() }
        let reply = try exchange(
            server.port,
            "POST /ingest?a=1&b=two+words HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
        #expect(reply.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(reply.hasSuffix("got 12: hello, world"))
        #expect(reply.contains("Connection: close"))
        let request = try #require(server.requests.first)
        #expect(request.wasChunked)
        #expect(request.queryItem("b") == "two words")
    }

    @Test func http10ClosesAndKeepAliveServesManyRequests() throws {
        let server = try HTTPTestServer { request in .text(request.path) }
        defer { server.stop() }
        let reply = try exchange(
            server.port,
            "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                + "GET /three HTTP/1.0\r\n\r\n")
        #expect(reply.components(separatedBy: "HTTP/1.1 200 OK").count == 4)
        #expect(reply.hasSuffix("/three"))
        #expect(server.requests.map(\.path) == ["/one", "/two", "/three"])
        #expect(server.requests[1].bodyText == "abc")
        #expect(Set(server.requests.map(\.connectionID)).count == 1)
    }

    @Test func malformedRequestGets400() throws {
        let server = try HTTPTestServer { _ in .text("never") }
        defer { server.stop() }
        let reply = try exchange(server.port, "NONSENSE\r\n\r\n")
        #expect(reply.hasPrefix("HTTP/1.1 400 Bad Request"))
        #expect(server.requests.isEmpty)
    }

    @Test func expectContinueIsHonoured() throws {
        let server = try HTTPTestServer { request in .text(request.bodyText) }
        defer { server.stop() }
        let reply = try exchange(
            server.port,
            "PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        #expect(reply.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"))
        #expect(reply.hasSuffix("ok"))
    }
}
