import EventModel
import RuleEngine
import Yams

/// Reads RuntimeRuleAlertBinding documents from YAML text, collecting every problem instead of stopping at the
/// first, so one run of `patrolctl bindings validate` lists all of them.
///
/// This is the shape check only (apiVersion, kind, keys, selectors, severity, rule entries); rule names, ids, tags
/// and parameters are checked against a rule set by `BindingValidator`.
struct BindingReader {
    let file: String
    var problems: [BindingProblem] = []

    static let topKeys: Set<String> = ["apiVersion", "kind", "metadata", "spec", "status"]
    static let specKeys: Set<String> = ["namespaceSelector", "podSelector", "rules"]
    static let selectorKeys: Set<String> = ["matchLabels", "matchExpressions"]
    static let expressionKeys: Set<String> = ["key", "operator", "values"]
    static let ruleKeys: Set<String> = ["ruleName", "ruleID", "ruleTags", "parameters", "severity"]

    init(file: String) { self.file = file }

    /// The bindings in `yaml`, in document order. Empty documents (a trailing `---`) are skipped but counted.
    mutating func read(yaml: String) -> [Binding] {
        var roots: [Node] = []
        do {
            var sequence = try Yams.compose_all(yaml: yaml)
            while let root = sequence.next() { roots.append(root) }
            if let error = sequence.error { throw error }
        } catch let error as YamlError {
            problems.append(Self.yamlProblem(error, file: file, document: roots.count + 1))
            return []
        } catch {
            problems.append(
                BindingProblem(.badDocument, "invalid YAML: \(error)", at: BindingLocation(file: file, document: 0)))
            return []
        }
        var bindings: [Binding] = []
        for (index, root) in roots.enumerated() {
            if Self.isNull(root) { continue }
            if let binding = readDocument(root, number: index + 1) { bindings.append(binding) }
        }
        return bindings
    }

