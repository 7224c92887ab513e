import Foundation
import RuleEngine

/// Reads and validates binding documents against a rule set. All-or-nothing: either every document is valid and
/// all are returned, or a `BindingsError` lists every problem in every document.
public enum BindingLoader {
    /// Parses and validates YAML text (one or more `---` documents); `file` names it in errors.
    public static func load(yaml: String, file: String = "<inline>", ruleSet: RuleSet) throws(BindingsError)
        -> [Binding]
    {
        try load(sources: [(file, yaml)], ruleSet: ruleSet)
    }

    /// Parses and validates several YAML texts as one apply: names must be unique across all of them.
    public static func load(sources: [(file: String, yaml: String)], ruleSet: RuleSet) throws(BindingsError)
        -> [Binding]
    {
        var problems: [BindingProblem] = []
        var bindings: [Binding] = []
        for source in sources {
            var reader = BindingReader(file: source.file)
            let read = reader.read(yaml: source.yaml)
            problems += reader.problems
            for var binding in read {
                let before = problems.count
                BindingValidator.resolve(&binding, ruleSet: ruleSet, problems: &problems)
                if problems.count == before { bindings.append(binding) }
            }
        }
        var seen: [String: BindingLocation] = [:]
        for binding in bindings {
            if let first = seen[binding.key] {
                problems.append(
                    BindingProblem(
                        .duplicateName,
                        "binding '\(binding.key)' is also defined in \(first.file) document \(first.document)",
                        at: binding.source))
            } else {
                seen[binding.key] = binding.source
            }
        }
        if !problems.isEmpty { throw BindingsError(problems) }
        return bindings
    }

    /// Shape-checks YAML without a rule set (rule names, ids, tags and parameters are not checked).
    public static func parse(yaml: String, file: String = "<inline>") throws(BindingsError) -> [Binding] {
        var reader = BindingReader(file: file)
        let bindings = reader.read(yaml: yaml)
        if !reader.problems.isEmpty { throw BindingsError(reader.problems) }
        return bindings
    }

    /// Loads files and directories (a directory's `*.yaml`/`*.yml` files in name order, not recursive).
    public static func load(paths: [String], ruleSet: RuleSet) throws(BindingsError) -> [Binding] {
        try load(sources: try readSources(paths), ruleSet: ruleSet)
    }

    /// The texts of `paths`, directories expanded; a missing or unreadable path is an `io` error.
    public static func readSources(_ paths: [String]) throws(BindingsError) -> [(file: String, yaml: String)] {
        var sources: [(file: String, yaml: String)] = []
        var problems: [BindingProblem] = []
        for file in expand(paths, problems: &problems) {
            guard let data = FileManager.default.contents(atPath: file) else {
                problems.append(BindingProblem(.io, "cannot read file", at: BindingLocation(file: file, document: 0)))
                continue
            }
            sources.append((file, String(decoding: data, as: UTF8.self)))
        }
        if !problems.isEmpty { throw BindingsError(problems) }
        return sources
    }

    static func expand(_ paths: [String], problems: inout [BindingProblem]) -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                problems.append(
                    BindingProblem(.io, "no such file or directory", at: BindingLocation(file: path, document: 0)))
                continue
            }
            guard isDirectory.boolValue else {
                files.append(path)
                continue
            }
            do {
                let names = try FileManager.default.contentsOfDirectory(atPath: path)
                    .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
                if names.isEmpty {
                    problems.append(
                        BindingProblem(
                            .io, "directory has no *.yaml or *.yml files", at: BindingLocation(file: path, document: 0))
                    )
                }
                let base = path.hasSuffix("/") ? String(path.dropLast()) : path
                files += names.map { "\(base)/\($0)" }
            } catch {
                problems.append(
                    BindingProblem(.io, "cannot list directory: \(error)", at: BindingLocation(file: path, document: 0))
                )
            }
        }
        return files
    }
}

