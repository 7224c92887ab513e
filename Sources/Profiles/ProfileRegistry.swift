import Basics
import EventModel
import Synchronization

/// How profiles learn.
public struct ProfileConfiguration: Sendable, Hashable {
    /// How long a new workload container learns, nanoseconds. KubeCop's default was 15 minutes; 12–24 hours
    /// suits production, where a workload's daily jobs should be part of its profile.
    public var learningPeriod: UInt64
    /// Learning periods per namespace, overriding `learningPeriod`.
    public var namespaceLearningPeriods: [String: UInt64]
    /// Up to this fraction of the period is added, different per workload, so that profiles created together
    /// (a cluster's first start, a node's reboot) do not all turn final, and start alerting, in the same second.
    public var jitter: Double
    public var limits: ProfileLimits
    /// Whether an exec is known only with the same arguments (KubeCop compared the path only).
    public var compareExecArgs: Bool

    public init(
        learningPeriod: UInt64 = 15 * 60 * 1_000_000_000, namespaceLearningPeriods: [String: UInt64] = [:],
        jitter: Double = 0.1, limits: ProfileLimits = ProfileLimits(), compareExecArgs: Bool = true
    ) {
        self.learningPeriod = learningPeriod
        self.namespaceLearningPeriods = namespaceLearningPeriods
        self.jitter = jitter
        self.limits = limits
        self.compareExecArgs = compareExecArgs
    }

    /// The learning period of a workload: its namespace's or the default, plus its own jitter. The jitter is
    /// derived from the workload's name, so it is the same after a collector restart.
    func learningPeriod(for key: ProfileKey) -> UInt64 {
        let base = namespaceLearningPeriods[key.workload.namespace] ?? learningPeriod
        guard jitter > 0 else { return base }
        var hash = StableHash()
        hash.combine(key.workload.description)
        hash.combine(key.container)
        let fraction = Double(hash.value % 10_000) / 10_000
        return base + UInt64(Double(base) * jitter * fraction)
    }
}

/// What a profile says about one event.
public struct ProfileVerdict: Sendable, Hashable {
    /// The workload container whose profile judged; set only when something is unexpected, because copying
    /// it for every event would cost more than the check itself.
    public var key: ProfileKey?
    /// The profile's state after this event was taken into account.
    public var state: ProfileState
    /// The event's behaviours the profile does not hold and that were not reported before for this
    /// container (each unexpected behaviour is reported once per container). Always empty unless `final`.
    public var unexpected: [ProfileItem]

    /// True when anomaly rules should fire for this event.
    public var isAnomalous: Bool { !unexpected.isEmpty }
}

/// The profiles of every workload container the collector has seen, learning from events and judging them.
///
/// `observe` runs for every event from a container, so it is one dictionary lookup by container id on the
/// fast path; everything else (profile creation, persistence, edits through patrolctl) is rare.
public final class ProfileRegistry: Sendable {
    private let configuration: ProfileConfiguration
    private let state: Mutex<State>

    /// A container profile shared by every running container of the workload with that name.
    final class Entry {
        var profile: ContainerProfile
        var dirty = true
        init(_ profile: ContainerProfile) { self.profile = profile }

        /// Appends `item` to `unexpected` when the profile lacks it and it was not reported for the container.
        @inline(__always)
        func check(_ item: ProfileItem, slot: Slot, compareArgs: Bool, into unexpected: inout [ProfileItem]) {
            guard !holds(item, compareArgs: compareArgs) else { return }
            if slot.reported.count >= ProfileRegistry.maxReportedPerContainer || slot.reported.insert(item).inserted {
                unexpected.append(item)
            }
        }

        /// Whether the profile holds `item`, reading the behaviour in place. A plain `profile.behaviour.allows(...)`
        /// on this class's stored struct is made on a copy, because the compiler cannot prove the lookups leave
        /// the property alone: a retain and release of each of the behaviour's seven sets, every one a cache miss
        /// on a cold profile (perf: 16 % of `observe` with 10k profiles). Through an exclusive (inout) access
        /// the call borrows the stored value instead.
        @inline(__always)
        func holds(_ item: ProfileItem, compareArgs: Bool) -> Bool {
            Self.holds(&profile.behaviour, item, compareArgs: compareArgs)
        }

