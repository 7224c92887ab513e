public import Basics

/// Errors from decoding sensor ABI records (bpf/include/sensor_abi.h). Each one is a `decode` drop.
public struct KernelEventsError: PatrolError {
    public enum Code: String, Sendable {
        /// Fewer bytes than the header or than the kind's record.
        case shortRecord = "short_record"
        /// A kind number this build does not know.
        case unknownKind = "unknown_kind"
        /// The header's size or version disagrees with this build's layout for the kind.
        case mismatchedRecord = "mismatched_record"
        /// The record is well formed but its payload is not (e.g. a datagram to port 53 that is not DNS).
        case malformedPayload = "malformed_payload"
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
