import Basics
import Bindings
import Foundation
import Logging
import Metrics
import RuleEngine
import Store
import Synchronization

/// What an apply did to one binding.
public enum BindingApplyAction: String, Sendable {
    case created, updated, unchanged, rejected
}

/// One binding's outcome in an apply. `name` is empty when a document was too broken to have one.
public struct BindingApplyResult: Sendable, Hashable {
    public var name: String
    /// Empty for a cluster-scoped binding.
    public var namespace: String
    public var action: BindingApplyAction
    /// Why it was rejected (`file:line: document N (name): field.path: reason`, one problem a line), or what
    /// happened.
    public var message: String

    public init(name: String, namespace: String, action: BindingApplyAction, message: String) {
        self.name = name
        self.namespace = namespace
        self.action = action
        self.message = message
    }
}

/// One applied binding, for listing.
public struct BindingSummary: Sendable, Hashable {
    public var name: String
    /// Empty for a cluster-scoped binding.
    public var namespace: String
    /// The rule entries as written: a rule name, a rule id, or `tags:a,b` for a `ruleTags` entry.
    public var rules: [String]
    /// `namespaces: <selector>; pods: <selector>` in kubectl's selector notation (`<all>` for an empty one).
    public var selector: String
    /// When it was applied, epoch nanoseconds.
    public var appliedAt: UInt64
    /// Where it came from: `patrolctl` (applied and stored by the collector) or `kubernetes` (a custom resource the
    /// collector follows; deleted by deleting the resource, not by patrolctl).
    public var source: String

    public init(
        name: String, namespace: String, rules: [String], selector: String, appliedAt: UInt64,
        source: String = BindingSummary.appliedSource
    ) {
        self.name = name
        self.namespace = namespace
        self.rules = rules
        self.selector = selector
        self.appliedAt = appliedAt
        self.source = source
    }

    public static let appliedSource = "patrolctl"
    public static let clusterSource = "kubernetes"
}

/// Owns the collector's applied rule bindings: validates applies against the loaded rule set, keeps them in the
/// store (so they survive restarts) and hands each change to the ingest loop.
///
/// The ingest loop is the only owner of its `BoundEvaluator`; it asks `change(after:)` between groups of batches
/// and swaps the whole binding set at once, so no event is evaluated half-way through a change, and pods whose
/// rules did not change keep their evaluator and its sequence state.
///
/// Admin operations run one at a time (a store write sits between validating and publishing), in call order.
public final class BindingsController: Sendable {
    /// A published binding set; `generation` grows with every change.
    struct Change: Sendable {
        let generation: UInt64
        let bindings: [Binding]
    }

    struct Entry: Sendable {
        var binding: Binding
        var yaml: String
        var appliedAt: EpochNanoseconds
    }

    struct State: Sendable {
        var entries: [String: Entry] = [:]
        /// Bindings from the Kubernetes API's custom resources, by resource (`runtimerulealertbindings`,
        /// `namespacedruntimerulealertbindings`) then `namespace/name`. Kept apart from `entries` (patrolctl's,
        /// stored): the API is their store, and deleting a custom resource removes only its own binding.
        var cluster: [String: [String: Entry]] = [:]
        var generation: UInt64 = 0
        /// Custom resources rejected so far, and the last one's reasons (`resource/namespace/name: problems`).
        var clusterRejected = 0
        var lastClusterRejection: String?

        /// Every binding in force: patrolctl's and the cluster's.
        var all: [Binding] {
            entries.values.map(\.binding) + cluster.values.flatMap { $0.values.map(\.binding) }
        }
    }

    let ruleSet: RuleSet
    /// What applies while no binding is applied (the configured seed, `bindings.files`).
    let defaultBindings: [Binding]
    private let store: Store
    private let logger: Logger
    private let state: Mutex<State>
    /// The last admin operation; the next one waits for it, so store writes and publishing keep call order.
    private let tail = Mutex<Task<Void, Never>?>(nil)
    private let metrics = BindingsMetrics()

