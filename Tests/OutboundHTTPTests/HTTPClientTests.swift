import Foundation
import Logging
import OutboundHTTP
import Synchronization
import Testing
import TestSupport

/// Collects log records, to check that curl's debug output reaches swift-log.
final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    // `records` is guarded by its Mutex; the LogHandler properties are set only before use.
    let records = Mutex<[(Logger.Level, String, Logger.Metadata)]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        records.withLock { $0.append((event.level, event.message.description, event.metadata ?? [:])) }
    }
}

@Suite struct HTTPClientTests {
    @Test func getRoundTrip() async throws {
        let server = try HTTPTestServer { request in
            .init(status: 200, headers: [("Content-Type", "text/plain"), ("X-Served-By", "test")],
                body: Array("hello \(request.path)".utf8))
        }
        defer { server.stop() }
        let client = HTTPClient()
        let response = try await client.get("\(server.baseURL)/greeting?name=a%20b&x=1")
        #expect(response.status == 200)
        #expect(response.bodyText == "hello /greeting")
        #expect(response.headers["x-served-by"] == "test")
        #expect(response.headers["Content-Length"] == "15")
        let request = try #require(server.requests.first)
        #expect(request.method == "GET")
        #expect(request.path == "/greeting")
        #expect(request.query == "name=a%20b&x=1")
        #expect(request.queryItem("name") == "a b")
        #expect(request.header("User-Agent") == "patrol")
        #expect(request.body.isEmpty)
    }

