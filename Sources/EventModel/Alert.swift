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
}