    init(ruleSet: RuleSet, defaultBindings: [Binding], entries: [Entry], store: Store, logger: Logger) {
        self.ruleSet = ruleSet
        self.defaultBindings = defaultBindings
        self.store = store
        self.logger = logger
        var initial = State()
        for entry in entries { initial.entries[entry.binding.key] = entry }
        self.state = Mutex(initial)
        metrics.applied.record(Double(entries.count))
    }

    // MARK: - Admin operations

    /// Validates every document of every text as one apply and, unless `dryRun`, stores and applies them.
    /// All-or-nothing: if any document is invalid, nothing changes and every result is `rejected`.
    public func apply(_ documents: [(source: String, text: String)], dryRun: Bool) async -> [BindingApplyResult] {
        // Source names tell the documents apart in results and errors; a repeated one (stdin twice) is numbered.
        var seen: [String: Int] = [:]
        let sources = documents.map { document -> (file: String, yaml: String) in
            let count = (seen[document.source] ?? 0) + 1
            seen[document.source] = count
            return (count == 1 ? document.source : "\(document.source) (\(count))", document.text)
        }
        return await serialized { [self] in await applyNow(sources, dryRun: dryRun) }
    }

    /// The applied bindings, by namespace then name; `namespace` filters ("" for the cluster-scoped ones).
    /// patrolctl's bindings and those from the Kubernetes API, each marked with its source, by namespace and name.
    public func list(namespace: String?) async -> [BindingSummary] {
        let (applied, cluster) = state.withLock { state in
            (Array(state.entries.values), state.cluster.values.flatMap(\.values))
        }
        let summaries =
            applied.map { Self.summary($0, source: BindingSummary.appliedSource) }
            + cluster.map { Self.summary($0, source: BindingSummary.clusterSource) }
        return
            summaries
            .filter { namespace == nil || $0.namespace == namespace }
            .sorted { ($0.namespace, $0.name, $0.source) < ($1.namespace, $1.name, $1.source) }
    }

    /// The YAML document a binding came from, as written (patrolctl's) or as the custom resource's spec; nil when
    /// there is no such binding. patrolctl's wins when both have the name.
    public func get(name: String, namespace: String) async -> String? {
        let key = Self.key(name: name, namespace: namespace)
        return state.withLock { state in
            if let applied = state.entries[key] { return applied.yaml }
            return state.cluster.keys.sorted().compactMap { state.cluster[$0]?[key]?.yaml }.first
        }
    }

    /// Removes an applied binding; false when there is none. When the last one goes, the default bindings apply
    /// again.
    public func delete(name: String, namespace: String) async throws -> Bool {
        try await serialized { [self] () async throws(StoreError) -> Bool in
            let key = Self.key(name: name, namespace: namespace)
            guard state.withLock({ $0.entries[key] != nil }) else { return false }
            guard try await store.deleteBinding(name: name, namespace: namespace) else { return false }
            publish { $0.entries[key] = nil }
            logger.info("binding deleted", metadata: ["binding": "\(key)"])
            return true
        }
    }

    // MARK: - The ingest loop's side

    /// The binding set now in force (empty: the default bindings apply).
    var current: Change {
        state.withLock { Change(generation: $0.generation, bindings: $0.all) }
    }

    /// The binding set if it changed since `generation`, else nil (the cheap, common answer).
    func change(after generation: UInt64) -> Change? {
        state.withLock { state in
            guard state.generation != generation else { return nil }
            return Change(generation: state.generation, bindings: state.all)
        }
    }

    /// The ingest loop reports its evaluator's size after each group, for the metrics.
    func recordEvaluator(evaluators: Int, cachedPods: Int) {
        metrics.evaluators.record(Double(evaluators))
        metrics.cachedPods.record(Double(cachedPods))
    }

    // MARK: - Bindings from the Kubernetes API

