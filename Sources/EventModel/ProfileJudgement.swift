/// What a workload's application profile said about one event, handed to the rule engine with the event so
/// that anomaly rules can test it (`profile.*` fields). The Profiles module makes it; keeping the type here
/// lets the rule engine read it without depending on how profiles are learned or stored.
public struct ProfileJudgement: Sendable, Hashable {
    /// `learning`, `partial`, `final` or `failed`.
    public var state: String
    /// `namespace/Kind/name` of the workload.
    public var workload: String
    /// The behaviours the profile lacks that this event shows, in words (`exec /bin/sh -c id`), each reported
    /// once per container; empty when nothing is unexpected.
    public var unexpected: [String]
    /// For each unexpected behaviour, the `patrolctl profiles allow ...` command that adds it.
    public var allowCommands: [String]

    public init(state: String, workload: String, unexpected: [String] = [], allowCommands: [String] = []) {
        self.state = state
        self.workload = workload
        self.unexpected = unexpected
        self.allowCommands = allowCommands
    }
}
