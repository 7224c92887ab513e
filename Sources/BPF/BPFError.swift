public import Basics

/// Errors from the BPF wrapper: opening, loading and attaching eBPF objects, map access, ring buffers.
public struct BPFError: PatrolError {
    public enum Code: String, Sendable {
        case open = "open"
        case load = "load"
        case attach = "attach"
        case notFound = "not_found"
        case map = "map"
        case ringBuffer = "ring_buffer"
        case tracefs = "tracefs"
        case invalidArgument = "invalid_argument"
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
