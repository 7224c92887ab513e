#if canImport(Glibc)
import Glibc
#endif
import Basics
import EventModel
import Synchronization

/// Appends alerts to CSV files (RFC 4180: quoted fields, CRLF rows), writing the header once per file and
/// rotating by size (`alerts.csv` → `alerts.csv.1` → ...). Rule alerts go to `path`; malware findings (alerts
/// with `malware` details) go to `malwarePath` with their own columns, or to `path` as rule rows when no
/// malware file is configured.
public final class CSVSink: AlertSink {
    public let name: String
    private let ruleFile: CSVFile
    private let malwareFile: CSVFile?
    private let lock = Mutex<Void>(())

    /// The rule file's columns, in order. They cover KubeCop's, plus rule id, severity, node and alert id.
    public static let columns = [
        "timestamp", "rule_id", "rule_name", "severity", "message", "fix", "namespace", "pod", "container",
        "container_id", "pid", "ppid", "comm", "exe", "cwd", "uid", "gid", "mount_ns", "node", "count", "first_seen",
        "last_seen", "alert_id",
    ]

    /// The malware file's columns: REFERENCE §7's malware fields, the container identity and the alert's own.
    public static let malwareColumns = [
        "timestamp", "signature", "path", "sha256", "size_bytes", "in_image", "namespace", "pod", "container",
        "container_id", "image", "node", "severity", "rule_id", "message", "count", "alert_id",
    ]

    /// - Parameters:
    ///   - maxBytes: rotate a file when it would grow past this; 0 never rotates.
    ///   - keepFiles: rotated files to keep, per file.
    public init(
        path: String, malwarePath: String? = nil, name: String = "csv", maxBytes: UInt64 = 0, keepFiles: Int = 5
    ) {
        self.name = name
        self.ruleFile = CSVFile(path: path, header: Self.columns, maxBytes: maxBytes, keepFiles: keepFiles)
        self.malwareFile = malwarePath.map {
            CSVFile(path: $0, header: Self.malwareColumns, maxBytes: maxBytes, keepFiles: keepFiles)
        }
    }

    public static func row(_ alert: Alert) -> String {
        let container = alert.container
        let values: [String] = [
            alert.time.iso8601, alert.ruleID, alert.ruleName, alert.severity.rawValue, alert.message, alert.fix,
            container?.namespace ?? "", container?.podName ?? "", container?.containerName ?? "",
            container?.containerID ?? "", String(alert.process.pid), String(alert.process.ppid), alert.process.comm,
            alert.process.exe, alert.process.cwd, String(alert.process.uid), String(alert.process.gid),
            String(alert.process.mountNamespace), alert.node, String(alert.count), alert.firstSeenTime.iso8601,
            alert.lastSeenTime.iso8601, alert.id,
        ]
        return line(values)
    }

    /// A malware file row; an alert without malware details gets empty malware columns.
    public static func malwareRow(_ alert: Alert) -> String {
        let container = alert.container
        let malware = alert.malware
        let values: [String] = [
            alert.time.iso8601, malware?.signature ?? "", malware?.path ?? "", malware?.sha256 ?? "",
            malware.map { String($0.sizeBytes) } ?? "", malware.map { $0.inImage ? "true" : "false" } ?? "",
            container?.namespace ?? "", container?.podName ?? "", container?.containerName ?? "",
            container?.containerID ?? "", container?.image ?? "", alert.node, alert.severity.rawValue, alert.ruleID,
            alert.message, String(alert.count), alert.id,
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
        var rules = ""
        var malware = ""
        for alert in alerts {
            if malwareFile != nil, alert.malware != nil {
                malware += Self.malwareRow(alert)
            } else {
                rules += Self.row(alert)
            }
        }
        try lock.withLock { _ throws(AlertSinksError) in
            if !rules.isEmpty { try ruleFile.append(rules) }
            if !malware.isEmpty, let malwareFile { try malwareFile.append(malware) }
        }
    }
}

/// One CSV file with its header and size rotation.
struct CSVFile: Sendable {
    let path: String
    let header: [String]
    let maxBytes: UInt64
    let keepFiles: Int

    func append(_ body: String) throws(AlertSinksError) {
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
        let text = size == 0 ? CSVSink.line(header) + body : body
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