        @inline(__always)
        private static func holds(_ behaviour: inout Behaviour, _ item: ProfileItem, compareArgs: Bool) -> Bool {
            behaviour.allows(item, compareArgs: compareArgs)
        }
    }

    /// One running container: its profile and what was already reported for it.
    final class Slot {
        let key: ProfileKey
        let entry: Entry
        var reported: Set<ProfileItem> = []
        var lastSeen: EpochNanoseconds
        init(key: ProfileKey, entry: Entry, lastSeen: EpochNanoseconds) {
            self.key = key
            self.entry = entry
            self.lastSeen = lastSeen
        }
    }

    struct State {
        var entries: [ProfileKey: Entry] = [:]
        var slots: [ContainerKey: Slot] = [:]
        var observedSinceSweep = 0
        var transitions = Transitions()
        /// The container of the previous event: a sensor's batch carries runs of events from one container,
        /// and comparing the id with the previous one (usually the very same string object) is cheaper than
        /// packing and looking it up again.
        var lastContainerID = ""
        var lastSlot: Slot?
    }

    /// State changes counted as they happen, for metrics (`statistics()`).
    struct Transitions {
        var finalized = 0
        var failedByLimit: [String: Int] = [:]
    }

    /// Containers not seen for this long are forgotten (their profile stays); a restarted container gets a
    /// new id anyway.
    static let idleContainerNanoseconds: UInt64 = 3600 * 1_000_000_000
    /// Each unexpected behaviour is reported once per container, up to this many per container; beyond it,
    /// a container that keeps doing new things is reported for each (better noisy than silent).
    static let maxReportedPerContainer = 10_000

    public init(configuration: ProfileConfiguration = ProfileConfiguration()) {
        self.configuration = configuration
        self.state = Mutex(State())
    }

    // MARK: Events

    /// Learns from or judges one event. Nil for host events, containers outside any pod, and event kinds
    /// profiles do not cover.
    ///
    /// - Parameter startedBeforeObservation: the container was already running when it was first seen (the
    ///   sensor found it at start-up), so a new profile starts `partial`.
    public func observe(_ event: Event, startedBeforeObservation: Bool = false) -> ProfileVerdict? {
        guard let container = event.container, let items = EventItems(event) else { return nil }
        return state.withLock { state -> ProfileVerdict? in
            let slot: Slot
            let containerID = container.containerID
            if let last = state.lastSlot, containerID == state.lastContainerID {
                slot = last
            } else if let known = state.slots[ContainerKey(containerID)] {
                slot = known
                state.lastContainerID = containerID
                state.lastSlot = known
            } else {
                guard let workload = WorkloadKey(container: container) else { return nil }
                let key = ProfileKey(workload: workload, container: container.containerName)
                let entry = state.entries[key] ?? {
                    let period = configuration.learningPeriod(for: key)
                    let created = Entry(
                        ContainerProfile(
                            name: key.container, state: startedBeforeObservation ? .partial : .learning,
                            incomplete: startedBeforeObservation, learningStartedAt: event.time,
                            learningEndsAt: event.time &+ period))
                    state.entries[key] = created
                    return created
                }()
                slot = Slot(key: key, entry: entry, lastSeen: event.time)
                state.slots[ContainerKey(containerID)] = slot
                state.lastContainerID = containerID
                state.lastSlot = slot
                Self.sweepIfDue(&state, now: event.time)
            }
            slot.lastSeen = max(slot.lastSeen, event.time)
            return judge(items, event: event, slot: slot, transitions: &state.transitions)
        }
    }

