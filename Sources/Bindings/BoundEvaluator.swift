import EventModel
import RuleEngine

/// Evaluates events with the rules that bindings apply to the event's pod, and applies their severity overrides.
///
/// A drop-in for `RuleEvaluator` (`evaluate(_:) -> [Alert]`, one per ingest worker, holds sequence state):
/// - Events from a container use the resolution of their pod: namespace, the namespace's labels
///   (`kubernetes.io/metadata.name` always, plus what `namespaceLabels` supplies) and the pod's labels.
///   A pod that no binding selects gets no rules. While no bindings are applied at all, `defaultBindings` apply.
/// - Events from no container (the host, audit events) use `hostRules`.
/// - Each distinct resolution has one `RuleEvaluator` over the rule set compiled with its parameters and only
///   its rules enabled; the rule set for a parameter combination is compiled once and shared.
/// - The pod → evaluator map is a cache bounded by `maxCachedPods` (emptied when full), so the per-event cost is
///   one dictionary lookup.
/// - `apply`/`delete`/`replaceAll` swap the bindings atomically: pods are re-resolved, and a pod whose
///   resolution did not change keeps its evaluator and so its sequence state.
public struct BoundEvaluator: Sendable {
    public let ruleSet: RuleSet
    public let defaultBindings: [Binding]
    public let hostRules: HostRules
    public let maxCachedPods: Int
    public let maxSequenceStates: Int
    /// The applied bindings by key (`name` or `namespace/name`); empty means the default bindings are in force.
    public private(set) var bindings: [String: Binding] = [:]
    /// Resolutions whose parameters failed to compile (validation makes this unexpected); they ran with the
    /// rules' default parameters instead.
    public private(set) var compileFailures: Int = 0

    private let namespaceLabels: (@Sendable (String) -> [String: String])?
    private var resolver: BindingResolver

    /// The cache key: a pod and the labels it was resolved with. Hashing leaves the labels out (hashing a
    /// dictionary costs a hasher per entry); equality compares them, which is cheap when the event's labels are
    /// the resolver's shared copy, and catches labels that changed.
    struct PodKey: Hashable, Sendable {
        let namespace: String
        let podUID: String
        let podName: String
        let labels: [String: String]

        func hash(into hasher: inout Hasher) {
            hasher.combine(namespace)
            hasher.combine(podUID)
            hasher.combine(podName)
        }
    }

    struct Slot: Sendable {
        let resolution: Resolution
        var evaluator: RuleEvaluator
        let severities: [String: Severity]
    }

    private var cache: [PodKey: Int] = [:]
    private var slots: [Slot] = []
    private var slotIndex: [Resolution: Int] = [:]
    private var hostSlot: Int?
    private var compiled: [ParameterOverrides: RuleSet] = [:]

    /// - Parameters:
    ///   - bindings: validated bindings (`BindingLoader`) applied from the start; may be empty.
    ///   - defaultBindings: what applies while no bindings are applied (e.g. `rules/bindings/default.yaml`).
    ///   - namespaceLabels: the labels of a namespace when known (for `namespaceSelector`); the evaluator adds
    ///     `kubernetes.io/metadata.name`. Call `namespaceLabelsChanged()` when its answers change.
    public init(
        ruleSet: RuleSet, bindings: [Binding] = [], defaultBindings: [Binding] = [],
        hostRules: HostRules = .hostCapable,
        namespaceLabels: (@Sendable (String) -> [String: String])? = nil, maxCachedPods: Int = 16_384,
        maxSequenceStates: Int = 65_536
    ) {
        self.ruleSet = ruleSet
        self.defaultBindings = defaultBindings
        self.hostRules = hostRules
        self.namespaceLabels = namespaceLabels
        self.maxCachedPods = max(1, maxCachedPods)
        self.maxSequenceStates = maxSequenceStates
        for binding in bindings { self.bindings[binding.key] = binding }
        self.resolver = BindingResolver(ruleSet: ruleSet, bindings: bindings.isEmpty ? defaultBindings : bindings)
    }

    // MARK: - Evaluation

    /// The alerts `event` raises under the rules bound to its pod, with severity overrides applied.
    /// `profile` is the application profile's judgement of the event (for `needs_profile` anomaly rules), as
    /// `RuleEvaluator.evaluate(_:profile:)` takes it.
    public mutating func evaluate(_ event: Event, profile: ProfileJudgement? = nil) -> [Alert] {
        let index: Int
        if let container = event.container {
            let key = PodKey(
                namespace: container.namespace, podUID: container.podUID, podName: container.podName,
                labels: container.labels)
            if let cached = cache[key] {
                index = cached
            } else {
                index = slot(for: resolve(key))
                if cache.count >= maxCachedPods { cache.removeAll(keepingCapacity: true) }
                cache[key] = index
            }
        } else if let hostSlot {
            index = hostSlot
        } else {
            index = slot(for: hostRules.resolution(ruleSet))
            hostSlot = index
        }
        if slots[index].resolution.rules.isEmpty { return [] }
        var alerts = slots[index].evaluator.evaluate(event, profile: profile)
        if !slots[index].severities.isEmpty {
            for position in alerts.indices {
                if let severity = slots[index].severities[alerts[position].ruleID] {
                    alerts[position].severity = severity
                }
            }
        }
        return alerts
    }

