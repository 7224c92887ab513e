#if canImport(Glibc)
import Glibc
#endif
import EventModel

/// Writes each alert as one JSON line on standard output (never stderr, which carries logs).
public struct StdoutSink: AlertSink {
    public let name = "stdout"

    public init() {}

    public func deliver(_ alerts: [Alert]) async throws(AlertSinksError) {
        var text = ""
        for alert in alerts {
            text += AlertDocument.json(alert)
            text += "\n"
        }
        try FileOutput.writeAll(fd: STDOUT_FILENO, text, what: "standard output")
    }
}

/// Low-level writes shared by the file-backed sinks.
enum FileOutput {
    static func writeAll(fd: Int32, _ text: String, what: String) throws(AlertSinksError) {
        try writeAll(fd: fd, Array(text.utf8), what: what)
    }

    static func writeAll(fd: Int32, _ bytes: [UInt8], what: String) throws(AlertSinksError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                write(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                let code = errno
                throw AlertSinksError(
                    .io, "cannot write alerts to \(what)",
                    cause: .cCode(library: "libc", code: code, text: String(cString: strerror(code))))
            }
            offset += written
        }
    }
}