    private func judge(
        _ items: EventItems, event: Event, slot: Slot, transitions: inout Transitions
    ) -> ProfileVerdict {
        let entry = slot.entry
        if entry.profile.state.learns, event.time >= entry.profile.learningEndsAt {
            entry.profile.state = .final
            entry.dirty = true
            transitions.finalized += 1
        }
        switch entry.profile.state {
        case .learning, .partial:
            // Only new behaviour touches the profile: most events repeat what is known, and a copy of the
            // behaviour per event would cost as much as the profile is large.
            items.forEach { item in
                guard !entry.holds(item, compareArgs: true) else { return true }
                if let violation = configuration.limits.violation(entry.profile.behaviour.counts(adding: item)) {
                    entry.profile.state = .failed  // keep what fit, say why, learn no more
                    entry.profile.failureReason = violation.reason
                    entry.dirty = true
                    transitions.failedByLimit[violation.limit, default: 0] += 1
                    return false
                }
                item.add(to: &entry.profile.behaviour)
                entry.dirty = true
                return true
            }
            if case .dns(let query) = event.payload, entry.profile.state.learns, !query.answers.isEmpty {
                let name = normalisedDNSName(query.name)
                if !(entry.profile.behaviour.dns[name]?.isSuperset(of: query.answers) ?? false) {
                    entry.profile.behaviour.dns[name, default: []].formUnion(query.answers)
                    entry.dirty = true
                }
            }
            return ProfileVerdict(key: nil, state: entry.profile.state, unexpected: [])
        case .failed:
            return ProfileVerdict(key: nil, state: .failed, unexpected: [])
        case .final:
            var unexpected: [ProfileItem] = []
            switch items {
            case .single(let item): entry.check(item, slot: slot, compareArgs: configuration.compareExecArgs, into: &unexpected)
            case .syscalls(let numbers):
                for number in numbers {
                    entry.check(.syscall(number), slot: slot, compareArgs: configuration.compareExecArgs, into: &unexpected)
                }
            }
            return ProfileVerdict(key: unexpected.isEmpty ? nil : slot.key, state: .final, unexpected: unexpected)
        }
    }

    private static func sweepIfDue(_ state: inout State, now: EpochNanoseconds) {
        state.observedSinceSweep += 1
        guard state.observedSinceSweep >= 1024 else { return }
        state.observedSinceSweep = 0
        let cutoff = now > idleContainerNanoseconds ? now - idleContainerNanoseconds : 0
        state.slots = state.slots.filter { $0.value.lastSeen >= cutoff }
        state.lastSlot = nil
    }

    // MARK: Profiles

    /// Every workload's profile, with learning that has ended by `now` shown as final.
    public func profiles(now: EpochNanoseconds = WallClock.now()) -> [ApplicationProfile] {
        state.withLock { state in
            var byWorkload: [WorkloadKey: [ContainerProfile]] = [:]
            for (key, entry) in state.entries {
                var profile = entry.profile
                if profile.state.learns, now >= profile.learningEndsAt { profile.state = .final }
                byWorkload[key.workload, default: []].append(profile)
            }
            return byWorkload.keys.sorted().map { workload in
                ApplicationProfile(workload: workload, containers: byWorkload[workload]!.sorted { $0.name < $1.name })
            }
        }
    }

    public func profile(_ workload: WorkloadKey, now: EpochNanoseconds = WallClock.now()) -> ApplicationProfile? {
        profiles(now: now).first { $0.workload == workload }
    }

    /// Adds or replaces a workload's container profiles (an import, or a restore from the store).
    /// Running containers of the workload use the new profile from their next event; what was already
    /// reported for them stays reported.
    public func install(_ profile: ApplicationProfile, markDirty: Bool = true) {
        state.withLock { state in
            for container in profile.containers {
                let key = ProfileKey(workload: profile.workload, container: container.name)
                if let entry = state.entries[key] {
                    entry.profile = container
                    entry.dirty = entry.dirty || markDirty
                } else {
                    let entry = Entry(container)
                    entry.dirty = markDirty
                    state.entries[key] = entry
                }
            }
        }
    }

