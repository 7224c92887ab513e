import EventModel
import Yams

/// Reads rule files (YAML) into a `RuleDocument`, applying `append`/`override` in file order.
struct DocumentReader {
    var document = RuleDocument()

    static let listKeys: Set<String> = ["name", "items", "append", "override"]
    static let macroKeys: Set<String> = ["name", "condition", "append", "override"]
    static let ruleKeys: Set<String> = [
        "id", "name", "description", "severity", "tags", "events", "condition", "output", "fix", "parameters",
        "needs_profile", "enabled", "exceptions", "sequence", "append", "override", "dedup",
    ]
    static let exceptionKeys: Set<String> = ["name", "fields", "comps", "values"]
    static let sequenceKeys: Set<String> = ["by", "within", "steps"]
    static let stepKeys: Set<String> = ["events", "condition"]
    static let appendableRuleKeys: Set<String> = ["condition", "exceptions", "tags", "events", "parameters"]

    mutating func read(yaml: String, file: String) throws(RuleEngineError) {
        let roots: [Node]
        do {
            var collected: [Node] = []
            var sequence = try Yams.compose_all(yaml: yaml)
            while let root = sequence.next() { collected.append(root) }
            if let error = sequence.error { throw error }
            roots = collected
        } catch let error as YamlError {
            throw Self.yamlError(error, file: file)
        } catch {
            throw RuleEngineError(.badYAML, "invalid YAML: \(error)", at: RuleFileLocation(file: file, line: 0))
        }
        for root in roots {
            let reader = NodeReader(file: file)
            if case .scalar(let scalar) = root, scalar.string.isEmpty { continue }  // empty document
            guard let items = root.sequence else {
                throw RuleEngineError(
                    .badYAML, "a rule file is a YAML list of '- list:', '- macro:' and '- rule:' items",
                    at: reader.location(root))
            }
            for item in items { try readItem(item, reader) }
        }
    }