    /// Replaces every binding that came from `resource` with these custom resources (a list). Each one is
    /// validated alone: an invalid one is rejected (logged with its reasons, counted) and the rest apply; one that
    /// was valid before keeps its last valid version in force, as a failed `patrolctl apply` changes nothing.
    /// Returns the rejections, `namespace/name` → reasons.
    @discardableResult
    func replaceClusterBindings(resource: String, _ objects: [(key: String, yaml: String)]) -> [String: String] {
        let previous = state.withLock { $0.cluster[resource] ?? [:] }
        var next: [String: Entry] = [:]
        var rejected: [String: String] = [:]
        for object in objects {
            switch validateClusterBinding(resource: resource, key: object.key, yaml: object.yaml) {
            case .success(let entry): next[object.key] = entry
            case .failure(let rejection):
                rejected[object.key] = rejection.reason
                if let kept = previous[object.key] { next[object.key] = kept }
            }
        }
        let changed = next.count != previous.count || next.contains { key, entry in
            previous[key].map { !$0.binding.hasSameEffect(as: entry.binding) } ?? true
        }
        if changed { publish { $0.cluster[resource] = next } }
        metrics.cluster.record(Double(state.withLock { $0.cluster.values.reduce(0) { $0 + $1.count } }))
        logger.info(
            "bindings listed from the Kubernetes API",
            metadata: ["resource": "\(resource)", "applied": "\(next.count)", "rejected": "\(rejected.count)"])
        return rejected
    }

    /// Applies one custom resource (created or modified); returns why it was rejected, or nil.
    @discardableResult
    func putClusterBinding(resource: String, key: String, yaml: String) -> String? {
        switch validateClusterBinding(resource: resource, key: key, yaml: yaml) {
        case .failure(let rejection): return rejection.reason
        case .success(let entry):
            let old = state.withLock { $0.cluster[resource]?[key] }
            if let old, old.binding.hasSameEffect(as: entry.binding) { return nil }
            publish { $0.cluster[resource, default: [:]][key] = entry }
            metrics.cluster.record(Double(state.withLock { $0.cluster.values.reduce(0) { $0 + $1.count } }))
            logger.info(
                old == nil ? "binding created in the Kubernetes API" : "binding updated in the Kubernetes API",
                metadata: ["resource": "\(resource)", "binding": "\(key)"])
            return nil
        }
    }

    /// Removes the binding of a deleted custom resource (and only it).
    func removeClusterBinding(resource: String, key: String) {
        guard state.withLock({ $0.cluster[resource]?[key] != nil }) else { return }
        publish { _ = $0.cluster[resource]?.removeValue(forKey: key) }
        metrics.cluster.record(Double(state.withLock { $0.cluster.values.reduce(0) { $0 + $1.count } }))
        logger.info("binding deleted in the Kubernetes API", metadata: ["resource": "\(resource)", "binding": "\(key)"])
    }

    /// The bindings from the Kubernetes API, as `resource/namespace/name` (for status and tests).
    var clusterBindingKeys: [String] {
        state.withLock { state in
            state.cluster.flatMap { resource, entries in entries.keys.map { "\(resource)/\($0)" } }.sorted()
        }
    }

    /// Custom resources rejected so far, and the last rejection's reasons.
    var clusterRejections: (count: Int, last: String?) {
        state.withLock { ($0.clusterRejected, $0.lastClusterRejection) }
    }

    private struct Rejection: Error {
        let reason: String
    }

    private func validateClusterBinding(resource: String, key: String, yaml: String) -> Result<Entry, Rejection> {
        let source = "kubernetes:\(resource)/\(key)"
        let reason: String
        do {
            let loaded = try BindingLoader.load(yaml: yaml, file: source, ruleSet: ruleSet)
            if loaded.count == 1, loaded[0].key == key {
                return .success(Entry(binding: loaded[0], yaml: yaml, appliedAt: WallClock.now()))
            }
            reason = "the object does not hold exactly the binding \(key)"
        } catch {
            reason = error.problems.map(\.description).joined(separator: "; ")
        }
        metrics.clusterRejected.increment()
        state.withLock { state in
            state.clusterRejected += 1
            state.lastClusterRejection = "\(resource)/\(key): \(reason)"
        }
        logger.error(
            "a binding in the Kubernetes API is invalid; rejected (a previous valid version stays in force)",
            metadata: ["resource": "\(resource)", "binding": "\(key)", "problems": "\(reason)"])
        return .failure(Rejection(reason: reason))
    }

    // MARK: - Implementation

