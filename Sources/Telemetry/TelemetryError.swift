import Basics

/// Errors of the status endpoint (`/metrics`, `/healthz`, `/readyz`): a bad listen address or a bind failure.
public struct TelemetryError: PatrolError {
    public enum Code: String, Sendable {
        case invalidAddress = "invalid_address"
        case listen = "listen"
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
