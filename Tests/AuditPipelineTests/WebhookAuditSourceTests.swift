import AuditPipeline
import Basics
import EventModel
import Foundation
import Logging
import OutboundHTTP
import Synchronization
import TestSupport
import Testing

/// The webhook source as kube-apiserver talks to it: real HTTP(S) POSTs over loopback with libcurl (the
/// project's OutboundHTTP client), plain and with client certificates.
@Suite struct WebhookAuditSourceTests {
    static func event(_ n: Int, verb: String = "get") -> String {
        """
        {"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"wh-\(n)","stage":"ResponseComplete",\
        "requestURI":"/api/v1/namespaces/default/pods","verb":"\(verb)","user":{"username":"alice"},\
        "sourceIPs":["10.0.0.7"],"objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1"},\
        "responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2024-03-01T10:00:00.000000Z",\
        "stageTimestamp":"2024-03-01T10:00:00.002000Z"}
        """
    }

    static func eventList(_ range: Range<Int>) -> [UInt8] {
        let items = range.map { event($0) }.joined(separator: ",")
        return Array(#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[\#(items)]}"#.utf8)
    }

    final class Collected: Sendable {
        let records = Mutex<[AuditRecord]>([])
        let failNext = Atomic<Bool>(false)
        var ids: [String] { records.withLock { $0.map { $0.document["auditID"]?.stringValue ?? "?" } } }
    }

    /// Runs `body` against a webhook source served in the background.
    static func withWebhook(
        _ configuration: WebhookAuditSource.Configuration, _ collected: Collected,
        _ body: (WebhookAuditSource) async throws -> Void
    ) async throws {
        let source = try WebhookAuditSource(configuration: configuration, logger: Logger(label: "test")) { records in
            if collected.failNext.exchange(false, ordering: .relaxed) {
                throw POSIXError(.EIO)  // e.g. the store refused the commit
            }
            collected.records.withLock { $0 += records }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await source.run() }
            do {
                try await body(source)
            } catch {
                source.close()
                throw error
            }
            source.close()
            try await group.waitForAll()
        }
    }

    static func post(
        _ client: HTTPClient, _ url: String, _ body: [UInt8], method: HTTPMethod = .post
    ) async throws -> (status: Int, message: String) {
        let response = try await client.send(
            HTTPRequest(method: method, url: url, headers: ["Content-Type": "application/json"], body: body))
        let json = try? JSONText.parse(response.body)
        return (response.status, json?["message"]?.stringValue ?? String(decoding: response.body, as: UTF8.self))
    }

