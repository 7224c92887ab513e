import Basics
import EventModel

/// Alert de-duplication and cooldown (docs/alerts.md#de-duplication), applied where alerts are made, before
/// the outbox write, so every sink sees the same alerts.
///
/// The first alert of a rule, workload and key goes out at once. Alerts with the same rule, workload and key
/// whose event time falls inside the window that alert opened are held back and counted. When the window
/// closes, one summary alert goes out carrying the window's total `count` and the first and last event times,
/// unless nothing was held back. A window closes when a later alert of the same key falls past it, when the
/// wall clock has moved a whole window past its opening (`expire`), or when the collector shuts down
/// (`closeAll`). Counts held in memory are lost if the collector is killed; the first alert never is.
///
/// A value type owned by the ingest loop, like the rule evaluator: no locks.
public struct AlertCooldown: Sendable {
    public struct Policy: Sendable, Hashable {
        /// 0: every alert goes out on its own.
        public var windowNanoseconds: UInt64
        /// Alert values that must match besides rule and workload (the names `value(of:in:)` knows).
        public var key: [String]

        public init(windowNanoseconds: UInt64, key: [String] = ["message"]) {
            self.windowNanoseconds = windowNanoseconds
            self.key = key
        }

        public static let off = Policy(windowNanoseconds: 0)
    }

    struct Window: Sendable {
        var first: Alert
        var count: UInt64
        var lastSeen: EpochNanoseconds
        /// Wall-clock time the window opened, for `expire`.
        var openedAt: EpochNanoseconds
        var end: EpochNanoseconds
    }

    private let defaultPolicy: Policy
    private let rulePolicies: [String: Policy]
    private var windows: [String: Window] = [:]
    /// Bounds memory under a flood of distinct keys: past it, the oldest windows are closed early.
    private let maxWindows: Int
    /// Alerts held back since the start (`patrol_alerts_suppressed_total` by rule is kept by the caller).
    public private(set) var suppressed: UInt64 = 0

    public init(default defaultPolicy: Policy = .off, rules: [String: Policy] = [:], maxWindows: Int = 100_000) {
        self.defaultPolicy = defaultPolicy
        self.rulePolicies = rules
        self.maxWindows = maxWindows
    }

    public var isEnabled: Bool {
        defaultPolicy.windowNanoseconds > 0 || rulePolicies.values.contains { $0.windowNanoseconds > 0 }
    }

    public var openWindows: Int { windows.count }

    public func policy(for ruleID: String) -> Policy { rulePolicies[ruleID] ?? defaultPolicy }

    /// Takes the alerts of one ingest group; returns those to write: firsts, and summaries of windows that
    /// these alerts closed. `now` is the wall clock.
    public mutating func admit(_ alerts: [Alert], now: EpochNanoseconds) -> [Alert] {
        guard isEnabled else { return alerts }
        var out: [Alert] = []
        out.reserveCapacity(alerts.count)
        for alert in alerts {
            let policy = policy(for: alert.ruleID)
            guard policy.windowNanoseconds > 0 else {
                out.append(alert)
                continue
            }
            let key = Self.key(alert, policy)
            if var window = windows[key] {
                if alert.time < window.end {
                    window.count += UInt64(max(alert.count, 1))
                    window.lastSeen = max(window.lastSeen, alert.time)
                    windows[key] = window
                    suppressed += 1
                    continue
                }
                if let summary = Self.summary(window) { out.append(summary) }
            }
            windows[key] = Window(
                first: alert, count: UInt64(max(alert.count, 1)), lastSeen: alert.time, openedAt: now,
                end: alert.time &+ policy.windowNanoseconds)
            out.append(alert)
        }
        if windows.count > maxWindows { out += closeOldest(windows.count - maxWindows) }
        return out
    }

    /// Summaries of windows whose time has passed by the wall clock.
    public mutating func expire(now: EpochNanoseconds) -> [Alert] {
        var out: [Alert] = []
        for (key, window) in windows {
            let length = window.end - window.first.time
            if now >= window.openedAt &+ length {
                windows[key] = nil
                if let summary = Self.summary(window) { out.append(summary) }
            }
        }
        return out.sorted { $0.time < $1.time }
    }

    /// Summaries of every open window (shutdown).
    public mutating func closeAll() -> [Alert] {
        let out = windows.values.compactMap(Self.summary).sorted { $0.time < $1.time }
        windows.removeAll()
        return out
    }

    private mutating func closeOldest(_ count: Int) -> [Alert] {
        let oldest = windows.sorted { $0.value.openedAt < $1.value.openedAt }.prefix(count)
        var out: [Alert] = []
        for (key, window) in oldest {
            windows[key] = nil
            if let summary = Self.summary(window) { out.append(summary) }
        }
        return out
    }

    /// The summary of a window, or nil when only its first alert happened (that one already went out).
    static func summary(_ window: Window) -> Alert? {
        guard window.count > UInt64(max(window.first.count, 1)) else { return nil }
        var alert = window.first
        // Deterministic, so a replay of the same events makes the same summary id (idempotent sinks).
        alert.id = window.first.id + "-summary"
        alert.count = UInt32(clamping: window.count)
        alert.firstSeen = window.first.time
        alert.lastSeen = window.lastSeen
        alert.time = window.lastSeen
        return alert
    }

    /// Rule, workload (namespace, owner or pod, container; the node for host processes) and the key values.
    static func key(_ alert: Alert, _ policy: Policy) -> String {
        var parts = [alert.ruleID]
        if let container = alert.container {
            let workload =
                container.ownerName.isEmpty ? container.podName : "\(container.ownerKind)/\(container.ownerName)"
            parts += [container.namespace, workload, container.containerName]
        } else {
            parts += ["host", alert.node]
        }
        for name in policy.key { parts.append(value(of: name, in: alert)) }
        return parts.joined(separator: "\u{1F}")
    }

    /// A key value by name: alert and process attributes, or any of the alert's `fields`.
    public static func value(of name: String, in alert: Alert) -> String {
        switch name {
        case "message": alert.message
        case "exe", "proc.exe": alert.process.exe
        case "comm", "proc.name": alert.process.comm
        case "cwd", "proc.cwd": alert.process.cwd
        case "pid", "proc.pid": String(alert.process.pid)
        case "uid", "user.uid": String(alert.process.uid)
        case "node": alert.node
        case "pod": alert.container?.podName ?? ""
        case "container_id": alert.container?.containerID ?? ""
        case "image": alert.container?.image ?? ""
        case "severity": alert.severity.rawValue
        default: alert.fields[name] ?? ""
        }
    }
}
