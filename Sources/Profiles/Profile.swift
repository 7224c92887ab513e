import Basics
import EventModel

/// Where a container's profile is in its life.
public enum ProfileState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Recording behaviour; nothing is an anomaly yet.
    case learning
    /// Learning, but the container was first seen already running, so what it did before is missing.
    /// When the period ends it becomes `final` and is marked incomplete.
    case partial
    /// Learning is over: behaviour outside the profile is an anomaly.
    case final
    /// A size limit was reached while learning. The profile is kept as it was (never silently truncated),
    /// learns no more and raises no anomalies, because what it lacks is unknown.
    case failed

    /// Whether events are recorded into the profile.
    public var learns: Bool { self == .learning || self == .partial }
}

/// The profile of one container of a workload.
public struct ContainerProfile: Sendable, Hashable, Codable {
    public var name: String
    public var state: ProfileState
    /// True when learning started after the container did (it was `partial`), so the profile may lack
    /// start-up behaviour.
    public var incomplete: Bool
    /// When the first container of the workload with this name was seen, nanoseconds since the epoch.
    public var learningStartedAt: EpochNanoseconds
    /// When learning ends and the profile becomes final.
    public var learningEndsAt: EpochNanoseconds
    /// Why the profile failed, naming the limit.
    public var failureReason: String?
    public var behaviour: Behaviour

    public init(
        name: String, state: ProfileState, incomplete: Bool = false, learningStartedAt: EpochNanoseconds,
        learningEndsAt: EpochNanoseconds, failureReason: String? = nil, behaviour: Behaviour = Behaviour()
    ) {
        self.name = name
        self.state = state
        self.incomplete = incomplete
        self.learningStartedAt = learningStartedAt
        self.learningEndsAt = learningEndsAt
        self.failureReason = failureReason
        self.behaviour = behaviour
    }
}

/// A workload's profile: one `ContainerProfile` per container name, merged over all its pods.
public struct ApplicationProfile: Sendable, Hashable, Codable {
    public var workload: WorkloadKey
    public var containers: [ContainerProfile]

    public init(workload: WorkloadKey, containers: [ContainerProfile]) {
        self.workload = workload
        self.containers = containers
    }

    public func container(_ name: String) -> ContainerProfile? { containers.first { $0.name == name } }
}

/// Limits on what one container's profile may hold. Reaching one fails the profile.
public struct ProfileLimits: Sendable, Hashable, Codable {
    public var execs: Int
    public var opens: Int
    public var dns: Int
    public var endpoints: Int

    public init(execs: Int = 2_000, opens: Int = 20_000, dns: Int = 2_000, endpoints: Int = 5_000) {
        self.execs = execs
        self.opens = opens
        self.dns = dns
        self.endpoints = endpoints
    }

    /// The first limit `counts` exceeds: its name (`execs`, `opens`, `dns`, `endpoints`, as metrics label it)
    /// and a reason for people.
    func violation(_ counts: Behaviour.Counts) -> (limit: String, reason: String)? {
        if counts.execs > execs { return ("execs", "more than \(execs) distinct execs (limit execs)") }
        if counts.opens > opens { return ("opens", "more than \(opens) distinct opened paths (limit opens)") }
        if counts.dns > dns { return ("dns", "more than \(dns) distinct DNS names (limit dns)") }
        if counts.endpoints > endpoints {
            return ("endpoints", "more than \(endpoints) distinct endpoints (limit endpoints)")
        }
        return nil
    }
}