    private func applyNow(_ sources: [(file: String, yaml: String)], dryRun: Bool) async -> [BindingApplyResult] {
        let bindings: [Binding]
        do {
            bindings = try BindingLoader.load(sources: sources, ruleSet: ruleSet)
        } catch {
            return rejections(error, sources: sources)
        }
        let now = WallClock.now()
        var texts: [String: [String]] = [:]
        for source in sources where texts[source.file] == nil {
            texts[source.file] = BindingLoader.documentTexts(source.yaml)
        }
        let existing = state.withLock { $0.entries }
        var results: [BindingApplyResult] = []
        var changed: [Entry] = []
        for binding in bindings {
            let document = binding.source.document
            let documents = texts[binding.source.file] ?? []
            let yaml = documents.indices.contains(document - 1) ? documents[document - 1] : ""
            let action: BindingApplyAction
            if let old = existing[binding.key] {
                action = old.binding.hasSameEffect(as: binding) ? .unchanged : .updated
            } else {
                action = .created
            }
            if action != .unchanged { changed.append(Entry(binding: binding, yaml: yaml, appliedAt: now)) }
            results.append(
                BindingApplyResult(
                    name: binding.name, namespace: binding.namespace ?? "", action: action,
                    message: "\(binding.source.file) document \(document)" + (dryRun ? " (dry run)" : "")))
        }
        guard !dryRun, !changed.isEmpty else { return results }
        do {
            try await store.saveBindings(
                changed.map {
                    BindingRecord(
                        name: $0.binding.name, namespace: $0.binding.namespace ?? "", yaml: $0.yaml,
                        appliedAt: $0.appliedAt)
                })
        } catch {
            logger.error("cannot store bindings; the apply is refused", metadata: ["error": "\(error)"])
            return results.map {
                BindingApplyResult(
                    name: $0.name, namespace: $0.namespace, action: .rejected,
                    message: "not applied: cannot store bindings: \(error.message)")
            }
        }
        publish { state in for entry in changed { state.entries[entry.binding.key] = entry } }
        logger.info(
            "bindings applied",
            metadata: ["changed": "\(changed.map(\.binding.key).sorted())", "applied": "\(results.count)"])
        return results
    }

    /// One result per document with problems (all its problems, one a line), then one per valid document, which
    /// the invalid ones hold back.
    private func rejections(_ error: BindingsError, sources: [(file: String, yaml: String)]) -> [BindingApplyResult] {
        struct Document: Hashable {
            let file: String
            let document: Int
        }
        var order: [Document] = []
        var problems: [Document: [BindingProblem]] = [:]
        for problem in error.problems {
            let document = Document(file: problem.location.file, document: problem.location.document)
            if problems[document] == nil { order.append(document) }
            problems[document, default: []].append(problem)
        }
        var results = order.map { document in
            let found = problems[document]!
            return BindingApplyResult(
                name: found.compactMap(\.location.name).first ?? "", namespace: "", action: .rejected,
                message: found.map(\.description).joined(separator: "\n"))
        }
        // Documents valid on their own are named too, so the caller sees everything the apply held back.
        for source in sources {
            guard let valid = try? BindingLoader.load(yaml: source.yaml, file: source.file, ruleSet: ruleSet) else {
                continue
            }
            for binding in valid
            where problems[Document(file: binding.source.file, document: binding.source.document)] == nil {
                results.append(
                    BindingApplyResult(
                        name: binding.name, namespace: binding.namespace ?? "", action: .rejected,
                        message:
                            "\(binding.source.file) document \(binding.source.document): valid, but not applied "
                            + "because other documents of this apply are invalid"))
            }
        }
        return results
    }

    private func publish(_ change: (inout State) -> Void) {
        let count = state.withLock { state in
            change(&state)
            state.generation += 1
            return state.entries.count
        }
        metrics.applied.record(Double(count))
    }

    private func serialized<T: Sendable, E: Error>(_ operation: @escaping @Sendable () async throws(E) -> T)
        async throws(E) -> T
    {
        let task: Task<Result<T, E>, Never> = tail.withLock { tail in
            let previous = tail
            let task = Task { () async -> Result<T, E> in
                await previous?.value
                do throws(E) {
                    return .success(try await operation())
                } catch {
                    return .failure(error)
                }
            }
            tail = Task { _ = await task.value }
            return task
        }
        return try await task.value.get()
    }

