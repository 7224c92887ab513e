import Basics

/// Where a problem in a binding file is: file, document number (1-based, in `---` order), the binding's name
/// when known, the field path inside the document (`spec.rules[2].ruleName`) and the YAML line (0 when unknown).
public struct BindingLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var document: Int
    public var name: String?
    public var path: String
    public var line: Int

    public init(file: String, document: Int, name: String? = nil, path: String = "", line: Int = 0) {
        self.file = file
        self.document = document
        self.name = name
        self.path = path
        self.line = line
    }

    /// `file:line: document N (name): path`
    public var description: String {
        var text = line > 0 ? "\(file):\(line)" : file
        if document > 0 {
            text += ": document \(document)"
            if let name, !name.isEmpty { text += " (\(name))" }
        }
        if !path.isEmpty { text += ": \(path)" }
        return text
    }
}

/// One thing wrong with a binding document.
public struct BindingProblem: Sendable, Hashable, CustomStringConvertible {
    public var code: BindingsError.Code
    public var location: BindingLocation
    public var reason: String

    public init(_ code: BindingsError.Code, _ reason: String, at location: BindingLocation) {
        self.code = code
        self.reason = reason
        self.location = location
    }

    public var description: String { "\(location): \(reason)" }
}

/// Binding documents were rejected. Applying is all-or-nothing, so when this is thrown nothing was applied;
/// `problems` lists every error found (not only the first), each with file, document, field path and reason.
public struct BindingsError: PatrolError {
    public enum Code: String, Sendable, CaseIterable {
        /// A file or directory could not be read.
        case io
        /// Not valid YAML, or not the shape of a RuntimeRuleAlertBinding (wrong apiVersion/kind, a key that
        /// does not exist, a value of the wrong YAML type, a missing required field).
        case badDocument = "bad_document"
        /// A rule entry has none or more than one of ruleName, ruleID, ruleTags.
        case ruleReference = "rule_reference"
        /// ruleName or ruleID names no loaded rule, or ruleTags match none.
        case unknownRule = "unknown_rule"
        /// A parameter the rule does not have, or a value of the wrong shape or type.
        case badParameter = "bad_parameter"
        case badSeverity = "bad_severity"
        /// A label selector that Kubernetes would refuse.
        case badSelector = "bad_selector"
        /// Two documents in one apply share a name.
        case duplicateName = "duplicate_name"
        /// `delete` of a binding that does not exist.
        case notFound = "not_found"
    }

    public let code: Code
    public let message: String
    public let cause: Cause?
    public let problems: [BindingProblem]

    public init(_ problems: [BindingProblem], cause: Cause? = nil) {
        precondition(!problems.isEmpty, "a BindingsError needs at least one problem")
        self.problems = problems
        self.code = problems[0].code
        self.cause = cause
        self.message = problems.map(\.description).joined(separator: "\n")
    }

    public init(_ code: Code, _ reason: String, at location: BindingLocation, cause: Cause? = nil) {
        self.init([BindingProblem(code, reason, at: location)], cause: cause)
    }
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
func didYouMean(_ word: String, _ candidates: some Sequence<String>) -> String {
    func distance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = Swift.min(
                    previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
    // Case-insensitive: rule names are sentences, and "unexpected process launched" is a likely typo.
    let target = Array(word.lowercased().utf8)
    var best: (String, Int)?
    for candidate in candidates {
        let d = distance(target, Array(candidate.lowercased().utf8))
        if d <= Swift.max(2, target.count / 4), best == nil || d < best!.1 { best = (candidate, d) }
    }
    return best.map { " (did you mean '\($0.0)'?)" } ?? ""
}
