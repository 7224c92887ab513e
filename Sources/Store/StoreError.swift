import Basics

/// Errors from the embedded store.
public struct StoreError: PatrolError {
    public enum Code: String, Sendable {
        case open = "open"
        case query = "query"
        case corrupt = "corrupt"
        case closed = "closed"
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
