import Basics

/// Errors raised by the transport layer (NNG sockets, RPC, batch delivery).
///
/// The message names the address involved; `cause` carries nng's return code and its `nng_strerror` text.
public struct TransportError: PatrolError, Equatable {
    public enum Code: String, Sendable {
        /// The address is malformed or uses a scheme other than tcp, ipc, inproc and tls+tcp.
        case addressInvalid = "address_invalid"
        /// Listening or dialing failed (address in use, refused, unreachable).
        case connectFailed = "connect_failed"
        /// The call did not complete before its deadline.
        case timeout = "timeout"
        /// The socket (client or server) was closed.
        case closed = "closed"
        /// The caller's task was cancelled.
        case cancelled = "cancelled"
        /// TLS configuration (certificate, key, CA files) or handshake failed.
        case tls = "tls"
        /// A message exceeded the configured maximum size.
        case messageTooLarge = "message_too_large"
        /// The peer sent bytes that are not a valid envelope.
        case protocolError = "protocol_error"
        /// Spool directory I/O failed.
        case io = "io"
        /// Any other nng failure.
        case internalError = "internal"
    }

    public let code: Code
    public let message: String
    public let cause: Cause?

    public init(_ code: Code, _ message: String, cause: Cause? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public static func == (lhs: TransportError, rhs: TransportError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
    }
}