    static func yamlProblem(_ error: YamlError, file: String, document: Int) -> BindingProblem {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var reason = "invalid YAML: \(problem)"
            if let context { reason += " (\(context.text))" }
            return BindingProblem(.badDocument, reason, at: BindingLocation(file: file, document: 0, line: mark.line))
        default:
            return BindingProblem(.badDocument, "invalid YAML: \(error)", at: BindingLocation(file: file, document: 0))
        }
    }

    static func isNull(_ node: Node) -> Bool {
        guard let scalar = node.scalar, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    // MARK: - Documents

    private mutating func readDocument(_ root: Node, number: Int) -> Binding? {
        var here = BindingLocation(file: file, document: number, line: root.mark?.line ?? 0)
        guard let top = root.mapping else {
            problem(.badDocument, "a binding document is a mapping with apiVersion, kind, metadata and spec", here)
            return nil
        }
        let before = problems.count
        let fields = keyed(top, allowed: Self.topKeys, path: "", here)
        // The name first, so later problems in this document can name it.
        var name = ""
        var namespace: String?
        if let metadata = fields["metadata"] {
            if let mapping = metadata.mapping {
                // Any other metadata (labels, annotations, uid, resourceVersion, managedFields, ...) is what
                // `kubectl get -o yaml` writes; KubeCop's CRD accepted it, so it is accepted and ignored.
                for (key, value) in mapping {
                    switch key.string {
                    case "name": name = string(value, path: "metadata.name", here) ?? ""
                    case "namespace":
                        if !Self.isNull(value) { namespace = string(value, path: "metadata.namespace", here) }
                    default: break
                    }
                }
            } else {
                problem(.badDocument, "expected a mapping", at(metadata, "metadata", here))
            }
        }
        here.name = name.isEmpty ? nil : name
        if name.isEmpty {
            problem(.badDocument, "missing required field", at(fields["metadata"] ?? root, "metadata.name", here))
        }
        if let namespace, namespace.isEmpty {
            problem(.badDocument, "must not be empty", at(root, "metadata.namespace", here))
        }

        if let apiVersion = fields["apiVersion"] {
            if let text = string(apiVersion, path: "apiVersion", here), text != Binding.apiVersion {
                problem(
                    .badDocument, "unsupported apiVersion '\(text)'; expected '\(Binding.apiVersion)'",
                    at(apiVersion, "apiVersion", here))
            }
        } else {
            problem(
                .badDocument, "missing required field (expected '\(Binding.apiVersion)')", at(root, "apiVersion", here))
        }
        if let kind = fields["kind"] {
            if let text = string(kind, path: "kind", here), text != Binding.kind {
                problem(
                    .badDocument,
                    "unsupported kind '\(text)'; expected '\(Binding.kind)'" + didYouMean(text, [Binding.kind]),
                    at(kind, "kind", here))
            }
        } else {
            problem(.badDocument, "missing required field (expected '\(Binding.kind)')", at(root, "kind", here))
        }

        var namespaceSelector = LabelSelector.everything
        var podSelector = LabelSelector.everything
        var rules: [BindingRule] = []
        if let spec = fields["spec"], let mapping = spec.mapping {
            let specFields = keyed(mapping, allowed: Self.specKeys, path: "spec.", here)
            if let node = specFields["namespaceSelector"] {
                namespaceSelector = selector(node, path: "spec.namespaceSelector", here)
            }
            if let node = specFields["podSelector"] { podSelector = selector(node, path: "spec.podSelector", here) }
            if let node = specFields["rules"] {
                if let items = node.sequence {
                    if items.isEmpty {
                        problem(.badDocument, "must list at least one rule", at(node, "spec.rules", here))
                    }
                    for (index, item) in items.enumerated() {
                        if let rule = ruleEntry(item, path: "spec.rules[\(index)]", here) { rules.append(rule) }
                    }
                } else {
                    problem(.badDocument, "expected a list of rule entries", at(node, "spec.rules", here))
                }
            } else {
                problem(.badDocument, "missing required field", at(spec, "spec.rules", here))
            }
        } else if let spec = fields["spec"] {
            problem(.badDocument, "expected a mapping", at(spec, "spec", here))
        } else {
            problem(.badDocument, "missing required field", at(root, "spec", here))
        }
        guard problems.count == before else { return nil }
        var source = here
        source.line = 0
        return Binding(
            name: name, namespace: namespace, namespaceSelector: namespaceSelector, podSelector: podSelector,
            rules: rules, source: source)
    }

    // MARK: - Rule entries

    private mutating func ruleEntry(_ node: Node, path: String, _ here: BindingLocation) -> BindingRule? {
        guard let mapping = node.mapping else {
            problem(.badDocument, "expected a mapping with one of ruleName, ruleID or ruleTags", at(node, path, here))
            return nil
        }
        let before = problems.count
        let fields = keyed(mapping, allowed: Self.ruleKeys, path: path + ".", here)
        let given = ["ruleName", "ruleID", "ruleTags"].filter { fields[$0] != nil }
        var reference: RuleReference?
        if given.count != 1 {
            let reason =
                given.isEmpty
                ? "a rule entry needs exactly one of ruleName, ruleID or ruleTags; it has none"
                : "a rule entry has exactly one of ruleName, ruleID or ruleTags; it has "
                    + given.joined(separator: " and ")
            problem(.ruleReference, reason, at(node, path, here))
        } else {
            let field = given[0]
            let value = fields[field]!
            switch field {
            case "ruleName":
                if let text = string(value, path: path + ".ruleName", here) {
                    if text.isEmpty {
                        problem(.ruleReference, "must not be empty", at(value, path + ".ruleName", here))
                    }
                    reference = .name(text)
                }
            case "ruleID":
                if let text = string(value, path: path + ".ruleID", here) {
                    if text.isEmpty { problem(.ruleReference, "must not be empty", at(value, path + ".ruleID", here)) }
                    reference = .id(text)
                }
            default:
                if let tags = stringList(value, path: path + ".ruleTags", here) {
                    if tags.isEmpty {
                        problem(.ruleReference, "must list at least one tag", at(value, path + ".ruleTags", here))
                    }
                    reference = .tags(tags)
                }
            }
        }
        var parameters: [String: ParameterValue] = [:]
        if let node = fields["parameters"], !Self.isNull(node) {
            if let mapping = node.mapping {
                for (key, value) in mapping {
                    guard let name = key.string, !name.isEmpty else {
                        problem(.badParameter, "a parameter name must be text", at(key, path + ".parameters", here))
                        continue
                    }
                    let parameterPath = path + ".parameters." + name
                    if let scalar = value.scalar {
                        parameters[name] = .scalar(scalar.string)
                    } else if let items = value.sequence {
                        var values: [String] = []
                        for item in items {
                            if let scalar = item.scalar {
                                values.append(scalar.string)
                            } else {
                                problem(
                                    .badParameter, "list items must be single values", at(item, parameterPath, here))
                            }
                        }
                        parameters[name] = .list(values)
                    } else {
                        problem(
                            .badParameter, "expected a value or a list of values, not a mapping",
                            at(value, parameterPath, here))
                    }
                }
            } else {
                problem(
                    .badParameter, "expected a mapping of parameter names to values",
                    at(node, path + ".parameters", here))
            }
        }
        var severity: Severity?
        if let node = fields["severity"], !Self.isNull(node), let text = string(node, path: path + ".severity", here) {
            if let value = Severity(rawValue: text.lowercased()) {
                severity = value
            } else {
                let names = Severity.allCases.map(\.rawValue)
                problem(
                    .badSeverity,
                    "bad severity '\(text)'; expected one of \(names.joined(separator: ", "))"
                        + didYouMean(text, names),
                    at(node, path + ".severity", here))
            }
        }
        guard problems.count == before, let reference else { return nil }
        var rule = BindingRule(reference: reference, parameters: parameters, severity: severity)
        rule.line = node.mark?.line ?? 0
        return rule
    }

    // MARK: - Selectors

    private mutating func selector(_ node: Node, path: String, _ here: BindingLocation) -> LabelSelector {
        if Self.isNull(node) { return .everything }
        guard let mapping = node.mapping else {
            problem(.badSelector, "expected a mapping with matchLabels and/or matchExpressions", at(node, path, here))
            return .everything
        }
        var result = LabelSelector()
        let fields = keyed(mapping, allowed: Self.selectorKeys, path: path + ".", here, code: .badSelector)
        if let labels = fields["matchLabels"], !Self.isNull(labels) {
            if let pairs = labels.mapping {
                for (key, value) in pairs {
                    let labelPath = path + ".matchLabels"
                    guard let keyText = key.scalar?.string else {
                        problem(.badSelector, "a label key must be text", at(key, labelPath, here))
                        continue
                    }
                    if let reason = LabelSyntax.keyProblem(keyText) {
                        problem(.badSelector, reason, at(key, labelPath, here))
                    }
                    guard let valueText = value.scalar?.string else {
                        problem(.badSelector, "the value of '\(keyText)' must be text", at(value, labelPath, here))
                        continue
                    }
                    if let reason = LabelSyntax.valueProblem(valueText) {
                        problem(.badSelector, reason, at(value, labelPath + "." + keyText, here))
                    }
                    result.matchLabels[keyText] = valueText
                }
            } else {
                problem(
                    .badSelector, "expected a mapping of label keys to values", at(labels, path + ".matchLabels", here))
            }
        }
        if let expressions = fields["matchExpressions"], !Self.isNull(expressions) {
            if let items = expressions.sequence {
                for (index, item) in items.enumerated() {
                    if let requirement = expression(item, path: path + ".matchExpressions[\(index)]", here) {
                        result.matchExpressions.append(requirement)
                    }
                }
            } else {
                problem(
                    .badSelector, "expected a list of {key, operator, values}",
                    at(expressions, path + ".matchExpressions", here))
            }
        }
        return result
    }

    private mutating func expression(_ node: Node, path: String, _ here: BindingLocation) -> LabelSelector.Requirement?
    {
        guard let mapping = node.mapping else {
            problem(.badSelector, "expected a mapping with key, operator and values", at(node, path, here))
            return nil
        }
        let before = problems.count
        let fields = keyed(mapping, allowed: Self.expressionKeys, path: path + ".", here, code: .badSelector)
        var key = ""
        if let node = fields["key"], let text = string(node, path: path + ".key", here, code: .badSelector) {
            key = text
            if let reason = LabelSyntax.keyProblem(text) {
                problem(.badSelector, reason, at(node, path + ".key", here))
            }
        } else if fields["key"] == nil {
            problem(.badSelector, "missing required field", at(node, path + ".key", here))
        }
        var op: LabelSelector.Operator?
        if let node = fields["operator"], let text = string(node, path: path + ".operator", here, code: .badSelector) {
            op = LabelSelector.Operator(rawValue: text)
            if op == nil {
                let names = LabelSelector.Operator.allCases.map(\.rawValue)
                problem(
                    .badSelector,
                    "unknown operator '\(text)'; expected one of \(names.joined(separator: ", "))"
                        + didYouMean(text, names),
                    at(node, path + ".operator", here))
            }
        } else if fields["operator"] == nil {
            problem(.badSelector, "missing required field", at(node, path + ".operator", here))
        }
        var values: [String] = []
        let valuesNode = fields["values"]
        if let valuesNode, !Self.isNull(valuesNode) {
            values = stringList(valuesNode, path: path + ".values", here, code: .badSelector) ?? []
            for value in values {
                if let reason = LabelSyntax.valueProblem(value) {
                    problem(.badSelector, reason, at(valuesNode, path + ".values", here))
                }
            }
        }
        if let op {
            switch op {
            case .in, .notIn:
                if values.isEmpty {
                    problem(
                        .badSelector, "operator \(op.rawValue) needs a non-empty 'values' list",
                        at(valuesNode ?? node, path + ".values", here))
                }
            case .exists, .doesNotExist:
                if !values.isEmpty {
                    problem(
                        .badSelector, "operator \(op.rawValue) takes no 'values'",
                        at(valuesNode ?? node, path + ".values", here))
                }
            }
        }
        guard problems.count == before, let op else { return nil }
        return LabelSelector.Requirement(key: key, op: op, values: values)
    }

    // MARK: - Helpers

    private func at(_ node: Node, _ path: String, _ here: BindingLocation) -> BindingLocation {
        var location = here
        location.path = path
        location.line = node.mark?.line ?? here.line
        return location
    }

    private mutating func problem(_ code: BindingsError.Code, _ reason: String, _ location: BindingLocation) {
        problems.append(BindingProblem(code, reason, at: location))
    }

    /// The mapping's values by key; unknown and duplicate keys are problems.
    private mutating func keyed(
        _ mapping: Node.Mapping, allowed: Set<String>, path: String, _ here: BindingLocation,
        code: BindingsError.Code = .badDocument
    ) -> [String: Node] {
        var result: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.string else {
                problem(code, "a key must be text", at(key, path.isEmpty ? "<root>" : String(path.dropLast()), here))
                continue
            }
            guard allowed.contains(name) else {
                problem(code, "unknown field" + didYouMean(name, allowed), at(key, path + name, here))
                continue
            }
            if result[name] != nil {
                problem(code, "duplicate field", at(key, path + name, here))
                continue
            }
            result[name] = value
        }
        return result
    }

    private mutating func string(
        _ node: Node, path: String, _ here: BindingLocation, code: BindingsError.Code = .badDocument
    ) -> String? {
        guard let scalar = node.scalar else {
            problem(code, "expected a single value, not a list or mapping", at(node, path, here))
            return nil
        }
        return scalar.string
    }

    private mutating func stringList(
        _ node: Node, path: String, _ here: BindingLocation, code: BindingsError.Code = .badDocument
    ) -> [String]? {
        guard let items = node.sequence else {
            problem(code, "expected a list", at(node, path, here))
            return nil
        }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            guard let text = string(item, path: "\(path)[\(index)]", here, code: code) else { return nil }
            result.append(text)
        }
        return result
    }
}