    /// Adds one behaviour to a container's profile, so it is no longer an anomaly. Returns false when the
    /// workload container has no profile.
    @discardableResult
    public func allow(_ item: ProfileItem, in key: ProfileKey) -> Bool {
        state.withLock { state in
            guard let entry = state.entries[key] else { return false }
            item.add(to: &entry.profile.behaviour)
            entry.dirty = true
            return true
        }
    }

    /// Ends learning now for a workload (every container, or one). Returns the containers finalised.
    @discardableResult
    public func finalize(_ workload: WorkloadKey, container: String? = nil, now: EpochNanoseconds = WallClock.now()) -> [String] {
        state.withLock { state in
            var done: [String] = []
            for (key, entry) in state.entries where key.workload == workload && (container == nil || key.container == container) {
                guard entry.profile.state.learns else { continue }
                entry.profile.state = .final
                entry.profile.learningEndsAt = min(entry.profile.learningEndsAt, now)
                entry.dirty = true
                state.transitions.finalized += 1
                done.append(key.container)
            }
            return done.sorted()
        }
    }

    /// Forgets a workload's profiles so that it learns again from its next event. Returns whether it had any.
    @discardableResult
    public func reset(_ workload: WorkloadKey) -> Bool {
        state.withLock { state in
            let keys = state.entries.keys.filter { $0.workload == workload }
            for key in keys { state.entries[key] = nil }
            state.slots = state.slots.filter { $0.value.key.workload != workload }
            state.lastSlot = nil  // it may be one of those
            return !keys.isEmpty
        }
    }

    /// The profiles changed since the last call (learned behaviour, state changes, edits), for persistence.
    public func takeChanged() -> [ApplicationProfile] {
        state.withLock { state in
            var byWorkload: [WorkloadKey: [ContainerProfile]] = [:]
            for (key, entry) in state.entries where entry.dirty {
                entry.dirty = false
                byWorkload[key.workload, default: []].append(entry.profile)
            }
            return byWorkload.keys.sorted().map { ApplicationProfile(workload: $0, containers: byWorkload[$0]!) }
        }
    }

    /// Puts profiles back as changed after a failed save, so the next save retries them.
    public func markChanged(_ profiles: [ApplicationProfile]) {
        state.withLock { state in
            for profile in profiles {
                for container in profile.containers {
                    state.entries[ProfileKey(workload: profile.workload, container: container.name)]?.dirty = true
                }
            }
        }
    }

    /// Takes back the reports of `verdicts` (their unexpected behaviour counts as not yet reported for the
    /// container), because the alerts they raised were not committed: when the sensor resends the batch, the
    /// same events must alert again rather than be judged already reported.
    public func unreport(_ verdicts: [(containerID: String, verdict: ProfileVerdict)]) {
        state.withLock { state in
            for (containerID, verdict) in verdicts where !verdict.unexpected.isEmpty {
                guard let slot = state.slots[ContainerKey(containerID)] else { continue }
                for item in verdict.unexpected { slot.reported.remove(item) }
            }
        }
    }

    /// The profiles' states and the transitions since the registry was created, for metrics. A profile whose
    /// learning period is over turns final here rather than on its container's next event, so an idle
    /// workload is counted (and saved) as final when its period ends.
    public func statistics(now: EpochNanoseconds = WallClock.now()) -> ProfileStatistics {
        state.withLock { state in
            var counts: [ProfileState: Int] = [:]
            for entry in state.entries.values {
                if entry.profile.state.learns, now >= entry.profile.learningEndsAt {
                    entry.profile.state = .final
                    entry.dirty = true
                    state.transitions.finalized += 1
                }
                counts[entry.profile.state, default: 0] += 1
            }
            return ProfileStatistics(
                profiles: counts, finalized: state.transitions.finalized,
                failedByLimit: state.transitions.failedByLimit)
        }
    }

    /// How many container profiles are held, by state.
    public func counts() -> [ProfileState: Int] {
        state.withLock { state in
            var counts: [ProfileState: Int] = [:]
            for entry in state.entries.values { counts[entry.profile.state, default: 0] += 1 }
            return counts
        }
    }
}