    @Test func eventListsArePostedOverPlainHTTPWithBadBodiesRefused() async throws {
        let collected = Collected()
        let configuration = WebhookAuditSource.Configuration(listen: "127.0.0.1:0", maxBodyBytes: 64 * 1024)
        try await Self.withWebhook(configuration, collected) { source in
            let client = HTTPClient()
            defer { client.shutdown() }
            let url = "http://\(source.boundAddress)/audit"

            let first = try await Self.post(client, url, Self.eventList(0..<3))
            #expect(first.status == 200)
            #expect(collected.ids == ["wh-0", "wh-1", "wh-2"])

            // Not JSON, an item that is not an event, and an empty body: 400 with a message, nothing handed on.
            let garbage = try await Self.post(client, url, Array("{\"kind\":\"EventList\",\"items\":[".utf8))
            #expect(garbage.status == 400)
            #expect(garbage.message.contains("not an audit EventList"))
            let badItem = try await Self.post(
                client, url,
                Array(#"{"kind":"EventList","items":[\#(Self.event(9)),{"kind":"Event","verb":5}]}"#.utf8))
            #expect(badItem.status == 400)
            #expect(badItem.message.contains("items[1]"))
            let status1 = try await Self.post(client, url, []).status
            #expect(status1 == 400)
            #expect(collected.ids.count == 3)

            // The connection and the source carry on: the next POST is taken whole.
            let status2 = try await Self.post(client, url, Self.eventList(3..<5)).status
            #expect(status2 == 200)
            #expect(collected.ids == ["wh-0", "wh-1", "wh-2", "wh-3", "wh-4"])

            // Oversized: 413, whatever it holds.
            let big = Self.eventList(100..<400)
            #expect(big.count > 64 * 1024)
            let oversized = try await Self.post(client, url, big)
            #expect(oversized.status == 413)
            #expect(oversized.message.contains("exceeds the limit"))

            // Other paths and methods.
            let status3 = try await Self.post(client, "http://\(source.boundAddress)/other", Self.eventList(5..<6))
                .status
            #expect(status3 == 404)
            let status4 = try await Self.post(client, url, [], method: .get).status
            #expect(status4 == 405)
            let status5 = try await Self.post(client, url, Self.eventList(5..<7)).status
            #expect(status5 == 200)
            #expect(collected.ids.count == 7)
            #expect(source.statistics.documents == 7)
            #expect(source.statistics.malformed == 3)
        }
    }

    @Test func aBatchThatCannotBeHandedOnIsAnswered503SoTheApiserverRetries() async throws {
        let collected = Collected()
        try await Self.withWebhook(.init(listen: "127.0.0.1:0"), collected) { source in
            let client = HTTPClient()
            defer { client.shutdown() }
            let url = "http://\(source.boundAddress)/audit"
            collected.failNext.store(true, ordering: .relaxed)
            let status6 = try await Self.post(client, url, Self.eventList(0..<2)).status
            #expect(status6 == 503)
            #expect(collected.ids.isEmpty)
            // The retry of the same batch goes through.
            let status7 = try await Self.post(client, url, Self.eventList(0..<2)).status
            #expect(status7 == 200)
            #expect(collected.ids == ["wh-0", "wh-1"])
        }
    }

    @Test func httpsWithRequiredClientCertificates() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory.path)
        let collected = Collected()
        let configuration = WebhookAuditSource.Configuration(
            listen: "127.0.0.1:0", tlsCertificateFile: certificates.serverCertificate,
            tlsKeyFile: certificates.serverKey, clientCAFile: certificates.caCertificate)
        try await Self.withWebhook(configuration, collected) { source in
            let port = source.boundAddress.split(separator: ":").last.map(String.init) ?? ""
            let url = "https://localhost:\(port)/audit"
            // As the apiserver's webhook kubeconfig does: CA, client certificate and key.
            let apiserver = HTTPClient(
                configuration: .init(
                    tls: TLSOptions(
                        caFile: certificates.caCertificate, clientCertificateFile: certificates.clientCertificate,
                        clientKeyFile: certificates.clientKey)))
            defer { apiserver.shutdown() }
            let status8 = try await Self.post(apiserver, url, Self.eventList(0..<2)).status
            #expect(status8 == 200)
            #expect(collected.ids == ["wh-0", "wh-1"])

            // Without a client certificate, or with one from another CA, the handshake is refused.
            for tls in [
                TLSOptions(caFile: certificates.caCertificate),
                TLSOptions(
                    caFile: certificates.caCertificate, clientCertificateFile: certificates.rogueClientCertificate,
                    clientKeyFile: certificates.rogueClientKey),
            ] {
                let stranger = HTTPClient(configuration: .init(tls: tls))
                defer { stranger.shutdown() }
                await #expect(throws: OutboundHTTPError.self) {
                    _ = try await Self.post(stranger, url, Self.eventList(2..<3))
                }
            }
            #expect(collected.ids == ["wh-0", "wh-1"])
        }
    }

    @Test func httpsWithoutClientCertificates() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory.path)
        let collected = Collected()
        let configuration = WebhookAuditSource.Configuration(
            listen: "127.0.0.1:0", tlsCertificateFile: certificates.serverCertificate,
            tlsKeyFile: certificates.serverKey)
        try await Self.withWebhook(configuration, collected) { source in
            let port = source.boundAddress.split(separator: ":").last.map(String.init) ?? ""
            let client = HTTPClient(configuration: .init(tls: TLSOptions(caFile: certificates.caCertificate)))
            defer { client.shutdown() }
            let status9 = try await Self.post(client, "https://localhost:\(port)/audit", Self.eventList(0..<1)).status
            #expect(status9 == 200)
            #expect(collected.ids == ["wh-0"])
        }
    }

    @Test func aShutdownAnswersTheBatchInFlightBeforeItStops() async throws {
        let entered = Atomic<Bool>(false)
        let release = Atomic<Bool>(false)
        let handedOn = Mutex<[AuditRecord]>([])
        let source = try WebhookAuditSource(configuration: .init(listen: "127.0.0.1:0"), logger: Logger(label: "test")) {
            records in
            entered.store(true, ordering: .relaxed)
            // A slow commit, still running when the shutdown begins.
            for _ in 0..<3000 where !release.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(5)) }
            handedOn.withLock { $0 += records }
        }
        let client = HTTPClient()
        defer { client.shutdown() }
        let url = "http://\(source.boundAddress)/audit"
        let serving = Task { try await source.run() }
        let posting = Task { try await Self.post(client, url, Self.eventList(0..<2)).status }
        for _ in 0..<3000 where !entered.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(5)) }
        source.close()
        release.store(true, ordering: .relaxed)
        // The apiserver hears 200 only for a batch that was handed on, and the server then stops.
        #expect(try await posting.value == 200)
        #expect(handedOn.withLock { $0.count } == 2)
        try await serving.value
        await #expect(throws: OutboundHTTPError.self) { _ = try await Self.post(client, url, Self.eventList(2..<3)) }
    }

    @Test func missingKeyFileIsAConfigurationError() {
        #expect(throws: AuditPipelineError.self) {
            _ = try WebhookAuditSource(
                configuration: .init(listen: "127.0.0.1:0", tlsCertificateFile: "/nonexistent.pem"),
                logger: Logger(label: "test")
            ) { _ in }
        }
        #expect(throws: AuditPipelineError.self) {
            _ = try WebhookAuditSource(
                configuration: .init(
                    listen: "127.0.0.1:0", tlsCertificateFile: "/nonexistent.pem", tlsKeyFile: "/nonexistent.key"),
                logger: Logger(label: "test")
            ) { _ in }
        }
    }
}
