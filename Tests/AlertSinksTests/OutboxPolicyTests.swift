import AlertSinks
import EventModel
import Foundation
import Logging
import OutboundHTTP
import Synchronization
import TestSupport
import Testing

/// A receiver that answers the first `failures` POSTs with `status` and the rest with 200, recording bodies.
final class WebhookReceiver: Sendable {
    final class Remaining: Sendable {
        let count: Mutex<Int>
        init(_ value: Int) { count = Mutex(value) }
    }
    let server: HTTPTestServer

    init(failures: Int = 0, status: Int = 503) throws {
        let remaining = Remaining(failures)
        server = try HTTPTestServer { _ in
            let fail = remaining.count.withLock { count -> Bool in
                guard count > 0 else { return false }
                count -= 1
                return true
            }
            return fail ? .json("{\"error\":\"down\"}", status: status) : .json("{}")
        }
    }

    /// The alert ids of each accepted (200) POST, in order.
    var acceptedBatches: [[String]] {
        server.requests.filter { $0.method == "POST" }.compactMap { request -> [String]? in
            guard let array = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [[String: Any]] else {
                return nil
            }
            return array.compactMap { $0["id"] as? String }
        }
    }
}

@Suite struct WebhookSinkTests {
    @Test func postsTheAlertDocumentsWithHeadersAndAuth() async throws {
        let receiver = try WebhookReceiver()
        defer { receiver.server.stop() }
        let sink = WebhookSink(
            target: HTTPSinkTarget(
                url: receiver.server.baseURL + "/hooks/patrol", auth: .bearer(token: "s3cret"),
                headers: ["X-Tenant": "blue"]),
            logger: quietLogger)
        let alerts = (0..<3).map { AlertFixtures.alert(index: $0) }
        try await sink.deliver(alerts)
        let request = try #require(receiver.server.requests.first)
        #expect(request.method == "POST" && request.path == "/hooks/patrol")
        #expect(request.header("Authorization") == "Bearer s3cret")
        #expect(request.header("X-Tenant") == "blue")
        #expect(request.header("Content-Type") == "application/json")
        // The body is exactly the stdout sink's documents, as one JSON array.
        #expect(request.bodyText == "[" + alerts.map(AlertDocument.json).joined(separator: ",") + "]")
    }

    @Test func aRefusingReceiverIsAnErrorNamingTheURLAndStatus() async throws {
        let receiver = try WebhookReceiver(failures: 1, status: 400)
        defer { receiver.server.stop() }
        let sink = WebhookSink(target: HTTPSinkTarget(url: receiver.server.baseURL), logger: quietLogger)
        let error = await #expect(throws: AlertSinksError.self) { try await sink.deliver([AlertFixtures.alert()]) }
        #expect(error?.code == .rejected)
        #expect(error?.message.contains("HTTP 400") == true)
        #expect(error?.message.contains(receiver.server.baseURL) == true)
    }
}

@Suite struct OutboxPolicyTests {
    func csvLines(_ path: String) -> [String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.components(separatedBy: "\r\n").dropFirst().filter { !$0.isEmpty }
    }

