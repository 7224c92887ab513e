import Basics
import EventModel

/// A destination for alerts. The outbox hands each sink batches in order; a sink either delivers the
/// whole batch or throws, and the batch is retried. Delivery is therefore at least once per sink.
public protocol AlertSink: Sendable {
    /// A stable name, used for the sink's outbox cursor and metrics labels.
    var name: String { get }
    func deliver(_ alerts: [Alert]) async throws(AlertSinksError)
    /// Flushes buffered output; called before shutdown completes.
    func flush() async throws(AlertSinksError)
}

extension AlertSink {
    public func flush() async throws(AlertSinksError) {}
}

/// Errors from sinks and the outbox.
public struct AlertSinksError: PatrolError {
    public enum Code: String, Sendable {
        case configuration = "configuration"
        case io = "io"
        case unavailable = "unavailable"
        case rejected = "rejected"
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