/// Profile counts for metrics: how many are in each state now, how many finished learning and how many failed
/// (by the limit reached) since the registry was created.
public struct ProfileStatistics: Sendable, Hashable {
    public var profiles: [ProfileState: Int]
    public var finalized: Int
    public var failedByLimit: [String: Int]

    public init(profiles: [ProfileState: Int], finalized: Int, failedByLimit: [String: Int]) {
        self.profiles = profiles
        self.finalized = finalized
        self.failedByLimit = failedByLimit
    }
}

/// The behaviours one event shows: one item, except a syscall set's many. Not an array, because an
/// allocation per event would cost more than the check.
enum EventItems {
    case single(ProfileItem)
    case syscalls([UInt32])

    init?(_ event: Event) {
        switch event.payload {
        case .exec(let exec): self = .single(.exec(path: exec.path, argv: exec.argv))
        case .open(let open): self = .single(.open(path: open.path, flags: open.flags))
        case .syscalls(let set): self = .syscalls(set.syscalls)
        case .capability(let use): self = .single(.capability(syscall: use.syscall, capability: use.capability))
        case .dns(let query): self = .single(.dns(normalisedDNSName(query.name)))
        case .connect(let flow):
            self = .single(.outgoing(Endpoint(proto: flow.proto, address: flow.remoteAddress, port: flow.remotePort)))
        case .accept(let flow): self = .single(.incoming(Endpoint(proto: flow.proto, address: "", port: flow.localPort)))
        default: return nil
        }
    }

    /// Calls `body` for each item until it returns false.
    @inline(__always)
    func forEach(_ body: (ProfileItem) -> Bool) {
        switch self {
        case .single(let item): _ = body(item)
        case .syscalls(let numbers):
            for number in numbers where !body(.syscall(number)) { return }
        }
    }
}

extension ProfileVerdict {
    /// The verdict as the rule engine's `profile.*` fields read it.
    public var judgement: ProfileJudgement {
        ProfileJudgement(
            state: state.rawValue, workload: key?.workload.description ?? "",
            unexpected: unexpected.map(\.summary),
            allowCommands: key.map { key in unexpected.map { $0.allowCommand(for: key) } } ?? [])
    }
}

/// A container id as the registry's key. Runtimes name containers with 64 hex digits (containerd, CRI-O,
/// Docker); such an id is kept as its 32 bytes in four words, so the per-event lookup hashes 32 bytes and
/// compares inline words instead of hashing 64 characters and comparing against a key string in another heap
/// object (a cache miss per event with many containers). Any other id is kept as its string.
struct ContainerKey: Hashable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var other: String?

    init(_ id: String) {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let packed = id.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard bytes.count == 64 else { return false }
            for quarter in 0..<4 {
                var word: UInt64 = 0
                for index in quarter * 16..<quarter * 16 + 16 {
                    let byte = bytes[index]
                    let digit: UInt8
                    switch byte {
                    case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte &- UInt8(ascii: "0")
                    case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte &- UInt8(ascii: "a") &+ 10
                    default: return false  // upper case or not hex: kept as the string, so ids stay distinct
                    }
                    word = word << 4 | UInt64(digit)
                }
                switch quarter {
                case 0: words.0 = word
                case 1: words.1 = word
                case 2: words.2 = word
                default: words.3 = word
                }
            }
            return true
        }
        if packed == true {
            self.words = words
        } else {
            self.other = id  // not a 64-digit lower-case hex id (or a string without contiguous UTF-8)
        }
    }

    static func == (a: ContainerKey, b: ContainerKey) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
            && a.other == b.other
    }

    func hash(into hasher: inout Hasher) {
        // All four words: ids are not always random in every digit (a runtime or a test may number them), and
        // hashing 32 bytes is still half of hashing the 64 characters.
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
        if let other { hasher.combine(other) }
    }
}
