import Basics
import EventModel

/// Renders an alert as one RFC 5424 syslog message (docs/alerts.md#syslog):
///
///     <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [patrol@32473 ...][patrolFields@32473 ...] MSG
///
/// TIMESTAMP is the triggering event's time (RFC 3339, UTC, microseconds), HOSTNAME the node, MSGID the rule
/// id. The first SD element carries the alert's own fields, the second the rule's extra `fields`; keeping them
/// apart means a rule field named like a built-in one (`path`, `severity`) can never shadow it.
public struct SyslogFormat: Sendable, Equatable {
    /// RFC 5424 facility numbers by their usual names.
    public static let facilities: [String: Int] = [
        "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
        "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14, "solaris-cron": 15,
        "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22,
        "local7": 23,
    ]

    /// 0...23; local0 by default, the facility sites conventionally give to applications of their own.
    public var facility: Int
    /// The number after `@` in the SD-IDs. 32473 is the number IANA reserves for documentation (RFC 5612),
    /// so it never claims someone else's; a site with its own Private Enterprise Number sets that here.
    public var enterpriseNumber: String
    public var appName: String
    /// PROCID: the process that sends the message (the collector), as RFC 5424 defines it; the alert's
    /// process id travels in the structured data as `pid`.
    public var procID: String
    /// Whether MSG starts with a UTF-8 BOM (RFC 5424's MSG-UTF8). Off by default: most receivers, rsyslog
    /// included, write the BOM into their files verbatim, and RFC 5424 also allows MSG without one.
    public var utf8BOM: Bool
    /// A message longer than this is shortened (MSG first, then the rule fields); 0: no limit.
    public var maxMessageBytes: Int

    public init(
        facility: Int = 16, enterpriseNumber: String = "32473", appName: String = "patrol", procID: String = "-",
        utf8BOM: Bool = false, maxMessageBytes: Int = 0
    ) {
        precondition((0...23).contains(facility), "syslog facility is 0...23")
        self.facility = facility
        self.enterpriseNumber = enterpriseNumber
        self.appName = appName
        self.procID = procID
        self.utf8BOM = utf8BOM
        self.maxMessageBytes = maxMessageBytes
    }

    public var alertSDID: String { "patrol@\(enterpriseNumber)" }
    public var fieldsSDID: String { "patrolFields@\(enterpriseNumber)" }

    /// RFC 5424 severity for an alert severity (critical 2, high 3 error, medium 4 warning, low 5 notice,
    /// info 6 informational). Nothing is sent as emergency or alert: those mean the system itself is unusable.
    public static func severityCode(_ severity: Severity) -> Int {
        switch severity {
        case .critical: 2
        case .high: 3
        case .medium: 4
        case .low: 5
        case .info: 6
        }
    }

    public func priority(_ severity: Severity) -> Int { facility * 8 + Self.severityCode(severity) }