    static func key(name: String, namespace: String) -> String { namespace.isEmpty ? name : "\(namespace)/\(name)" }

    static func summary(_ entry: Entry, source: String) -> BindingSummary {
        let binding = entry.binding
        let rules = binding.rules.map { rule in
            switch rule.reference {
            case .name(let name): return name
            case .id(let id): return id
            case .tags(let tags): return "tags:" + tags.joined(separator: ",")
            }
        }
        return BindingSummary(
            name: binding.name, namespace: binding.namespace ?? "", rules: rules,
            selector: "namespaces: \(binding.namespaceSelector); pods: \(binding.podSelector)",
            appliedAt: entry.appliedAt, source: source)
    }
}

extension BindingsController {
    /// Loads the stored bindings and the seed for a starting collector.
    ///
    /// The seed is `seedPaths` (`bindings.files`; empty: no default bindings at all) or, when that is not
    /// configured, `bindings/default.yaml` in each rule directory that has one (the shipped
    /// `rules/bindings/default.yaml` next to the shipped rules); when there is none, every rule applies to every
    /// pod while no binding is applied, as before bindings existed.
    /// The seed must be valid: an invalid seed stops the start-up, like an invalid rule file.
    /// A stored binding that no longer validates (a rule it names was removed from the rule files) is logged and
    /// left out, but kept in the store, so it comes back once the rules do; applying a binding of the same name
    /// replaces it.
    static func load(ruleSet: RuleSet, seedPaths: [String]?, rulePaths: [String], store: Store, logger: Logger)
        async throws -> BindingsController
    {
        let defaults: [Binding]
        let paths = seedPaths ?? defaultSeedPaths(rulePaths: rulePaths)
        if seedPaths == nil, paths.isEmpty {
            logger.warning(
                "no bindings/default.yaml next to the rules; every rule applies to every pod while no binding is applied",
                metadata: ["rules": "\(rulePaths)"])
            defaults = [Binding.everyRule(in: ruleSet)]
        } else {
            defaults = try BindingLoader.load(paths: paths, ruleSet: ruleSet)
            logger.info("default bindings loaded", metadata: ["files": "\(paths)", "bindings": "\(defaults.count)"])
        }
        var entries: [Entry] = []
        for record in try await store.bindings() {
            let key = key(name: record.name, namespace: record.namespace)
            do {
                let loaded = try BindingLoader.load(yaml: record.yaml, file: "store:\(key)", ruleSet: ruleSet)
                guard loaded.count == 1, loaded[0].key == key else {
                    logger.error("a stored binding does not hold exactly that binding; left out", metadata: ["binding": "\(key)"])
                    continue
                }
                entries.append(Entry(binding: loaded[0], yaml: record.yaml, appliedAt: record.appliedAt))
            } catch {
                logger.error(
                    "a stored binding no longer validates against the rules; left out until it does",
                    metadata: ["binding": "\(key)", "problems": "\(error.problems.map(\.description))"])
            }
        }
        logger.info("bindings restored", metadata: ["applied": "\(entries.count)"])
        return BindingsController(ruleSet: ruleSet, defaultBindings: defaults, entries: entries, store: store, logger: logger)
    }

    /// `bindings/default.yaml` in each rule path that is a directory and has one.
    static func defaultSeedPaths(rulePaths: [String]) -> [String] {
        rulePaths.map { path in (path.hasSuffix("/") ? String(path.dropLast()) : path) + "/bindings/default.yaml" }
            .filter { FileManager.default.fileExists(atPath: $0) }
    }
}

/// `patrol_bindings_*`: what the collector's rule bindings cost.
struct BindingsMetrics: Sendable {
    let applied = Gauge(label: "patrol_bindings_applied")
    let evaluators = Gauge(label: "patrol_bindings_evaluators")
    let cachedPods = Gauge(label: "patrol_bindings_cached_pods")
    /// Bindings in force from the Kubernetes API's custom resources.
    let cluster = Gauge(label: "patrol_bindings_cluster_applied")
    /// Custom resources rejected as invalid (each time one is listed or changed).
    let clusterRejected = Counter(label: "patrol_bindings_cluster_rejected_total")
}
