import Basics

/// Where something was written: a file and a 1-based line (0 when unknown).
public struct RuleFileLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }
    public var description: String { line > 0 ? "\(file):\(line)" : file }
}

/// A rule file could not be loaded. Loading is all-or-nothing: when this is thrown, nothing was loaded.
///
/// `message` reads `file:line: rule 'ID': reason`, e.g.
/// `rules.yaml:12: rule 'R1003': unknown field 'proc.nmae' (did you mean 'proc.name'?)`.
public struct RuleEngineError: PatrolError {
    public enum Code: String, Sendable, CaseIterable {
        /// The file could not be read.
        case io
        /// The file is not valid YAML, or not the expected shape (a list of `list`/`macro`/`rule` items).
        case badYAML = "bad_yaml"
        /// A key that rule files do not have (usually a typo).
        case unknownKey = "unknown_key"
        /// A required key is missing or a value has the wrong YAML shape.
        case badValue = "bad_value"
        /// The condition or output template does not parse.
        case badCondition = "bad_condition"
        case badRegex = "bad_regex"
        case badGlob = "bad_glob"
        case unknownMacro = "unknown_macro"
        case unknownList = "unknown_list"
        case unknownField = "unknown_field"
        case unknownParameter = "unknown_parameter"
        /// An operator or value does not fit the field's type (e.g. `proc.pid regex x`, `net.dport = http`).
        case typeMismatch = "type_mismatch"
        /// The field is not available for any of the rule's event kinds.
        case fieldNotApplicable = "field_not_applicable"
        case duplicateRule = "duplicate_rule"
        case badSeverity = "bad_severity"
        case badEventKind = "bad_event_kind"
        /// Macros that refer to themselves, directly or not.
        case macroCycle = "macro_cycle"
        /// An `append`/`override` for a list, macro, rule or exception that was never defined.
        case overrideTarget = "override_target"
    }

    public let code: Code
    public let message: String
    public let cause: Cause?
    public let location: RuleFileLocation
    /// The rule (id), macro or list the problem is in, when there is one.
    public let rule: String?
    /// What is wrong, without the location.
    public let reason: String

    public var file: String { location.file }
    public var line: Int { location.line }

    public init(_ code: Code, _ reason: String, at location: RuleFileLocation, rule: String? = nil, cause: Cause? = nil) {
        self.code = code
        self.reason = reason
        self.location = location
        self.rule = rule
        self.cause = cause
        var text = "\(location)"
        if let rule { text += ": \(rule)" }
        self.message = text + ": " + reason
    }
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
func suggestion(for word: String, among candidates: some Sequence<String>) -> String? {
    func distance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
    let target = Array(word.utf8)
    var best: (String, Int)?
    for candidate in candidates {
        let d = distance(target, Array(candidate.utf8))
        if d <= Swift.max(2, target.count / 4), best == nil || d < best!.1 { best = (candidate, d) }
    }
    return best?.0
}

func didYouMean(_ word: String, _ candidates: some Sequence<String>) -> String {
    suggestion(for: word, among: candidates).map { " (did you mean '\($0)'?)" } ?? ""
}
