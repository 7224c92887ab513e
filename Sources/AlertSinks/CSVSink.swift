#if canImport(Glibc)
import Glibc
#endif
import Basics
import EventModel
import Synchronization

/// Appends rule alerts to a CSV file (RFC 4180: quoted fields, CRLF rows), writing the header once
/// per file and rotating by size (`alerts.csv` → `alerts.csv.1` → ...).
public final class CSVSink: AlertSink {
    public let name: String
    private let path: String
    private let maxBytes: UInt64
    private let keepFiles: Int
    private let lock = Mutex<Void>(())

    /// The columns, in order. They cover KubeCop's, plus rule id, severity, node and alert id.
    public static let columns = [
        "timestamp", "rule_id", "rule_name", "severity", "message", "fix", "namespace", "pod", "container",
        "container_id", "pid", "ppid", "comm", "exe", "cwd", "uid", "gid", "mount_ns", "node", "count", "alert_id",
    ]

    /// - Parameters:
    ///   - maxBytes: rotate when the file would grow past this; 0 never rotates.
    ///   - keepFiles: rotated files to keep.
    public init(path: String, name: String = "csv", maxBytes: UInt64 = 0, keepFiles: Int = 5) {
        self.path = path
        self.name = name
        self.maxBytes = maxBytes
        self.keepFiles = keepFiles
    }

    public static func row(_ alert: Alert) -> String {
        let container = alert.container
        let values: [String] = [
            alert.time.iso8601, alert.ruleID, alert.ruleName, alert.severity.rawValue, alert.message, alert.fix,
            container?.namespace ?? "", container?.podName ?? "", container?.containerName ?? "",
            container?.containerID ?? "", String(alert.process.pid), String(alert.process.ppid), alert.process.comm,
            alert.process.exe, alert.process.cwd, String(alert.process.uid), String(alert.process.gid),
            String(alert.process.mountNamespace), alert.node, String(alert.count), alert.id,
        ]
        return line(values)
    }

    /// One RFC 4180 record: fields with a comma, quote, CR or LF are quoted, quotes doubled; ends in CRLF.
    public static func line(_ values: [String]) -> String {
        var text = ""
        for (index, value) in values.enumerated() {
            if index > 0 { text += "," }
            if value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) {
                text += "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            } else {
                text += value
            }
        }
        return text + "\r\n"
    }

    public func deliver(_ alerts: [Alert]) async throws(AlertSinksError) {
        guard !alerts.isEmpty else { return }
        var body = ""
        for alert in alerts { body += Self.row(alert) }
        try lock.withLock { _ throws(AlertSinksError) in try append(body) }
    }

    private func append(_ body: String) throws(AlertSinksError) {
        var size = currentSize()
        if maxBytes > 0, size > 0, size + UInt64(body.utf8.count) > maxBytes {
            rotate()
            size = 0
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            let code = errno
            throw AlertSinksError(
                .io, "cannot open CSV file \(path)",
                cause: .cCode(library: "libc", code: code, text: String(cString: strerror(code))))
        }
        defer { close(fd) }
        // Header and rows go out in one write so a reader never sees a file without its header.
        let text = size == 0 ? Self.line(Self.columns) + body : body
        try FileOutput.writeAll(fd: fd, text, what: "CSV file \(path)")
    }

    private func currentSize() -> UInt64 {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_size) : 0
    }

    private func rotate() {
        guard keepFiles > 0 else {
            unlink(path)
            return
        }
        unlink("\(path).\(keepFiles)")
        for index in stride(from: keepFiles - 1, through: 1, by: -1) {
            rename("\(path).\(index)", "\(path).\(index + 1)")
        }
        rename(path, "\(path).1")
    }
}
