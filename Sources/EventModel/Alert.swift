import Basics

/// How bad an alert is. Ordered, so `>=` thresholds work; raw values are the names in rule files.
public enum Severity: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case info, low, medium, high, critical

    private var rank: Int { Severity.allCases.firstIndex(of: self)! }
    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}

/// A rule fired. Everything every sink needs, with no sink-specific formatting.
public struct Alert: Sendable, Hashable, Codable {
    /// Stable identity: a hash of rule + workload identity + event key, so re-delivery is idempotent.
    public var id: String
    public var ruleID: String
    public var ruleName: String
    public var severity: Severity
    public var tags: [String]
    /// The rule's output template, rendered against the event.
    public var message: String
    /// How to fix or allow the behaviour.
    public var fix: String
    /// The triggering event's time (not the time the alert was made).
    public var time: EpochNanoseconds
    public var node: String
    public var eventKind: EventKind
    public var process: ProcessInfo
    public var container: ContainerRef?
    /// Extra named values (category, command, path, ...) for sinks that carry structured data.
    public var fields: [String: String]
    /// How many occurrences this alert stands for (edge de-duplication and alert cooldown fold them).
    public var count: UInt32
    /// Set on a cooldown summary: the event times of the first and last occurrence it stands for. Nil on
    /// an ordinary alert, whose only occurrence is `time` (optional so older outbox rows still decode).
    public var firstSeen: EpochNanoseconds?
    public var lastSeen: EpochNanoseconds?
    /// What the scanner found, on `PatrolMalwareDetected` alerts; nil on rule alerts.
    public var malware: MalwareDetails?

    public init(
        id: String, ruleID: String, ruleName: String, severity: Severity, tags: [String] = [], message: String,
        fix: String = "", time: EpochNanoseconds, node: String, eventKind: EventKind, process: ProcessInfo,
        container: ContainerRef? = nil, fields: [String: String] = [:], count: UInt32 = 1
    ) {
        self.id = id
        self.ruleID = ruleID
        self.ruleName = ruleName
        self.severity = severity
        self.tags = tags
        self.message = message
        self.fix = fix
        self.time = time
        self.node = node
        self.eventKind = eventKind
        self.process = process
        self.container = container
        self.fields = fields
        self.count = count
    }

    /// The alert name sinks group by: malware findings and rule violations (REFERENCE §7's Alertmanager names).
    public var alertName: String { malware != nil ? "PatrolMalwareDetected" : "PatrolRuleViolated" }
    /// The first occurrence's time: `firstSeen` on a summary, else the event time.
    public var firstSeenTime: EpochNanoseconds { firstSeen ?? time }
    public var lastSeenTime: EpochNanoseconds { lastSeen ?? time }
}

/// A file the malware scanner flagged. Container identity and image are the alert's `container`.
public struct MalwareDetails: Sendable, Hashable, Codable {
    /// The signature name ClamAV reported, e.g. `Eicar-Signature`.
    public var signature: String
    /// The file's path as the host sees it.
    public var path: String
    /// Lower-case hex SHA-256 of the file's content.
    public var sha256: String
    public var sizeBytes: UInt64
    /// True when the file comes from the image's layers (lowerdir), false when the container wrote it.
    public var inImage: Bool

    public init(signature: String, path: String, sha256: String, sizeBytes: UInt64, inImage: Bool) {
        self.signature = signature
        self.path = path
        self.sha256 = sha256
        self.sizeBytes = sizeBytes
        self.inImage = inImage
    }
}