    /// `dropOldest`: a sink whose backlog is over the bound skips the oldest alerts and counts them.
    @Test func dropOldestKeepsTheNewestAndCountsTheRest() async throws {
        let rig = try await DeliveryRig.make()
        let csv = rig.directory.file("alerts.csv")
        try await rig.commit((0..<100).map { AlertFixtures.alert(index: $0) })
        var policy = OutboxDelivery.Policy.fast
        policy.maxBacklog = 10
        policy.overflow = .dropOldest
        let delivery = rig.delivery(CSVSink(path: csv), policy: policy)
        try await rig.running([delivery]) {
            _ = await eventually { delivery.statistics.delivered >= 10 }
        }
        #expect(delivery.statistics.dropped == 90)
        #expect(delivery.statistics.delivered == 10)
        #expect(
            csvLines(csv).map { $0.split(separator: ",").last.map(String.init) ?? "" }
                == (90..<100).map { "alert-\($0)" })
        await rig.close()
    }

    /// `keep`: the same bound never drops; the sink just falls behind.
    @Test func keepNeverDrops() async throws {
        let rig = try await DeliveryRig.make()
        let csv = rig.directory.file("alerts.csv")
        try await rig.commit((0..<100).map { AlertFixtures.alert(index: $0) })
        var policy = OutboxDelivery.Policy.fast
        policy.maxBacklog = 10
        policy.overflow = .keep
        let delivery = rig.delivery(CSVSink(path: csv), policy: policy)
        try await rig.running([delivery]) {
            _ = await eventually { delivery.statistics.delivered >= 100 }
        }
        #expect(delivery.statistics.dropped == 0)
        #expect(csvLines(csv).count == 100)
        await rig.close()
    }

    /// A rate limit makes alerts wait, never drops them: no POST carries more than the burst.
    @Test func rateLimitHoldsBatchesToTheBurstAndLosesNothing() async throws {
        let receiver = try WebhookReceiver()
        defer { receiver.server.stop() }
        let rig = try await DeliveryRig.make()
        var policy = OutboxDelivery.Policy.fast
        policy.rateLimit = .init(perSecond: 200, burst: 7)
        let delivery = rig.delivery(
            WebhookSink(target: HTTPSinkTarget(url: receiver.server.baseURL), logger: quietLogger), policy: policy)
        let alerts = (0..<50).map { AlertFixtures.alert(index: $0) }
        try await rig.commit(alerts)
        try await rig.running([delivery]) {
            _ = await eventually { delivery.statistics.delivered >= 50 }
        }
        let batches = receiver.acceptedBatches
        #expect(batches.flatMap { $0 } == alerts.map(\.id))
        #expect(batches.allSatisfy { $0.count <= 7 })
        #expect(delivery.statistics.largestBatch <= 7)
        #expect(delivery.statistics.dropped == 0)
        await rig.close()
    }

    /// A receiver failing for a while: retried with backoff, every failure and retry counted, the re-sent
    /// alerts counted as possible duplicates, and nothing lost or reordered.
    @Test func failuresAreRetriedAndCounted() async throws {
        let receiver = try WebhookReceiver(failures: 3)
        defer { receiver.server.stop() }
        let rig = try await DeliveryRig.make()
        var policy = OutboxDelivery.Policy.fast
        policy.batchSize = 10
        let delivery = rig.delivery(
            WebhookSink(target: HTTPSinkTarget(url: receiver.server.baseURL), logger: quietLogger), policy: policy)
        let alerts = (0..<25).map { AlertFixtures.alert(index: $0) }
        try await rig.commit(alerts)
        try await rig.running([delivery]) {
            _ = await eventually { delivery.statistics.delivered >= 25 }
        }
        #expect(delivery.statistics.failedAttempts == 3)
        #expect(delivery.statistics.retries == 3)
        // The first batch (10 alerts) was attempted and failed; each re-send of it may be a duplicate.
        #expect(delivery.statistics.redelivered == 10)
        let posted = receiver.server.requests.filter { $0.method == "POST" }
        #expect(posted.count == 6)
        #expect(receiver.acceptedBatches.suffix(3).flatMap { $0 } == alerts.map(\.id))
        await rig.close()
    }

    /// A batch left in flight by a crash (delivered, cursor not yet saved) is re-sent on the next start
    /// and counted as possibly duplicated.
    @Test func inFlightBatchAfterACrashCountsAsRedelivered() async throws {
        let receiver = try WebhookReceiver()
        defer { receiver.server.stop() }
        let rig = try await DeliveryRig.make()
        try await rig.commit((0..<5).map { AlertFixtures.alert(index: $0) })
        // What a crash between delivery and cursor update leaves behind.
        try await rig.store.setSinkCursor("webhook#in_flight", to: 5)
        let delivery = rig.delivery(
            WebhookSink(target: HTTPSinkTarget(url: receiver.server.baseURL), logger: quietLogger))
        try await rig.running([delivery]) {
            _ = await eventually { delivery.statistics.delivered >= 5 }
        }
        #expect(delivery.statistics.redelivered == 5)
        await rig.close()
    }

    /// Acceptance 5, at run time: a sink whose host does not exist fails (logged, counted) and the CSV sink
    /// beside it delivers everything.
    @Test func anUnreachableSinkNeverBlocksTheOthers() async throws {
        let handler = RecordingLogHandler()
        handler.logLevel = .warning
        let logger = Logger(label: "test") { _ in handler }
        let rig = try await DeliveryRig.make()
        let csv = rig.directory.file("alerts.csv")
        let closedPort = Ports.freeTCPPort()
        let broken = rig.delivery(
            WebhookSink(
                target: HTTPSinkTarget(url: "http://127.0.0.1:\(closedPort)/hook", timeout: .seconds(2)),
                logger: logger),
            logger: logger)
        let good = rig.delivery(CSVSink(path: csv))
        let alerts = (0..<40).map { AlertFixtures.alert(index: $0) }
        try await rig.running([broken, good]) {
            try await rig.commit(alerts)
            _ = await eventually { good.statistics.delivered >= 40 && broken.statistics.failedAttempts >= 2 }
        }
        #expect(csvLines(csv).count == 40)
        #expect(broken.statistics.delivered == 0)
        #expect(broken.statistics.failedAttempts >= 2)
        #expect(broken.statistics.backlog == 40)
        let warning = handler.records.withLock { $0.first { $0.message.contains("sink delivery failed") } }
        let logged = "\(warning?.metadata["error"] ?? "")"
        #expect(logged.contains("127.0.0.1:\(closedPort)"), "logged: \(logged)")
        #expect("\(warning?.metadata["sink"] ?? "")" == "webhook")
        await rig.close()
    }
}
