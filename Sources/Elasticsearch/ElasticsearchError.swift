public import Basics
public import EventModel

/// Errors from talking to Elasticsearch or OpenSearch.
///
/// A reply with an error status is parsed from the server's envelope
/// (`{"error":{"type","reason","root_cause"},"status"}`, or `error` as a plain string), so the
/// message carries the server's own type and reason.
public struct ElasticsearchError: PatrolError {
    public enum Code: String, Sendable {
        /// The endpoint, credentials or TLS files are unusable.
        case configuration = "configuration"
        /// No reply: connection refused or dropped, timeout, TLS failure.
        case transport = "transport"
        /// The server answered with an error status.
        case status = "status"
        /// The reply was not what the API promises (not JSON, fields missing).
        case invalidResponse = "invalid_response"
    }

    public let code: Code
    public let message: String
    public let cause: Cause?
    /// The HTTP status, for `.status`.
    public let status: Int?
    /// The server's error type, e.g. `index_not_found_exception` (nil when `error` was a plain string).
    public let type: String?
    /// The server's reason text.
    public let reason: String?

    public init(
        _ code: Code, _ message: String, status: Int? = nil, type: String? = nil, reason: String? = nil,
        cause: Cause? = nil
    ) {
        self.code = code
        self.message = message
        self.status = status
        self.type = type
        self.reason = reason
        self.cause = cause
    }

    /// Worth retrying after a pause: no reply at all, 429 (rejected execution: back off), or a 5xx.
    /// Keyed on the status rather than the type, which differs between Elasticsearch and OpenSearch.
    public var isRetryable: Bool {
        switch code {
        case .transport: return true
        case .status: return status.map { $0 == 429 || $0 >= 500 } ?? false
        case .configuration, .invalidResponse: return false
        }
    }

    /// Builds the error for a reply with status `status`, reading the envelope when there is one.
    public static func fromReply(status: Int, body: [UInt8], request: String) -> ElasticsearchError {
        let (type, reason) = envelope(JSONValue.parse(body))
        var text = "\(request): HTTP \(status)"
        if let type { text += " \(type)" }
        if let reason { text += ": \(reason)" }
        if type == nil && reason == nil {
            let snippet = String(decoding: body.prefix(200), as: UTF8.self)
            if !snippet.isEmpty { text += ": \(snippet)" }
        }
        return ElasticsearchError(.status, text, status: status, type: type, reason: reason)
    }

    /// The type and reason of an error envelope (object or plain string), or of one bulk item's `error`.
    public static func envelope(_ body: JSONValue?) -> (type: String?, reason: String?) {
        guard let error = body?["error"] else { return (nil, nil) }
        if let text = error.stringValue { return (nil, text) }
        return (error["type"]?.stringValue, error["reason"]?.stringValue)
    }
}