    @Test func postRoundTripEchoesBody() async throws {
        let server = try HTTPTestServer { request in
            .init(status: 201, headers: [("Content-Type", request.header("Content-Type") ?? "none")], body: request.body)
        }
        defer { server.stop() }
        let client = HTTPClient()
        let payload = Array(#"{"event":"exec","pid":42}"#.utf8)
        let response = try await client.send(
            HTTPRequest(method: .post, url: "\(server.baseURL)/_bulk", headers: ["Content-Type": "application/json"],
                body: payload))
        #expect(response.status == 201)
        #expect(response.body == payload)
        #expect(response.headers["Content-Type"] == "application/json")
        let request = try #require(server.requests.first)
        #expect(request.method == "POST")
        #expect(request.header("Content-Length") == String(payload.count))
        #expect(request.header("Expect") == nil)

        // A large body: no 100-continue round trip, exact bytes.
        let large = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let echoed = try await client.send(HTTPRequest(method: .put, url: "\(server.baseURL)/blob", body: large))
        #expect(echoed.body == large)
        #expect(server.requests.last?.method == "PUT")
        #expect(server.requests.last?.header("Content-Type") == nil)
    }

    @Test func otherMethods() async throws {
        let server = try HTTPTestServer { request in .text("\(request.method) \(request.bodyText)") }
        defer { server.stop() }
        let client = HTTPClient()
        let delete = try await client.send(HTTPRequest(method: .delete, url: "\(server.baseURL)/index"))
        #expect(delete.bodyText == "DELETE ")
        let head = try await client.send(HTTPRequest(method: .head, url: "\(server.baseURL)/index"))
        #expect(head.status == 200 && head.body.isEmpty)
        let getWithBody = try await client.send(
            HTTPRequest(method: .get, url: "\(server.baseURL)/_search", body: Array(#"{"query":{}}"#.utf8)))
        #expect(getWithBody.bodyText == #"GET {"query":{}}"#)
        let patch = try await client.send(HTTPRequest(method: .patch, url: "\(server.baseURL)/x", body: [65]))
        #expect(patch.bodyText == "PATCH A")
        #expect(server.requests.map(\.method) == ["DELETE", "HEAD", "GET", "PATCH"])
    }

    @Test func errorStatusesAreResponses() async throws {
        let server = try HTTPTestServer { request in
            request.path == "/missing" ? .json(#"{"error":"not found"}"#, status: 404) : .text("boom", status: 503)
        }
        defer { server.stop() }
        let client = HTTPClient()
        #expect(try await client.get("\(server.baseURL)/missing").status == 404)
        let unavailable = try await client.get("\(server.baseURL)/other")
        #expect(unavailable.status == 503 && !unavailable.isSuccess && unavailable.bodyText == "boom")
    }

    @Test func headersAndAuthentication() async throws {
        let server = try HTTPTestServer { _ in .text("ok") }
        defer { server.stop() }
        let client = HTTPClient(
            configuration: .init(
                auth: .basic(username: "elastic", password: "s3cret:x"),
                defaultHeaders: ["X-Default": "d", "X-Override": "default"]))
        _ = try await client.send(
            HTTPRequest(url: "\(server.baseURL)/a", headers: ["X-Override": "request", "X-Extra": "e"]))
        _ = try await client.send(HTTPRequest(url: "\(server.baseURL)/b", auth: .bearer(token: "tok.en")))
        _ = try await client.send(HTTPRequest(url: "\(server.baseURL)/c", auth: .apiKey("aWQ6a2V5")))
        _ = try await client.send(HTTPRequest(url: "\(server.baseURL)/d", auth: .header(name: "X-API-Key", value: "k")))
        _ = try await client.send(HTTPRequest(url: "\(server.baseURL)/e", auth: HTTPAuth.none))
        let requests = server.requests
        #expect(requests.count == 5)
        let basic = "Basic " + Data("elastic:s3cret:x".utf8).base64EncodedString()
        #expect(requests[0].header("Authorization") == basic)
        #expect(requests[0].header("X-Default") == "d")
        #expect(requests[0].header("X-Override") == "request")
        #expect(requests[0].header("X-Extra") == "e")
        #expect(requests[1].header("Authorization") == "Bearer tok.en")
        #expect(requests[2].header("Authorization") == "ApiKey aWQ6a2V5")
        #expect(requests[3].header("X-API-Key") == "k")
        #expect(requests[3].header("Authorization") == nil)
        #expect(requests[4].header("Authorization") == nil)
    }

    @Test func connectionsAreReused() async throws {
        let server = try HTTPTestServer { _ in .text("ok") }
        defer { server.stop() }
        let client = HTTPClient(configuration: .init(maxConcurrentRequests: 1))
        for index in 0..<5 { _ = try await client.get("\(server.baseURL)/\(index)") }
        #expect(server.requests.count == 5)
        #expect(server.acceptedConnections == 1)
        #expect(Set(server.requests.map(\.connectionID)).count == 1)

        // A server that closes after each response forces a new connection, transparently
        // (the first of these still goes over the kept-alive connection).
        server.setHandler { _ in .init(status: 200, body: [1], closeConnection: true) }
        for index in 0..<3 { _ = try await client.get("\(server.baseURL)/close/\(index)") }
        #expect(server.acceptedConnections == 3)
    }

    @Test func timeoutNamesTheURL() async throws {
        let server = try HTTPTestServer { _ in .init(status: 200, body: [1], delay: .seconds(3)) }
        defer { server.stop() }
        let client = HTTPClient()
        let url = "\(server.baseURL)/slow"
        do {
            // The server answers after 3 s, so only the 300 ms timeout can end this call with an error.
            _ = try await client.send(HTTPRequest(url: url, timeout: .milliseconds(300)))
            Issue.record("a slow request did not time out")
        } catch {
            #expect(error.code == .timeout)
            #expect(error.message.contains(url))
            #expect(error.message.contains("GET"))
            #expect("\(error)".contains("Timeout was reached"))
        }
        server.stop()
    }

    @Test func connectionRefusedNamesTheURL() async throws {
        let server = try HTTPTestServer()
        defer { server.stop() }
        let url = "\(server.baseURL)/nobody-home"
        server.stop()
        let client = HTTPClient()
        do {
            _ = try await client.get(url)
            Issue.record("a request to a closed port succeeded")
        } catch {
            print("connection refused as expected: \(error)")
            #expect(error.code == .connect)
            #expect(error.message.contains(url))
            #expect(error.message.contains("127.0.0.1 port \(server.port)"))
            guard case .cCode(let library, let code, _) = error.cause else {
                Issue.record("no curl cause")
                return
            }
            #expect(library == "libcurl" && code == 7)
        }
    }

    @Test func droppedConnectionIsATransferError() async throws {
        let server = try HTTPTestServer { request in
            request.path == "/torn"
                ? .init(status: 200, body: Array(repeating: 120, count: 10_000), action: .closeMidBody) : .drop
        }
        defer { server.stop() }
        let client = HTTPClient()
        do {
            _ = try await client.get("\(server.baseURL)/dropped")
            Issue.record("a dropped connection returned a response")
        } catch {
            #expect(error.code == .transfer)
            #expect(error.message.contains("\(server.baseURL)/dropped"))
            #expect(error.message.contains("Empty reply from server"))
        }
        do {
            _ = try await client.get("\(server.baseURL)/torn")
            Issue.record("a torn response returned a response")
        } catch {
            #expect(error.code == .transfer)
            #expect(error.message.contains("5000 bytes remaining"))
        }
        // The client recovers: the next request on a fresh connection works.
        server.setHandler { _ in .text("back") }
        #expect(try await client.get("\(server.baseURL)/again").bodyText == "back")
    }

    @Test func chunkedResponsesAreReassembled() async throws {
        let text = String(repeating: "chunky ", count: 1000)
        let server = try HTTPTestServer { _ in .init(status: 200, body: Array(text.utf8), chunked: true) }
        defer { server.stop() }
        let response = try await HTTPClient().get("\(server.baseURL)/c")
        #expect(response.bodyText == text)
        #expect(response.headers["Transfer-Encoding"] == "chunked")
    }

    @Test func oversizedResponseIsRefused() async throws {
        let server = try HTTPTestServer { _ in .init(status: 200, body: [UInt8](repeating: 0, count: 100_000)) }
        defer { server.stop() }
        let client = HTTPClient(configuration: .init(maxResponseBodySize: 10_000))
        await #expect {
            _ = try await client.get("\(server.baseURL)/big")
        } throws: { error in
            (error as? OutboundHTTPError)?.code == .responseTooLarge
        }
    }

    @Test func malformedURLIsInvalid() async throws {
        let client = HTTPClient()
        await #expect {
            _ = try await client.get("ftp://example.invalid/file")
        } throws: { error in
            guard let error = error as? OutboundHTTPError else { return false }
            return error.code == .invalidRequest && error.message.contains("ftp://example.invalid/file")
        }
    }

    @Test func cancellationAbortsTheTransfer() async throws {
        let server = try HTTPTestServer { _ in .init(status: 200, body: [1], delay: .seconds(5)) }
        defer { server.stop() }
        let client = HTTPClient()
        // The server answers after 5 s: a response means the cancellation did not abort the transfer.
        let task = Task { try await client.get("\(server.baseURL)/never") }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        let result = await task.result
        guard case .failure(let error) = result else {
            Issue.record("a cancelled request returned a response")
            return
        }
        #expect((error as? OutboundHTTPError)?.code == .cancelled)
        server.stop()
    }

    @Test func shutdownClientRefusesRequests() async throws {
        let client = HTTPClient()
        client.shutdown()
        await #expect {
            _ = try await client.get("http://127.0.0.1:9/")
        } throws: { error in
            (error as? OutboundHTTPError)?.code == .unavailable
        }
    }

    @Test func curlDebugOutputGoesToSwiftLogAtTrace() async throws {
        let handler = CapturingLogHandler()
        let logger = Logger(label: "test.http") { _ in handler }
        let server = try HTTPTestServer { _ in .text("ok") }
        defer { server.stop() }
        let client = HTTPClient(logger: logger)
        _ = try await client.get("\(server.baseURL)/traced")
        let records = handler.records.withLock { $0 }
        #expect(records.allSatisfy { $0.0 == .trace })
        #expect(records.contains { $0.2["kind"] == "header_out" && "\($0.2["text"] ?? "")".contains("GET /traced") })
        #expect(records.contains { $0.2["kind"] == "header_in" })
    }

    @Test func concurrentRequests() async throws {
        let server = try HTTPTestServer { request in .init(status: 200, body: request.body, delay: .milliseconds(50)) }
        defer { server.stop() }
        let client = HTTPClient(configuration: .init(maxConcurrentRequests: 4))
        let bodies = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for index in 0..<16 {
                group.addTask {
                    try await client.send(HTTPRequest(method: .post, url: "\(server.baseURL)/n", body: [UInt8(index)])).body
                }
            }
            return try await group.reduce(into: [[UInt8]]()) { $0.append($1) }
        }
        #expect(Set(bodies) == Set((0..<16).map { [UInt8($0)] }))
        #expect(server.acceptedConnections <= 4)
    }
}

