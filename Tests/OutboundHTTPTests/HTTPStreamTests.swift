import Foundation
import OutboundHTTP
import Synchronization
import Testing
import TestSupport

/// `HTTPClient.stream`: a long-lived response's body arrives piece by piece while the server is still sending.
@Suite struct HTTPStreamTests {
    final class Received: Sendable {
        let bytes = Mutex<[UInt8]>([])
        var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
    }

    /// Waits (bounded, not a measured threshold) on the server's thread.
    static func serverWait(_ condition: () -> Bool) -> Bool {
        for _ in 0..<2000 {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return false
    }

    @Test("chunks reach the caller while the response is still open")
    func chunksArriveBeforeTheEnd() async throws {
        let received = Received()
        let sawFirst = Mutex(false)
        let server = try HTTPTestServer { _ in
            HTTPTestServer.Response(
                headers: [("Content-Type", "application/json")],
                action: .stream { writer in
                    writer.write("{\"n\":1}\n")
                    // The second piece goes only once the client has the first: a client that waited for the
                    // whole body would never get it.
                    let delivered = Self.serverWait { received.text.contains("{\"n\":1}") }
                    sawFirst.withLock { $0 = delivered }
                    writer.write("{\"n\":2}\n")
                    return true
                })
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let response = try await client.stream(HTTPRequest(url: server.baseURL + "/watch")) { chunk in
            received.bytes.withLock { $0 += chunk }
        }
        #expect(response.status == 200 && response.body.isEmpty)
        #expect(sawFirst.withLock { $0 })
        #expect(received.text == "{\"n\":1}\n{\"n\":2}\n")
    }

    @Test("an error status is not streamed: its body comes back whole")
    func errorStatusComesBackWhole() async throws {
        let server = try HTTPTestServer { _ in .json("{\"kind\":\"Status\",\"code\":410}", status: 410) }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let received = Received()
        let response = try await client.stream(HTTPRequest(url: server.baseURL + "/watch")) { chunk in
            received.bytes.withLock { $0 += chunk }
        }
        #expect(response.status == 410)
        #expect(response.bodyText.contains("410"))
        #expect(received.text.isEmpty)
    }

    @Test("a stream cut without its last chunk is a transfer error")
    func tornStreamFails() async throws {
        let server = try HTTPTestServer { _ in
            HTTPTestServer.Response(action: .stream { writer in
                writer.write("partial\n")
                return false
            })
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        await #expect(throws: OutboundHTTPError.self) {
            _ = try await client.stream(HTTPRequest(url: server.baseURL + "/watch")) { _ in }
        }
    }

    @Test("cancelling the caller aborts an open stream")
    func cancellationEndsTheStream() async throws {
        let server = try HTTPTestServer { _ in
            HTTPTestServer.Response(action: .stream { writer in
                writer.write("open\n")
                // Stays open until the client goes away (or the test's server stops).
                _ = Self.serverWait { !writer.write("\n") }
                return false
            })
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let received = Received()
        let task = Task { () async throws -> HTTPResponse in
            try await client.stream(HTTPRequest(url: server.baseURL + "/watch", timeout: .seconds(120))) { chunk in
                received.bytes.withLock { $0 += chunk }
            }
        }
        for _ in 0..<400 where !received.text.hasPrefix("open") { try await Task.sleep(for: .milliseconds(50)) }
        #expect(received.text.hasPrefix("open"))
        task.cancel()
        let result = await task.result
        guard case .failure(let error) = result, let failure = error as? OutboundHTTPError else {
            Issue.record("expected a cancelled stream, got \(result)")
            return
        }
        #expect(failure.code == .cancelled)
    }
}
