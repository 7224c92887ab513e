import RuleEngine
import Yams

extension LabelSelector: CustomStringConvertible {
    /// kubectl's selector notation: `app=web,tier in (a,b),tier notin (c),x,!y`; `<all>` for the empty selector.
    public var description: String {
        if isEmpty { return "<all>" }
        var parts = matchLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        for requirement in matchExpressions {
            let values = requirement.values.joined(separator: ",")
            switch requirement.op {
            case .in: parts.append("\(requirement.key) in (\(values))")
            case .notIn: parts.append("\(requirement.key) notin (\(values))")
            case .exists: parts.append(requirement.key)
            case .doesNotExist: parts.append("!\(requirement.key)")
            }
        }
        return parts.joined(separator: ",")
    }
}

extension Binding {
    /// A binding that selects every pod and binds every rule of `ruleSet`: how the collector evaluated before
    /// bindings existed, and what it falls back to when no default binding is configured or found.
    public static func everyRule(in ruleSet: RuleSet, name: String = "every-rule") -> Binding {
        Binding(
            name: name,
            rules: ruleSet.rules.map { BindingRule(reference: .id($0.id), ruleIDs: [$0.id]) },
            source: BindingLocation(file: "<every rule>", document: 1))
    }

    /// True when `other` selects the same pods with the same rule entries: what was read differs at most in
    /// where it was read from (file, document, lines).
    public func hasSameEffect(as other: Binding) -> Bool {
        guard name == other.name, namespace == other.namespace, namespaceSelector == other.namespaceSelector,
            podSelector == other.podSelector, rules.count == other.rules.count
        else { return false }
        return zip(rules, other.rules).allSatisfy { mine, theirs in
            mine.reference == theirs.reference && mine.parameters == theirs.parameters
                && mine.severity == theirs.severity && mine.ruleIDs == theirs.ruleIDs
        }
    }
}

extension BindingLoader {
    /// The text of each YAML document in `yaml`, numbered as `BindingLocation.document` numbers them (element 0 is
    /// document 1), so one binding of a multi-document file can be stored and shown on its own.
    ///
    /// Documents are cut at their `---` lines, keeping comments; comments before the first `---` stay with the
    /// first document. If the cut pieces do not parse back to the same documents (unusual markers such as `...`),
    /// each document is serialized from its parsed form instead, which keeps the content but drops comments.
    public static func documentTexts(_ yaml: String) -> [String] {
        var roots: [Node] = []
        do {
            var sequence = try Yams.compose_all(yaml: yaml)
            while let root = sequence.next() { roots.append(root) }
            if sequence.error != nil { return [] }
        } catch {
            return []
        }
        let pieces = cut(yaml)
        if pieces.count == roots.count, zip(pieces, roots).allSatisfy({ piece, root in parsesTo(piece, root) }) {
            return pieces
        }
        return roots.map { (try? Yams.serialize(node: $0)) ?? "" }
    }

    private static func cut(_ yaml: String) -> [String] {
        var pieces: [[Substring]] = []
        var current: [Substring] = []
        var started = false
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if isDocumentStart(line) {
                // A header of comments (or nothing) before the first `---` is not a document of its own.
                if !started && current.allSatisfy(isTrivia) {
                    current.append(line)
                } else {
                    pieces.append(current)
                    current = [line]
                }
                started = true
            } else {
                current.append(line)
            }
        }
        pieces.append(current)
        return pieces.map { lines in
            var lines = lines
            while let last = lines.last, last.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { lines.removeLast() }
            return lines.joined(separator: "\n") + "\n"
        }
    }

    private static func isDocumentStart(_ line: Substring) -> Bool {
        guard line.hasPrefix("---") else { return false }
        let rest = line.dropFirst(3)
        return rest.isEmpty || rest.first == " " || rest.first == "\t" || rest.first == "\r"
    }

    private static func isTrivia(_ line: Substring) -> Bool {
        let trimmed = line.drop { $0 == " " || $0 == "\t" }
        return trimmed.isEmpty || trimmed.first == "#" || trimmed.first == "%" || trimmed == "\r"
    }

    private static func parsesTo(_ piece: String, _ root: Node) -> Bool {
        guard var sequence = try? Yams.compose_all(yaml: piece), let first = sequence.next() else { return false }
        return sequence.next() == nil && sequence.error == nil && first == root
    }
}