    static func yamlError(_ error: YamlError, file: String) -> RuleEngineError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var reason = "invalid YAML: \(problem)"
            if let context { reason += " (\(context.text))" }
            return RuleEngineError(.badYAML, reason, at: RuleFileLocation(file: file, line: mark.line))
        default:
            return RuleEngineError(.badYAML, "invalid YAML: \(error)", at: RuleFileLocation(file: file, line: 0))
        }
    }

    mutating func readItem(_ item: Node, _ reader: NodeReader) throws(RuleEngineError) {
        guard let mapping = item.mapping else {
            throw RuleEngineError(.badYAML, "expected '- list:', '- macro:' or '- rule:'", at: reader.location(item))
        }
        let kinds = ["list", "macro", "rule"]
        var found: [(String, Node)] = []
        for (key, _) in mapping {
            if let text = key.string, kinds.contains(text) { found.append((text, key)) }
        }
        guard found.count == 1 else {
            if found.count > 1 {
                throw RuleEngineError(.badYAML, "an item has exactly one of list, macro, rule", at: reader.location(item))
            }
            let first = mapping.first.map { $0.key.string ?? "?" } ?? "?"
            throw RuleEngineError(
                .unknownKey, "unknown top-level item '\(first)'; expected list, macro or rule" + didYouMean(first, kinds),
                at: reader.location(mapping.first?.key ?? item))
        }
        let (kind, keyNode) = found[0]
        let value = mapping[keyNode]!
        var props: [String: (key: Node, value: Node)] = [:]
        var order: [String] = []
        if let nested = value.mapping {
            // `- rule: {id: ..., name: ...}`
            if mapping.count > 1 {
                let other = mapping.first { $0.key.string != kind }!.key
                throw RuleEngineError(
                    .unknownKey, "unexpected key '\(other.string ?? "?")' beside a nested \(kind)",
                    at: reader.location(other))
            }
            for (k, v) in nested {
                guard let name = k.string else { throw reader.bad(k, "keys must be strings") }
                props[name] = (k, v)
                order.append(name)
            }
        } else if value.scalar != nil {
            // Falco style: `- list: name` with the other keys beside it.
            props["name"] = (keyNode, value)
            order.append("name")
            for (k, v) in mapping where k.string != kind {
                guard let name = k.string else { throw reader.bad(k, "keys must be strings") }
                if name == "name" { throw RuleEngineError(.badValue, "'name' given twice", at: reader.location(k)) }
                props[name] = (k, v)
                order.append(name)
            }
        } else {
            throw reader.bad(value, "'\(kind)' must be a name or a mapping")
        }
        let allowed: Set<String> = kind == "list" ? Self.listKeys : kind == "macro" ? Self.macroKeys : Self.ruleKeys
        for name in order where !allowed.contains(name) {
            let subject = (try? reader.string(props["id"]?.value ?? props["name"]!.value)) ?? "?"
            throw RuleEngineError(
                .unknownKey, "unknown key '\(name)' in \(kind)" + didYouMean(name, allowed), at: reader.location(props[name]!.key),
                rule: "\(kind) '\(subject)'")
        }
        switch kind {
        case "list": try readList(props, item, reader)
        case "macro": try readMacro(props, item, reader)
        default: try readRule(props, item, reader)
        }
    }

    /// Parses `override:`; returns key → append (true) / replace (false).
    func overrides(
        _ props: [String: (key: Node, value: Node)], allowed: Set<String>, appendable: Set<String>, _ reader: NodeReader,
        subject: String
    ) throws(RuleEngineError) -> [String: Bool] {
        var result: [String: Bool] = [:]
        if let legacy = props["append"] {
            if try reader.bool(legacy.value) {
                for key in appendable where props[key] != nil { result[key] = true }
                for key in props.keys where !["append", "name", "id", "override"].contains(key) && !appendable.contains(key) {
                    throw RuleEngineError(
                        .badValue, "'append: true' can only extend \(appendable.sorted().joined(separator: ", ")); use override for '\(key)'",
                        at: reader.location(props[key]!.key), rule: subject)
                }
            }
        }
        guard let node = props["override"] else { return result }
        guard let mapping = node.value.mapping else { throw reader.bad(node.value, "'override' maps keys to append or replace") }
        for (k, v) in mapping {
            guard let key = k.string, allowed.contains(key) else {
                let name = k.string ?? "?"
                throw RuleEngineError(
                    .unknownKey, "cannot override '\(name)'" + didYouMean(name, allowed), at: reader.location(k), rule: subject)
            }
            let mode = try reader.string(v)
            switch mode {
            case "append":
                guard appendable.contains(key) else {
                    throw RuleEngineError(.badValue, "'\(key)' can only be replaced", at: reader.location(v), rule: subject)
                }
                result[key] = true
            case "replace": result[key] = false
            default: throw RuleEngineError(.badValue, "override mode must be append or replace", at: reader.location(v), rule: subject)
            }
            guard props[key] != nil else {
                throw RuleEngineError(.badValue, "override of '\(key)' without a '\(key)' value", at: reader.location(k), rule: subject)
            }
        }
        return result
    }

    mutating func readList(_ props: [String: (key: Node, value: Node)], _ item: Node, _ reader: NodeReader) throws(RuleEngineError) {
        let name = try reader.string(props["name"]!.value)
        let subject = "list '\(name)'"
        guard let itemsNode = props["items"] else { throw reader.missing("items", item, subject) }
        let items = try reader.stringList(itemsNode.value)
        let mode = try overrides(props, allowed: ["items"], appendable: ["items"], reader, subject: subject)
        if let append = mode["items"] {
            guard var existing = document.lists[name] else {
                throw RuleEngineError(.overrideTarget, "no list '\(name)' to extend", at: reader.location(item), rule: subject)
            }
            existing.items = append ? existing.items + items : items
            document.lists[name] = existing
        } else {
            document.lists[name] = ListDefinition(name: name, items: items, location: reader.location(item))
        }
    }

    mutating func readMacro(_ props: [String: (key: Node, value: Node)], _ item: Node, _ reader: NodeReader) throws(RuleEngineError) {
        let name = try reader.string(props["name"]!.value)
        let subject = "macro '\(name)'"
        guard let conditionNode = props["condition"] else { throw reader.missing("condition", item, subject) }
        let condition = try reader.string(conditionNode.value)
        let location = reader.location(conditionNode.value)
        let mode = try overrides(props, allowed: ["condition"], appendable: ["condition"], reader, subject: subject)
        if let append = mode["condition"] {
            guard var existing = document.macros[name] else {
                throw RuleEngineError(.overrideTarget, "no macro '\(name)' to extend", at: reader.location(item), rule: subject)
            }
            if append { try checkAppendSyntax(condition, location, subject) }
            existing.condition = append ? "(\(existing.condition)) \(condition)" : condition
            existing.conditionLocation = location
            document.macros[name] = existing
        } else {
            document.macros[name] = MacroDefinition(name: name, condition: condition, conditionLocation: location)
        }
    }

    /// An appended condition fragment must start with `and`/`or` and parse after a placeholder.
    func checkAppendSyntax(_ fragment: String, _ location: RuleFileLocation, _ subject: String) throws(RuleEngineError) {
        let trimmed = fragment.drop { $0.isWhitespace }
        guard trimmed.hasPrefix("and ") || trimmed.hasPrefix("or ") else {
            throw RuleEngineError(
                .badCondition, "an appended condition starts with 'and' or 'or'", at: location, rule: subject)
        }
        do {
            _ = try ConditionParser.parse("placeholder " + fragment)
        } catch {
            throw RuleEngineError(
                .badCondition, "\(error.reason) (at column \(max(1, error.offset - 11)) of the appended condition)",
                at: location, rule: subject)
        }
    }

    mutating func readRule(_ props: [String: (key: Node, value: Node)], _ item: Node, _ reader: NodeReader) throws(RuleEngineError) {
        guard let idNode = props["id"] else {
            let name = (try? reader.string(props["name"]?.value ?? item)) ?? "?"
            throw reader.missing("id", item, "rule '\(name)'")
        }
        let id = try reader.string(idNode.value)
        let subject = "rule '\(id)'"
        let location = reader.location(item)
        let mode = try overrides(
            props, allowed: Self.ruleKeys.subtracting(["id", "name", "append", "override", "sequence"]),
            appendable: Self.appendableRuleKeys, reader, subject: subject)
        let isModification = props["override"] != nil || props["append"].map { (try? reader.bool($0.value)) ?? false } ?? false
        let onlyEnabled = Set(props.keys).isSubset(of: ["id", "name", "enabled"]) && props["enabled"] != nil
        if let existingIndex = document.ruleIndex[id] {
            if onlyEnabled {
                document.rules[existingIndex].enabled = try reader.bool(props["enabled"]!.value)
                return
            }
            guard isModification else {
                throw RuleEngineError(
                    .duplicateRule, "duplicate rule id '\(id)' (first defined at \(document.rules[existingIndex].location))",
                    at: location, rule: subject)
            }
            var rule = document.rules[existingIndex]
            try modify(&rule, props, mode, reader, subject: subject)
            document.rules[existingIndex] = rule
            return
        }
        if isModification || onlyEnabled {
            throw RuleEngineError(.overrideTarget, "no rule '\(id)' to override", at: location, rule: subject)
        }
        func required(_ key: String) throws(RuleEngineError) -> Node {
            guard let node = props[key]?.value else { throw reader.missing(key, item, subject) }
            return node
        }
        let sequence = try props["sequence"].map { (entry) throws(RuleEngineError) in
            try readSequence(entry.value, reader, subject: subject)
        }
        var events: [EventKind]
        if let sequence {
            if let node = props["events"] {
                throw RuleEngineError(
                    .badValue, "sequence rules list events per step", at: reader.location(node.key), rule: subject)
            }
            events = []
            for step in sequence.steps { for kind in step.events where !events.contains(kind) { events.append(kind) } }
        } else {
            events = try reader.eventKinds(required("events"), subject: subject)
        }
        let conditionNode: Node? = sequence == nil ? try required("condition") : props["condition"]?.value
        let outputNode = try required("output")
        var rule = Rule(
            id: id, name: try reader.string(required("name")),
            description: try props["description"].map { (e) throws(RuleEngineError) in try reader.string(e.value) } ?? "",
            severity: try reader.severity(required("severity"), subject: subject),
            tags: try props["tags"].map { (e) throws(RuleEngineError) in try reader.stringList(e.value) } ?? [],
            events: events,
            condition: try conditionNode.map { (n) throws(RuleEngineError) in try reader.string(n) } ?? "",
            output: try reader.string(outputNode),
            fix: try props["fix"].map { (e) throws(RuleEngineError) in try reader.string(e.value) } ?? "",
            parameters: [:],
            needsProfile: try props["needs_profile"].map { (e) throws(RuleEngineError) in try reader.bool(e.value) } ?? false,
            enabled: try props["enabled"].map { (e) throws(RuleEngineError) in try reader.bool(e.value) } ?? true,
            exceptions: [],
            sequence: sequence,
            location: location,
            conditionLocation: conditionNode.map(reader.location) ?? location,
            outputLocation: reader.location(outputNode),
            defaultParameters: [:])
        if let node = props["parameters"] { rule.defaultParameters = try reader.parameters(node.value) }
        if let node = props["exceptions"] { rule.exceptions = try readExceptions(node.value, reader, subject: subject) }
        if let node = props["dedup"] { rule.dedup = try reader.dedup(node.value, subject: subject) }
        try checkUniqueExceptionNames(rule.exceptions, reader, subject: subject)
        document.ruleIndex[id] = document.rules.count
        document.rules.append(rule)
    }

    func checkUniqueExceptionNames(_ exceptions: [RuleException], _ reader: NodeReader, subject: String) throws(RuleEngineError) {
        var seen: Set<String> = []
        for exception in exceptions {
            guard seen.insert(exception.name).inserted else {
                throw RuleEngineError(
                    .badValue, "duplicate exception name '\(exception.name)'", at: exception.location, rule: subject)
            }
        }
    }

    func modify(
        _ rule: inout Rule, _ props: [String: (key: Node, value: Node)], _ mode: [String: Bool], _ reader: NodeReader,
        subject: String
    ) throws(RuleEngineError) {
        for key in props.keys where !["id", "name", "append", "override"].contains(key) && mode[key] == nil {
            throw RuleEngineError(
                .badValue, "'\(key)' given without override mode (add override: {\(key): replace})",
                at: reader.location(props[key]!.key), rule: subject)
        }
        for (key, append) in mode {
            let node = props[key]!.value
            switch key {
            case "condition":
                let text = try reader.string(node)
                if append {
                    try checkAppendSyntax(text, reader.location(node), subject)
                    rule.condition = "(\(rule.condition)) \(text)"
                } else {
                    rule.condition = text
                }
                rule.conditionLocation = reader.location(node)
            case "output":
                rule.output = try reader.string(node)
                rule.outputLocation = reader.location(node)
            case "description": rule.description = try reader.string(node)
            case "fix": rule.fix = try reader.string(node)
            case "severity": rule.severity = try reader.severity(node, subject: subject)
            case "enabled": rule.enabled = try reader.bool(node)
            case "needs_profile": rule.needsProfile = try reader.bool(node)
            case "dedup": rule.dedup = try reader.dedup(node, subject: subject)
            case "tags":
                let tags = try reader.stringList(node)
                rule.tags = append ? rule.tags + tags.filter { !rule.tags.contains($0) } : tags
            case "events":
                guard rule.sequence == nil else {
                    throw RuleEngineError(.badValue, "sequence rules list events per step", at: reader.location(node), rule: subject)
                }
                let kinds = try reader.eventKinds(node, subject: subject)
                rule.events = append ? rule.events + kinds.filter { !rule.events.contains($0) } : kinds
            case "parameters":
                let values = try reader.parameters(node)
                if append {
                    rule.defaultParameters.merge(values) { _, new in new }
                } else {
                    rule.defaultParameters = values
                }
            case "exceptions":
                let added = try readExceptions(node, reader, subject: subject, allowValuesOnly: append)
                if append {
                    for exception in added {
                        if let index = rule.exceptions.firstIndex(where: { $0.name == exception.name }) {
                            if !exception.fields.isEmpty && exception.fields != rule.exceptions[index].fields {
                                throw RuleEngineError(
                                    .badValue, "exception '\(exception.name)' appended with different fields",
                                    at: exception.location, rule: subject)
                            }
                            rule.exceptions[index].values += exception.values
                        } else {
                            guard !exception.fields.isEmpty else {
                                throw RuleEngineError(
                                    .overrideTarget, "no exception '\(exception.name)' to append to (give its fields)",
                                    at: exception.location, rule: subject)
                            }
                            rule.exceptions.append(exception)
                        }
                    }
                } else {
                    rule.exceptions = added
                }
                try checkUniqueExceptionNames(rule.exceptions, reader, subject: subject)
            default:
                break
            }
        }
    }

    func readExceptions(
        _ node: Node, _ reader: NodeReader, subject: String, allowValuesOnly: Bool = false
    ) throws(RuleEngineError) -> [RuleException] {
        guard let items = node.sequence else { throw reader.bad(node, "exceptions must be a list") }
        var result: [RuleException] = []
        for item in items {
            guard let mapping = item.mapping else { throw reader.bad(item, "an exception is a mapping") }
            for (k, _) in mapping {
                let key = k.string ?? "?"
                if !Self.exceptionKeys.contains(key) {
                    throw RuleEngineError(
                        .unknownKey, "unknown key '\(key)' in exception" + didYouMean(key, Self.exceptionKeys),
                        at: reader.location(k), rule: subject)
                }
            }
            guard let nameNode = mapping["name"] else { throw reader.missing("name", item, subject) }
            let name = try reader.string(nameNode)
            var fields: [String] = []
            var scalarFields = false
            if let fieldsNode = mapping["fields"] {
                if fieldsNode.scalar != nil {
                    fields = [try reader.string(fieldsNode)]
                    scalarFields = true
                } else {
                    fields = try reader.stringList(fieldsNode)
                }
            } else if !allowValuesOnly {
                throw reader.missing("fields", item, subject)
            }
            var comps: [String]
            if let compsNode = mapping["comps"] {
                comps = compsNode.scalar != nil ? [try reader.string(compsNode)] : try reader.stringList(compsNode)
            } else {
                comps = Array(repeating: scalarFields ? "in" : "=", count: fields.count)
            }
            if !fields.isEmpty && comps.count != fields.count {
                throw RuleEngineError(
                    .badValue, "exception '\(name)': \(fields.count) fields but \(comps.count) comps",
                    at: reader.location(item), rule: subject)
            }
            for comp in comps where ComparisonOperator(rawValue: comp) == nil || comp == "exists" {
                throw RuleEngineError(
                    .badValue, "exception '\(name)': unknown comparison '\(comp)'", at: reader.location(item), rule: subject)
            }
            var rows: [[ParameterValue]] = []
            if let valuesNode = mapping["values"] {
                guard let valueItems = valuesNode.sequence else { throw reader.bad(valuesNode, "values must be a list") }
                if scalarFields {
                    // `fields: proc.name` + `values: [a, b]`: one row whose value is the list.
                    rows = [[.list(try reader.stringList(valuesNode))]]
                } else {
                    for row in valueItems {
                        guard let cells = row.sequence else {
                            throw reader.bad(row, "each exception value is a list with one entry per field")
                        }
                        var values: [ParameterValue] = []
                        for cell in cells {
                            if cell.sequence != nil { values.append(.list(try reader.stringList(cell))) } else {
                                values.append(.scalar(try reader.string(cell)))
                            }
                        }
                        if !fields.isEmpty && values.count != fields.count {
                            throw RuleEngineError(
                                .badValue, "exception '\(name)': a row has \(values.count) values for \(fields.count) fields",
                                at: reader.location(row), rule: subject)
                        }
                        rows.append(values)
                    }
                }
            }
            result.append(RuleException(name: name, fields: fields, comps: comps, values: rows, location: reader.location(item)))
        }
        return result
    }

    func readSequence(_ node: Node, _ reader: NodeReader, subject: String) throws(RuleEngineError) -> RuleSequence {
        guard let mapping = node.mapping else { throw reader.bad(node, "sequence must be a mapping") }
        for (k, _) in mapping where !Self.sequenceKeys.contains(k.string ?? "") {
            let key = k.string ?? "?"
            throw RuleEngineError(
                .unknownKey, "unknown key '\(key)' in sequence" + didYouMean(key, Self.sequenceKeys), at: reader.location(k),
                rule: subject)
        }
        guard let byNode = mapping["by"] else { throw reader.missing("by", node, subject) }
        let by = byNode.scalar != nil ? [try reader.string(byNode)] : try reader.stringList(byNode)
        guard let withinNode = mapping["within"] else { throw reader.missing("within", node, subject) }
        let within = try reader.duration(withinNode)
        guard let stepsNode = mapping["steps"], let stepItems = stepsNode.sequence, stepItems.count >= 2 else {
            throw RuleEngineError(.badValue, "a sequence needs at least two steps", at: reader.location(node), rule: subject)
        }
        var steps: [RuleSequence.Step] = []
        for item in stepItems {
            guard let step = item.mapping else { throw reader.bad(item, "a step is a mapping with events and condition") }
            for (k, _) in step where !Self.stepKeys.contains(k.string ?? "") {
                let key = k.string ?? "?"
                throw RuleEngineError(
                    .unknownKey, "unknown key '\(key)' in sequence step" + didYouMean(key, Self.stepKeys),
                    at: reader.location(k), rule: subject)
            }
            guard let eventsNode = step["events"] else { throw reader.missing("events", item, subject) }
            guard let conditionNode = step["condition"] else { throw reader.missing("condition", item, subject) }
            steps.append(
                RuleSequence.Step(
                    events: try reader.eventKinds(eventsNode, subject: subject), condition: try reader.string(conditionNode),
                    conditionLocation: reader.location(conditionNode)))
        }
        return RuleSequence(by: by, withinNanoseconds: within, steps: steps)
    }
}

