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
        var record = CSVRecordBuilder(capacity: 512)
        appendRow(alert, to: &record)
        return String(decoding: record.bytes, as: UTF8.self)
    }

    /// A malware file row; an alert without malware details gets empty malware columns.
    public static func malwareRow(_ alert: Alert) -> String {
        var record = CSVRecordBuilder(capacity: 512)
        appendMalwareRow(alert, to: &record)
        return String(decoding: record.bytes, as: UTF8.self)
    }

    /// One RFC 4180 record: fields with a comma, quote, CR or LF are quoted, quotes doubled; ends in CRLF.
    public static func line(_ values: [String]) -> String {
        var record = CSVRecordBuilder()
        for value in values { record.field(value) }
        record.endRecord()
        return String(decoding: record.bytes, as: UTF8.self)
    }

    static func appendRow(_ alert: Alert, to record: inout CSVRecordBuilder) {
        let container = alert.container
        let process = alert.process
        record.timestamp(alert.time)
        record.field(alert.ruleID)
        record.field(alert.ruleName)
        record.field(alert.severity.rawValue)
        record.field(alert.message)
        record.field(alert.fix)
        record.field(container?.namespace ?? "")
        record.field(container?.podName ?? "")
        record.field(container?.containerName ?? "")
        record.field(container?.containerID ?? "")
        record.field(process.pid)
        record.field(process.ppid)
        record.field(process.comm)
        record.field(process.exe)
        record.field(process.cwd)
        record.field(process.uid)
        record.field(process.gid)
        record.field(process.mountNamespace)
        record.field(alert.node)
        record.field(alert.count)
        record.timestamp(alert.firstSeenTime)
        record.timestamp(alert.lastSeenTime)
        record.field(alert.id)
        record.endRecord()
    }

    static func appendMalwareRow(_ alert: Alert, to record: inout CSVRecordBuilder) {
        let container = alert.container
        let malware = alert.malware
        record.timestamp(alert.time)
        record.field(malware?.signature ?? "")
        record.field(malware?.path ?? "")
        record.field(malware?.sha256 ?? "")
        record.field(malware.map { String($0.sizeBytes) } ?? "")
        record.field(malware.map { $0.inImage ? "true" : "false" } ?? "")
        record.field(container?.namespace ?? "")
        record.field(container?.podName ?? "")
        record.field(container?.containerName ?? "")
        record.field(container?.containerID ?? "")
        record.field(container?.image ?? "")
        record.field(alert.node)
        record.field(alert.severity.rawValue)
        record.field(alert.ruleID)
        record.field(alert.message)
        record.field(alert.count)
        record.field(alert.id)
        record.endRecord()
    }

    public func deliver(_ alerts: [Alert]) async throws(AlertSinksError) {
        guard !alerts.isEmpty else { return }
        // One buffer per file and one write per file per batch.
        var rules = CSVRecordBuilder(capacity: alerts.count * 400)
        var malware = CSVRecordBuilder()
        for alert in alerts {
            if malwareFile != nil, alert.malware != nil {
                Self.appendMalwareRow(alert, to: &malware)
            } else {
                Self.appendRow(alert, to: &rules)
            }
        }
        try lock.withLock { _ throws(AlertSinksError) in
            if !rules.bytes.isEmpty { try ruleFile.append(rules.bytes) }
            if !malware.bytes.isEmpty, let malwareFile { try malwareFile.append(malware.bytes) }
        }
    }
}

/// One CSV file with its header and size rotation.
struct CSVFile: Sendable {
    let path: String
    let header: [String]
    let maxBytes: UInt64
    let keepFiles: Int

    func append(_ body: [UInt8]) throws(AlertSinksError) {
        var size = currentSize()
        if maxBytes > 0, size > 0, size + UInt64(body.count) > maxBytes {
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
        let bytes = size == 0 ? Array(CSVSink.line(header).utf8) + body : body
        try FileOutput.writeAll(fd: fd, bytes, what: "CSV file \(path)")
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