    /// The rules that apply to a pod in `namespace` with `podLabels` under the current bindings.
    public func resolution(namespace: String, podLabels: [String: String]) -> Resolution {
        resolve(PodKey(namespace: namespace, podUID: "", podName: "", labels: podLabels))
    }

    /// The rules that apply to events from no container.
    public var hostResolution: Resolution { hostRules.resolution(ruleSet) }

    /// Distinct evaluators alive (one per distinct resolution in use).
    public var evaluatorCount: Int { slots.count }
    /// Pods whose resolution is cached.
    public var cachedPods: Int { cache.count }

    // MARK: - Changing bindings

    /// Adds or replaces (by key) validated bindings, all at once.
    public mutating func apply(_ new: [Binding]) {
        var next = bindings
        for binding in new { next[binding.key] = binding }
        install(next)
    }

    /// Removes the binding with this key (`name`, or `namespace/name` for a namespaced one).
    public mutating func delete(_ key: String) throws(BindingsError) {
        guard bindings[key] != nil else {
            throw BindingsError(
                .notFound, "no binding '\(key)'" + didYouMean(key, bindings.keys),
                at: BindingLocation(file: "<applied>", document: 0))
        }
        var next = bindings
        next[key] = nil
        install(next)
    }

    /// Replaces every binding with `new` (empty: back to the default bindings).
    public mutating func replaceAll(_ new: [Binding]) {
        var next: [String: Binding] = [:]
        for binding in new { next[binding.key] = binding }
        install(next)
    }

    /// Forget cached resolutions because namespace labels changed; evaluators whose resolution stays are kept.
    public mutating func namespaceLabelsChanged() { install(bindings) }

    private mutating func install(_ next: [String: Binding]) {
        bindings = next
        let active = next.isEmpty ? defaultBindings : Array(next.values)
        resolver = BindingResolver(ruleSet: ruleSet, bindings: active)
        // Re-resolve every cached pod now, so pods whose rules did not change keep their evaluator (and the
        // progress of their sequence rules); evaluators no pod uses any more are dropped.
        let oldSlots = slots
        let oldCache = cache
        slots = []
        slotIndex = [:]
        cache = [:]
        if let hostSlot {
            self.hostSlot = adopt(oldSlots[hostSlot])
        }
        var remap: [Int: Int] = [:]
        for (key, _) in oldCache {
            let resolution = resolve(key)
            if let existing = slotIndex[resolution] {
                cache[key] = existing
            } else if let old = oldSlots.firstIndex(where: { $0.resolution == resolution }) {
                let index = remap[old] ?? adopt(oldSlots[old])
                remap[old] = index
                cache[key] = index
            } else {
                cache[key] = slot(for: resolution)
            }
        }
        // Compiled rule sets no slot uses are released.
        let used = Set(slots.map { $0.resolution.parameterOverrides })
        compiled = compiled.filter { used.contains($0.key) }
    }

    private mutating func adopt(_ old: Slot) -> Int {
        slots.append(old)
        slotIndex[old.resolution] = slots.count - 1
        return slots.count - 1
    }

    // MARK: - Resolution

    private func resolve(_ key: PodKey) -> Resolution {
        var labels = key.namespace.isEmpty ? [:] : (namespaceLabels?(key.namespace) ?? [:])
        // Kubernetes sets this label on every namespace; without a provider it is the one label we know.
        if !key.namespace.isEmpty { labels["kubernetes.io/metadata.name"] = key.namespace }
        return resolver.resolve(namespace: key.namespace, namespaceLabels: labels, podLabels: key.labels)
    }

    private mutating func slot(for resolution: Resolution) -> Int {
        if let existing = slotIndex[resolution] { return existing }
        let overrides = resolution.parameterOverrides
        var base: RuleSet
        if let known = compiled[overrides] {
            base = known
        } else if overrides.isEmpty {
            base = ruleSet
        } else {
            do {
                base = try ruleSet.withParameters(overrides)
            } catch {
                compileFailures += 1
                base = ruleSet
            }
            compiled[overrides] = base
        }
        // A rule disabled in the rule files stays off even when a binding names it.
        let ids = resolution.rules
        let enabled = base.enabling { ids[$0.id] != nil && $0.enabled }
        slots.append(
            Slot(
                resolution: resolution,
                evaluator: RuleEvaluator(ruleSet: enabled, maxSequenceStates: maxSequenceStates),
                severities: resolution.severities))
        slotIndex[resolution] = slots.count - 1
        return slots.count - 1
    }
}
