/// A Kubernetes `LabelSelector`: `matchLabels` plus `matchExpressions`, all ANDed. An empty selector (or an absent
/// one) matches every label set, as in Kubernetes.
public struct LabelSelector: Sendable, Hashable {
    public enum Operator: String, Sendable, Hashable, CaseIterable {
        case `in` = "In"
        case notIn = "NotIn"
        case exists = "Exists"
        case doesNotExist = "DoesNotExist"
    }

    public struct Requirement: Sendable, Hashable {
        public var key: String
        public var op: Operator
        /// Non-empty for In/NotIn, empty for Exists/DoesNotExist (validation enforces both).
        public var values: [String]

        public init(key: String, op: Operator, values: [String] = []) {
            self.key = key
            self.op = op
            self.values = values
        }

        /// Kubernetes semantics: NotIn and DoesNotExist also match when the key is absent.
        public func matches(_ labels: [String: String]) -> Bool {
            switch op {
            case .in: return labels[key].map { values.contains($0) } ?? false
            case .notIn: return labels[key].map { !values.contains($0) } ?? true
            case .exists: return labels[key] != nil
            case .doesNotExist: return labels[key] == nil
            }
        }
    }

    public var matchLabels: [String: String]
    public var matchExpressions: [Requirement]

    public init(matchLabels: [String: String] = [:], matchExpressions: [Requirement] = []) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    /// Matches everything.
    public static let everything = LabelSelector()

    public var isEmpty: Bool { matchLabels.isEmpty && matchExpressions.isEmpty }

    public func matches(_ labels: [String: String]) -> Bool {
        for (key, value) in matchLabels where labels[key] != value { return false }
        for requirement in matchExpressions where !requirement.matches(labels) { return false }
        return true
    }
}

/// Kubernetes' syntax rules for label keys and values (apimachinery `IsQualifiedName` / `IsValidLabelValue`).
enum LabelSyntax {
    /// nil when `key` is a valid label key, else why not.
    static func keyProblem(_ key: String) -> String? {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return "label key '\(key)' has more than one '/'" }
        let name = parts.last!
        if parts.count == 2 {
            let prefix = parts[0]
            if prefix.isEmpty { return "label key '\(key)' has an empty prefix before '/'" }
            if prefix.utf8.count > 253 { return "label key prefix '\(prefix)' is longer than 253 characters" }
            if !isDNSSubdomain(prefix) {
                return "label key prefix '\(prefix)' is not a DNS subdomain (lowercase letters, digits, '-' and '.')"
            }
        }
        if name.isEmpty { return "label key '\(key)' has an empty name" }
        if name.utf8.count > 63 { return "label key name '\(name)' is longer than 63 characters" }
        if !isQualifiedNamePart(name) {
            return
                "label key '\(key)': the name must be alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        }
        return nil
    }

    /// nil when `value` is a valid label value (which may be empty), else why not.
    static func valueProblem(_ value: String) -> String? {
        if value.isEmpty { return nil }
        if value.utf8.count > 63 { return "label value '\(value)' is longer than 63 characters" }
        if !isQualifiedNamePart(Substring(value)) {
            return "label value '\(value)' must be alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        }
        return nil
    }

    private static func isAlphanumeric(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }

    private static func isQualifiedNamePart(_ text: Substring) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last, isAlphanumeric(first), isAlphanumeric(last) else {
            return false
        }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
    }

    private static func isDNSSubdomain(_ text: Substring) -> Bool {
        for label in text.split(separator: ".", omittingEmptySubsequences: false) {
            let bytes = Array(label.utf8)
            guard let first = bytes.first, let last = bytes.last, bytes.count <= 63 else { return false }
            func ok(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7A) }
            guard ok(first), ok(last), bytes.allSatisfy({ ok($0) || $0 == 0x2D }) else { return false }
        }
        return true
    }
}
