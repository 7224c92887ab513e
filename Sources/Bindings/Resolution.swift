import EventModel
import RuleEngine

/// One rule as it applies to a pod after merging every binding that selects the pod.
public struct RuleInstance: Sendable, Hashable {
    /// Parameter overrides (only those the bindings set; the rule's defaults fill the rest).
    public var parameters: [String: ParameterValue]
    /// The severity override, nil for the rule's own severity.
    public var severity: Severity?

    public init(parameters: [String: ParameterValue] = [:], severity: Severity? = nil) {
        self.parameters = parameters
        self.severity = severity
    }
}

/// The rules that apply to one pod (or to the host): rule id → instance. Pods with equal resolutions share one
/// evaluator.
public struct Resolution: Sendable, Hashable {
    public var rules: [String: RuleInstance]

    public init(rules: [String: RuleInstance] = [:]) { self.rules = rules }

    /// The parameter overrides to compile the rule set with.
    var parameterOverrides: ParameterOverrides {
        var overrides: ParameterOverrides = [:]
        for (id, instance) in rules where !instance.parameters.isEmpty { overrides[id] = instance.parameters }
        return overrides
    }

    var severities: [String: Severity] {
        var result: [String: Severity] = [:]
        for (id, instance) in rules { if let severity = instance.severity { result[id] = severity } }
        return result
    }
}

/// Which rules evaluate events that come from no container (the host itself, and audit events).
public enum HostRules: Sendable, Hashable {
    /// Every rule whose condition does not start with `in_container` (those never fire on the host), at its own
    /// parameters and severity.
    case hostCapable
    /// Exactly these rule ids.
    case ids(Set<String>)
    /// None: host events raise nothing.
    case none

    func resolution(_ ruleSet: RuleSet) -> Resolution {
        var rules: [String: RuleInstance] = [:]
        for rule in ruleSet.rules {
            switch self {
            case .hostCapable:
                let condition = rule.condition.drop { $0 == " " || $0 == "\n" || $0 == "(" }
                if !condition.hasPrefix("in_container") { rules[rule.id] = RuleInstance() }
            case .ids(let ids): if ids.contains(rule.id) { rules[rule.id] = RuleInstance() }
            case .none: break
            }
        }
        return Resolution(rules: rules)
    }
}

/// Merges the bindings that select a pod into one `Resolution`.
///
/// - The rules are the union of every selecting binding's rules: one instance per rule id, never duplicates.
/// - Parameters merge per parameter name. Bindings are visited in order of their key (`name`, or
///   `namespace/name`), and rule entries in file order; a later value for the same rule and parameter replaces an
///   earlier one. So the binding whose key sorts last wins, whatever order they were applied in.
/// - Severity: the highest override among the selecting entries wins; without any, the rule's own severity.
/// - A `ruleTags` entry's parameters go to each selected rule that declares them.
struct BindingResolver: Sendable {
    let ruleSet: RuleSet
    /// Sorted by key.
    let bindings: [Binding]

    init(ruleSet: RuleSet, bindings: [Binding]) {
        self.ruleSet = ruleSet
        self.bindings = bindings.sorted { $0.key < $1.key }
    }

    func resolve(namespace: String, namespaceLabels: [String: String], podLabels: [String: String]) -> Resolution {
        var rules: [String: RuleInstance] = [:]
        for binding in bindings
        where binding.selects(namespace: namespace, namespaceLabels: namespaceLabels, podLabels: podLabels) {
            for entry in binding.rules {
                for id in entry.ruleIDs {
                    var instance = rules[id] ?? RuleInstance()
                    if let declared = ruleSet.rule(id: id)?.parameters {
                        for (name, value) in entry.parameters where declared[name] != nil {
                            instance.parameters[name] = value
                        }
                    }
                    if let severity = entry.severity {
                        instance.severity = max(instance.severity ?? severity, severity)
                    }
                    rules[id] = instance
                }
            }
        }
        return Resolution(rules: rules)
    }
}