    /// The message bytes, without transport framing.
    public func message(_ alert: Alert) -> [UInt8] {
        let header =
            "<\(priority(alert.severity))>1 \(alert.time.iso8601) \(Self.headerField(alert.node, max: 255)) "
            + "\(Self.headerField(appName, max: 48)) \(Self.headerField(procID, max: 128)) "
            + "\(Self.headerField(alert.ruleID, max: 32)) "
        let alertElement = Self.element(alertSDID, Self.alertParams(alert))
        let fieldsElement =
            alert.fields.isEmpty
            ? "" : Self.element(fieldsSDID, alert.fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        var body = Array(alert.message.utf8)
        if utf8BOM { body.insert(contentsOf: [0xEF, 0xBB, 0xBF], at: 0) }

        var structured = Array((alertElement + fieldsElement).utf8)
        var head = Array(header.utf8)
        if maxMessageBytes > 0 {
            // What must survive, in order: header, the alert element, the rule fields, then MSG.
            if head.count + structured.count > maxMessageBytes, !fieldsElement.isEmpty {
                structured = Array(alertElement.utf8)
            }
            if head.count + structured.count > maxMessageBytes {
                let minimal = Self.element(
                    alertSDID,
                    [
                        ("id", alert.id), ("rule_id", alert.ruleID), ("severity", alert.severity.rawValue),
                        ("count", String(alert.count)), ("truncated", "true"),
                    ])
                structured = Array(minimal.utf8)
            }
            if head.count + structured.count > maxMessageBytes {
                head = Self.utf8Prefix(head, maxMessageBytes)
                return head
            }
            let room = maxMessageBytes - head.count - structured.count
            if body.count + 1 > room { body = room > 1 ? Self.utf8Prefix(body, room - 1) : [] }
        }
        var bytes = head
        bytes += structured
        if !body.isEmpty {
            bytes.append(UInt8(ascii: " "))
            bytes += body
        }
        return bytes
    }

    static func alertParams(_ alert: Alert) -> [(String, String)] {
        var params: [(String, String)] = [
            ("id", alert.id), ("alertname", alert.alertName), ("rule_id", alert.ruleID),
            ("rule_name", alert.ruleName), ("severity", alert.severity.rawValue),
            ("event_kind", alert.eventKind.rawValue), ("node", alert.node),
        ]
        if let container = alert.container {
            params += [
                ("namespace", container.namespace), ("pod", container.podName), ("container", container.containerName),
                ("container_id", container.containerID), ("image", container.image),
            ]
        }
        params += [
            ("pid", String(alert.process.pid)), ("ppid", String(alert.process.ppid)),
            ("uid", String(alert.process.uid)),
            ("gid", String(alert.process.gid)), ("comm", alert.process.comm), ("exe", alert.process.exe),
            ("cwd", alert.process.cwd), ("count", String(alert.count)),
            ("first_seen", alert.firstSeenTime.iso8601), ("last_seen", alert.lastSeenTime.iso8601),
        ]
        if let malware = alert.malware {
            params += [
                ("signature", malware.signature), ("path", malware.path), ("sha256", malware.sha256),
                ("size", String(malware.sizeBytes)), ("in_image", malware.inImage ? "true" : "false"),
            ]
        }
        if !alert.tags.isEmpty { params.append(("tags", alert.tags.joined(separator: ","))) }
        if !alert.fix.isEmpty { params.append(("fix", alert.fix)) }
        return params
    }

    /// `[SD-ID name="value" ...]`.
    static func element(_ id: String, _ params: [(String, String)]) -> String {
        var text = "[" + sdName(id, allowAt: true)
        for (name, value) in params {
            text += " " + sdName(name, allowAt: false) + "=\"" + escapeParamValue(value) + "\""
        }
        return text + "]"
    }

    /// PARAM-VALUE escaping (RFC 5424 §6.3.3): `"`, `\` and `]` get a backslash; nothing else changes.
    public static func escapeParamValue(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x22 || $0 == 0x5C || $0 == 0x5D }) else { return value }
        var text = ""
        text.reserveCapacity(value.utf8.count + 8)
        for scalar in value.unicodeScalars {
            if scalar == "\"" || scalar == "\\" || scalar == "]" { text.unicodeScalars.append("\\") }
            text.unicodeScalars.append(scalar)
        }
        return text
    }

    /// SD-NAME: 1 to 32 printable US-ASCII characters other than `=`, space, `]` and `"` (and `@` except in
    /// an SD-ID). Anything else becomes `_`, so a rule field named `ka.user name` arrives as `ka.user_name`.
    public static func sdName(_ name: String, allowAt: Bool) -> String {
        var bytes: [UInt8] = []
        for byte in name.utf8 {
            let ok =
                byte >= 33 && byte <= 126 && byte != 0x3D && byte != 0x5D && byte != 0x22 && (allowAt || byte != 0x40)
            bytes.append(ok ? byte : UInt8(ascii: "_"))
        }
        if bytes.isEmpty { return "_" }
        return String(decoding: allowAt ? bytes : Array(bytes.prefix(32)), as: UTF8.self)
    }

    /// HOSTNAME, APP-NAME, PROCID and MSGID: printable US-ASCII without spaces, at most `max` characters,
    /// `-` (the NILVALUE) when empty.
    static func headerField(_ value: String, max: Int) -> String {
        var bytes: [UInt8] = []
        for byte in value.utf8.prefix(max) { bytes.append(byte >= 33 && byte <= 126 ? byte : UInt8(ascii: "_")) }
        return bytes.isEmpty ? "-" : String(decoding: bytes, as: UTF8.self)
    }

    /// The longest prefix of `bytes` of at most `count` bytes that does not split a UTF-8 sequence.
    static func utf8Prefix(_ bytes: [UInt8], _ count: Int) -> [UInt8] {
        guard bytes.count > count else { return bytes }
        var end = count
        while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return Array(bytes[..<end])
    }
}
