/// Errors raised by the foundations themselves (configuration decoding, file helpers).
public struct BasicsError: PatrolError {
    public enum Code: String, Sendable {
        case invalidConfiguration = "invalid_configuration"
        case io = "io"
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
