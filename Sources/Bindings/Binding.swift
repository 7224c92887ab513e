import EventModel
import RuleEngine

/// How a binding's rule entry names its rules: exactly one of KubeCop's `ruleName`, `ruleID` or `ruleTags`.
public enum RuleReference: Sendable, Hashable, CustomStringConvertible {
    case name(String)
    case id(String)
    /// OR: every rule carrying at least one of the tags.
    case tags([String])

    public var description: String {
        switch self {
        case .name(let name): return "ruleName '\(name)'"
        case .id(let id): return "ruleID '\(id)'"
        case .tags(let tags): return "ruleTags [\(tags.joined(separator: ", "))]"
        }
    }
}

/// One `spec.rules[]` entry.
public struct BindingRule: Sendable, Hashable {
    public var reference: RuleReference
    /// Parameter overrides; for `ruleTags` they apply to each selected rule that declares the parameter.
    public var parameters: [String: ParameterValue]
    /// Severity override for the alerts of these rules (KubeCop accepted and ignored it; Patrol applies it).
    public var severity: Severity?
    /// The rule ids the reference selects, filled in by validation against a rule set (load order).
    public var ruleIDs: [String]
    /// The entry's line in its file (0 when unknown), for errors found after parsing.
    var line: Int = 0

    public init(
        reference: RuleReference, parameters: [String: ParameterValue] = [:], severity: Severity? = nil,
        ruleIDs: [String] = []
    ) {
        self.reference = reference
        self.parameters = parameters
        self.severity = severity
        self.ruleIDs = ruleIDs
    }
}

/// A `RuntimeRuleAlertBinding` (`apiVersion: kubescape.io/v1`): which rules apply to which pods.
///
/// Cluster-scoped when `metadata.namespace` is absent; with `metadata.namespace` the binding applies only to pods
/// of that namespace (in addition to its selectors), and its identity is `namespace/name`.
public struct Binding: Sendable, Hashable {
    public static let apiVersion = "kubescape.io/v1"
    public static let kind = "RuntimeRuleAlertBinding"

    public var name: String
    public var namespace: String?
    public var namespaceSelector: LabelSelector
    public var podSelector: LabelSelector
    public var rules: [BindingRule]
    /// Where the binding was read from (file and document number); `path` and `line` are empty.
    public var source: BindingLocation

    public init(
        name: String, namespace: String? = nil, namespaceSelector: LabelSelector = .everything,
        podSelector: LabelSelector = .everything, rules: [BindingRule],
        source: BindingLocation = BindingLocation(file: "<inline>", document: 1)
    ) {
        self.name = name
        self.namespace = namespace
        self.namespaceSelector = namespaceSelector
        self.podSelector = podSelector
        self.rules = rules
        self.source = source
    }

    /// `name`, or `namespace/name` for a namespaced binding: what `apply` replaces and `delete` removes.
    public var key: String { namespace.map { "\($0)/\(name)" } ?? name }

    /// True when the binding selects a pod in `namespace` (with the namespace's labels) carrying `podLabels`.
    public func selects(namespace podNamespace: String, namespaceLabels: [String: String], podLabels: [String: String])
        -> Bool
    {
        if let namespace, namespace != podNamespace { return false }
        return namespaceSelector.matches(namespaceLabels) && podSelector.matches(podLabels)
    }
}