/// Typed access to Yams nodes, with errors that carry the node's line.
struct NodeReader {
    let file: String

    func location(_ node: Node) -> RuleFileLocation { RuleFileLocation(file: file, line: node.mark?.line ?? 0) }

    func bad(_ node: Node, _ reason: String) -> RuleEngineError {
        RuleEngineError(.badValue, reason, at: location(node))
    }

    func missing(_ key: String, _ node: Node, _ subject: String) -> RuleEngineError {
        RuleEngineError(.badValue, "missing required key '\(key)'", at: location(node), rule: subject)
    }

    func string(_ node: Node) throws(RuleEngineError) -> String {
        guard let scalar = node.scalar else { throw bad(node, "expected a single value, not a list or mapping") }
        return scalar.string
    }

    func stringList(_ node: Node) throws(RuleEngineError) -> [String] {
        guard let items = node.sequence else { throw bad(node, "expected a list") }
        var result: [String] = []
        for item in items { result.append(try string(item)) }
        return result
    }

    func bool(_ node: Node) throws(RuleEngineError) -> Bool {
        switch try string(node).lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw bad(node, "expected true or false")
        }
    }

    func severity(_ node: Node, subject: String) throws(RuleEngineError) -> Severity {
        let text = try string(node)
        guard let severity = Severity(rawValue: text.lowercased()) else {
            let names = Severity.allCases.map(\.rawValue)
            throw RuleEngineError(
                .badSeverity, "bad severity '\(text)'; expected one of \(names.joined(separator: ", "))",
                at: location(node), rule: subject)
        }
        return severity
    }

    func eventKinds(_ node: Node, subject: String) throws(RuleEngineError) -> [EventKind] {
        let names = node.scalar != nil ? [try string(node)] : try stringList(node)
        guard !names.isEmpty else { throw RuleEngineError(.badValue, "events is empty", at: location(node), rule: subject) }
        var kinds: [EventKind] = []
        for name in names {
            guard let kind = EventKind(rawValue: name) else {
                throw RuleEngineError(
                    .badEventKind,
                    "unknown event kind '\(name)'" + didYouMean(name, EventKind.allCases.map(\.rawValue)),
                    at: location(node), rule: subject)
            }
            if !kinds.contains(kind) { kinds.append(kind) }
        }
        return kinds
    }

    func parameters(_ node: Node) throws(RuleEngineError) -> [String: ParameterValue] {
        guard let mapping = node.mapping else { throw bad(node, "parameters must be a mapping") }
        var result: [String: ParameterValue] = [:]
        for (k, v) in mapping {
            let key = try string(k)
            result[key] = v.sequence != nil ? .list(try stringList(v)) : .scalar(try string(v))
        }
        return result
    }

    /// `dedup: {window: 60s, key: [exe, path]}`: alert cooldown for the rule (docs/alerts.md#de-duplication).
    func dedup(_ node: Node, subject: String) throws(RuleEngineError) -> RuleDedup {
        guard let mapping = node.mapping else { throw bad(node, "dedup is a mapping with window and key") }
        var result = RuleDedup(windowNanoseconds: 0, key: ["message"])
        var sawWindow = false
        for (k, v) in mapping {
            switch k.string {
            case "window":
                result.windowNanoseconds = try duration(v)
                sawWindow = true
            case "key": result.key = v.scalar != nil ? [try string(v)] : try stringList(v)
            default:
                let key = k.string ?? "?"
                throw RuleEngineError(
                    .unknownKey, "unknown key '\(key)' in dedup" + didYouMean(key, ["window", "key"]), at: location(k),
                    rule: subject)
            }
        }
        guard sawWindow else { throw RuleEngineError(.badValue, "dedup needs a window", at: location(node), rule: subject) }
        return result
    }

    /// `2s`, `500ms`, `1m`, `1h`, `100us`, or a bare number of seconds.
    func duration(_ node: Node) throws(RuleEngineError) -> UInt64 {
        let text = try string(node).trimmingSpaces
        let units: [(String, Double)] = [("ms", 1e6), ("us", 1e3), ("ns", 1), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let number = Double(text.dropLast(suffix.count)), number >= 0 { return UInt64(number * scale) }
        }
        if let number = Double(text), number >= 0 { return UInt64(number * 1e9) }
        throw bad(node, "bad duration '\(text)'; use e.g. 2s, 500ms, 1m")
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