/// Checks a parsed binding's rule entries against a rule set and records the rule ids each selects.
enum BindingValidator {
    static func resolve(_ binding: inout Binding, ruleSet: RuleSet, problems: inout [BindingProblem]) {
        let names = Dictionary(ruleSet.rules.map { ($0.name, $0.id) }, uniquingKeysWith: { first, _ in first })
        for index in binding.rules.indices {
            var here = binding.source
            here.path = "spec.rules[\(index)]"
            var entry = binding.rules[index]
            here.line = entry.line
            switch entry.reference {
            case .name(let name):
                here.path += ".ruleName"
                if let id = names[name] {
                    entry.ruleIDs = [id]
                } else {
                    problems.append(
                        BindingProblem(.unknownRule, "no rule named '\(name)'" + didYouMean(name, names.keys), at: here)
                    )
                }
            case .id(let id):
                here.path += ".ruleID"
                if ruleSet.rule(id: id) != nil {
                    entry.ruleIDs = [id]
                } else {
                    problems.append(
                        BindingProblem(
                            .unknownRule, "no rule with id '\(id)'" + didYouMean(id, ruleSet.rules.map(\.id)), at: here)
                    )
                }
            case .tags(let tags):
                here.path += ".ruleTags"
                entry.ruleIDs = ruleSet.rules.filter { rule in rule.tags.contains(where: tags.contains) }.map(\.id)
                if entry.ruleIDs.isEmpty {
                    let known = Set(ruleSet.rules.flatMap(\.tags))
                    let hints = tags.map { didYouMean($0, known) }.filter { !$0.isEmpty }.joined()
                    problems.append(
                        BindingProblem(
                            .unknownRule, "no rule has any of the tags [\(tags.joined(separator: ", "))]" + hints,
                            at: here))
                }
            }
            binding.rules[index] = entry
            guard !entry.ruleIDs.isEmpty, !entry.parameters.isEmpty else { continue }
            checkParameters(entry, index: index, binding: binding, ruleSet: ruleSet, problems: &problems)
        }
    }

    /// Each parameter must be declared by the rule (for tags: by at least one selected rule), have the declared
    /// shape (a list where the default is a list, a single value where it is one), and compile.
    static func checkParameters(
        _ entry: BindingRule, index: Int, binding: Binding, ruleSet: RuleSet, problems: inout [BindingProblem]
    ) {
        let rules = entry.ruleIDs.compactMap { ruleSet.rule(id: $0) }
        var overrides: ParameterOverrides = [:]
        for name in entry.parameters.keys.sorted() {
            let value = entry.parameters[name]!
            var here = binding.source
            here.line = entry.line
            here.path = "spec.rules[\(index)].parameters.\(name)"
            let declaring = rules.filter { $0.parameters[name] != nil }
            if declaring.isEmpty {
                let subject =
                    rules.count == 1
                    ? "rule \(rules[0].id)" : "none of the rules \(rules.map(\.id).joined(separator: ", "))"
                let known = Set(rules.flatMap(\.parameters.keys))
                let list = known.isEmpty ? "it has no parameters" : "known: \(known.sorted().joined(separator: ", "))"
                problems.append(
                    BindingProblem(
                        .badParameter, "\(subject) has no parameter '\(name)'" + didYouMean(name, known) + " (\(list))",
                        at: here))
                continue
            }
            var shapeOK = true
            for rule in declaring where rule.parameters[name]!.isList != value.isList {
                let expected = rule.parameters[name]!.isList ? "a list (e.g. [a, b])" : "a single value"
                problems.append(
                    BindingProblem(
                        .badParameter,
                        "rule \(rule.id) expects \(expected) for '\(name)', got "
                            + (value.isList ? "a list" : "a single value"),
                        at: here))
                shapeOK = false
            }
            guard shapeOK else { continue }
            for rule in declaring { overrides[rule.id, default: [:]][name] = value }
        }
        guard !overrides.isEmpty else { return }
        // Types (a port that is not a number, ...) are checked by compiling, the way the rules will run.
        do {
            _ = try ruleSet.withParameters(overrides)
        } catch {
            var here = binding.source
            here.line = entry.line
            here.path = "spec.rules[\(index)].parameters"
            problems.append(
                BindingProblem(.badParameter, "\(error.rule.map { "\($0): " } ?? "")\(error.reason)", at: here))
        }
    }
}
