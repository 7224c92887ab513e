import Basics

/// Why bytes could not be decoded (or a value could not be carried) on the wire.
///
/// Decoding never traps on bad input: every problem becomes one of these, with a message that names the message
/// type, the event index or field, and what was wrong (`event 17: unknown payload case`).
public struct WireFormatError: PatrolError {
    public enum Code: String, Sendable, Hashable {
        /// Not a valid protobuf encoding of the expected message (truncated, bad tags, bad lengths).
        case malformed = "malformed"
        /// Larger than `WireCodec.maxMessageBytes`.
        case oversized = "oversized"
        /// Well-formed protobuf, but a value Patrol does not accept (unknown enum, port > 65535, bad UTF-8, ...).
        case invalidValue = "invalid_value"
        /// A field that must be present or non-empty is not.
        case missingField = "missing_field"
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
