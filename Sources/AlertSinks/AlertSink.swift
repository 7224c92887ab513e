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
    /// How far delivery is settled. The outbox calls this after `deliver` returned for the batch whose last
    /// outbox position is `sent`, and again while it has nothing new to send; the sink returns the position
    /// through which it vouches for every alert, and only that far does the sink's cursor advance.
    ///
    /// Most sinks vouch for a batch when `deliver` returns (the server answered), which is the default. A
    /// transport without acknowledgements (syslog over TCP or TLS) vouches later, and throws when alerts it
    /// had written may be lost (the connection they went over broke): the outbox then sends everything after
    /// the last settled position again, counted as redelivered.
    func settled(sentThrough sent: Int64) async throws(AlertSinksError) -> Int64
}

extension AlertSink {
    public func flush() async throws(AlertSinksError) {}
    public func settled(sentThrough sent: Int64) async throws(AlertSinksError) -> Int64 { sent }
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
