import Basics
import EventModel
public import Logging
import OutboundHTTP

/// Posts each batch to a URL as a JSON array of alert documents (the stdout sink's objects,
/// docs/alerts.md), for receivers Patrol has no dedicated sink for. Any 2xx answer is success; 429, 5xx and
/// no answer are retried by the outbox; other statuses too (logged), since the outbox never skips alerts.
public final class WebhookSink: AlertSink {
    public let name: String
    public let target: HTTPSinkTarget
    private let client: HTTPClient
    private let logger: Logger

    public init(name: String = "webhook", target: HTTPSinkTarget, logger: Logger) {
        self.name = name
        self.target = target
        var logger = logger
        logger[metadataKey: "sink"] = "\(name)"
        self.logger = logger
        self.client = target.makeClient(logger: logger)
    }

    deinit { client.shutdown() }

    /// The request body: `[document, ...]`.
    public static func payload(_ alerts: [Alert]) -> String {
        var text = "["
        for (index, alert) in alerts.enumerated() {
            if index > 0 { text += "," }
            text += AlertDocument.json(alert)
        }
        return text + "]"
    }

    public func deliver(_ alerts: [Alert]) async throws(AlertSinksError) {
        guard !alerts.isEmpty else { return }
        var headers = HTTPHeaders()
        if target.headers["Content-Type"] == nil { headers["Content-Type"] = "application/json" }
        let request = HTTPRequest(
            method: .post, url: target.url, headers: headers, body: Array(Self.payload(alerts).utf8))
        let response: HTTPResponse
        do {
            response = try await client.send(request)
        } catch {
            throw .http("POST \(target.url)", error: error)
        }
        guard response.isSuccess else { throw .http("POST \(target.url)", response: response) }
    }
}
