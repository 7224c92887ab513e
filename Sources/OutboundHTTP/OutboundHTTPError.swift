public import Basics

/// Errors from outbound HTTP: every message names the method and URL; the cause carries curl's code and text.
public struct OutboundHTTPError: PatrolError {
    public enum Code: String, Sendable {
        /// The request itself is unusable (malformed URL, unsupported scheme, bad header).
        case invalidRequest = "invalid_request"
        /// The host could not be resolved or refused the connection.
        case connect = "connect"
        /// The request did not finish within its timeout.
        case timeout = "timeout"
        /// TLS handshake or certificate verification failed, or TLS files are unusable.
        case tls = "tls"
        /// The connection broke mid-exchange (closed without a response, reset, truncated body).
        case transfer = "transfer"
        /// The response body exceeded `HTTPClient.Configuration.maxResponseBodySize`.
        case responseTooLarge = "response_too_large"
        /// The calling task was cancelled; the transfer was aborted.
        case cancelled = "cancelled"
        /// The client was shut down, or curl could not be initialised.
        case unavailable = "unavailable"
    }
    public let code: Code
    public let message: String
    public let cause: Cause?

    public init(_ code: Code, _ message: String, cause: Cause? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }
}
