#if canImport(Glibc)
import Glibc
#endif

/// The shape every module's error type shares: a stable code, a message for people, and the cause.
///
/// Each module declares exactly one conforming type (`WireFormatError`, `TransportError`, ...). The
/// `code` is stable and meant for metrics labels and tests; the `message` says what was wrong and where.
public protocol PatrolError: Error, Sendable, CustomStringConvertible {
    associatedtype Code: RawRepresentable & Sendable where Code.RawValue == String
    var code: Code { get }
    var message: String { get }
    /// The underlying error or raw C return code, when there is one.
    var cause: Cause? { get }
}

extension PatrolError {
    public var description: String {
        var text = "\(code.rawValue): \(message)"
        if let cause { text += " (cause: \(cause))" }
        return text
    }
}

/// Why an error happened underneath: another error or a C library's return code.
public enum Cause: Sendable, CustomStringConvertible {
    case error(any Error & Sendable)
    /// A C return code, with the library's own text for it when available.
    case cCode(library: String, code: Int32, text: String?)

    /// A failed libc call's errno, with strerror's text.
    public static func errno(_ code: Int32) -> Cause {
        .cCode(library: "libc", code: code, text: String(cString: strerror(code)))
    }

    public var description: String {
        switch self {
        case .error(let error): return String(describing: error)
        case .cCode(let library, let code, let text):
            return text.map { "\(library) error \(code): \($0)" } ?? "\(library) error \(code)"
        }
    }
}
