import Basics

/// Errors of the sensor application.
public struct SensorError: PatrolError {
    public enum Code: String, Sendable {
        /// Live capture was asked for and no BPF hook could be loaded and attached.
        case captureUnavailable = "capture_unavailable"
    }
    public let code: Code
    public let message: String
    public let cause: Cause?

    public init(_ code: Code, _ message: String, cause: Cause? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// Whether the root cause is a permission refusal (EPERM or EACCES from the kernel).
    public var isPermissionDenied: Bool {
        var current = cause
        while let cause = current {
            switch cause {
            case .cCode(_, let code, _): return abs(code) == 1 || abs(code) == 13
            case .error(let error):
                guard let inner = error as? any PatrolError else { return false }
                current = inner.cause
            }
        }
        return false
    }
}
