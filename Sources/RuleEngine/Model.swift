import EventModel

/// A rule parameter's value: one scalar or a list, kept as text and typed where a condition uses it.
public enum ParameterValue: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral
{
    case scalar(String)
    case list([String])

    public init(stringLiteral value: String) { self = .scalar(value) }
    public init(integerLiteral value: Int) { self = .scalar(String(value)) }
    public init(booleanLiteral value: Bool) { self = .scalar(value ? "true" : "false") }
    public init(arrayLiteral elements: String...) { self = .list(elements) }

    /// From a JSON value (e.g. a binding's `parameters`): arrays become lists, scalars text.
    public init(_ json: JSONValue) {
        switch json {
        case .array(let items): self = .list(items.compactMap(jsonScalarText))
        default: self = .scalar(jsonScalarText(json) ?? "")
        }
    }

    /// The values a condition sees: one for a scalar, all for a list.
    public var items: [String] {
        switch self {
        case .scalar(let value): return [value]
        case .list(let values): return values
        }
    }

    public var isList: Bool {
        if case .list = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .scalar(let value): return value
        case .list(let values): return "[" + values.joined(separator: ", ") + "]"
        }
    }
}

/// Parameter overrides for a rule set: rule id → parameter name → value.
public typealias ParameterOverrides = [String: [String: ParameterValue]]

/// A Falco-style exception: the rule does not fire when, for any row of `values`, every field compares
/// true against the row's value with the matching operator in `comps`.
public struct RuleException: Sendable, Hashable {
    public var name: String
    public var fields: [String]
    /// One operator per field (`=`, `in`, `startswith`, ...); defaults to `=` (or `in` for a scalar `fields`).
    public var comps: [String]
    /// Rows of values, one value (scalar or list) per field.
    public var values: [[ParameterValue]]
    public var location: RuleFileLocation

    public init(name: String, fields: [String], comps: [String], values: [[ParameterValue]], location: RuleFileLocation) {
        self.name = name
        self.fields = fields
        self.comps = comps
        self.values = values
        self.location = location
    }
}

/// "A then B within D, same key": each step's event must match in order, all sharing the `by` values,
/// inside `within` nanoseconds of the first step.
public struct RuleSequence: Sendable, Hashable {
    public struct Step: Sendable, Hashable {
        public var events: [EventKind]
        public var condition: String
        var conditionLocation: RuleFileLocation
    }
    /// Fields whose values must be equal across the steps (the node and container always are).
    public var by: [String]
    public var withinNanoseconds: UInt64
    public var steps: [Step]
}

/// One rule as loaded (after `append`/`override` from later files) with its effective parameters.
public struct Rule: Sendable, Hashable {
    public var id: String
    public var name: String
    public var description: String
    public var severity: Severity
    public var tags: [String]
    /// The event kinds the rule is evaluated for (for sequences, the union of the steps' kinds).
    public var events: [EventKind]
    public var condition: String
    public var output: String
    public var fix: String
    /// Effective parameters: the rule's defaults with any overrides applied.
    public var parameters: [String: ParameterValue]
    public var needsProfile: Bool
    public var enabled: Bool
    public var exceptions: [RuleException]
    public var sequence: RuleSequence?
    /// Alert cooldown for this rule; nil: the collector-wide default applies.
    public var dedup: RuleDedup? = nil
    /// Where the rule was defined.
    public var location: RuleFileLocation

    var conditionLocation: RuleFileLocation
    var outputLocation: RuleFileLocation
    /// The parameter defaults from the rule files, before overrides.
    var defaultParameters: [String: ParameterValue]
}

/// A rule's `dedup:` setting: alerts of the rule with the same workload and key inside `window` fold into one.
public struct RuleDedup: Sendable, Hashable {
    /// 0 turns cooldown off for the rule.
    public var windowNanoseconds: UInt64
    /// Alert values that must also match (docs/alerts.md#de-duplication lists the names).
    public var key: [String]

    public init(windowNanoseconds: UInt64, key: [String]) {
        self.windowNanoseconds = windowNanoseconds
        self.key = key
    }
}

struct ListDefinition: Sendable {
    var name: String
    var items: [String]
    var location: RuleFileLocation
}

struct MacroDefinition: Sendable {
    var name: String
    var condition: String
    var conditionLocation: RuleFileLocation
    var expr: Expr = .and([])
}

/// Everything read from the rule files, after merging, before compilation.
struct RuleDocument: Sendable {
    var lists: [String: ListDefinition] = [:]
    var macros: [String: MacroDefinition] = [:]
    var rules: [Rule] = []
    var ruleIndex: [String: Int] = [:]
}
