import ArgumentParser
import EventModel
import Foundation
import RuleEngine

/// `patrolctl rules ...`: the rule catalog from rule files (offline).
struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "List, show and validate rules (offline, from rule files).",
        subcommands: [List.self, Show.self, Validate.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the rules in the rule files.",
            discussion: "Example: patrolctl rules list --rules /etc/patrol/rules.d -o json")

        @OptionGroup var source: RuleSource
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func run() async throws {
            let ruleSet = try source.load()
            Console.render(output) {
                var table = Table(header: ["ID", "SEVERITY", "ENABLED", "EVENTS", "NAME"])
                for rule in ruleSet.rules {
                    table.rows.append([
                        rule.id, rule.severity.rawValue, rule.enabled ? "yes" : "no",
                        rule.events.map(\.rawValue).joined(separator: ","), rule.name,
                    ])
                }
                return table
            } value: {
                .list(ruleSet.rules.map { summary($0) })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one rule: condition, output, fix, parameters and where it is defined.",
            discussion: "Example: patrolctl rules show R1003")

        @Argument(help: "The rule id, e.g. R1003.") var id: String
        @OptionGroup var source: RuleSource
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func run() async throws {
            let ruleSet = try source.load()
            guard let rule = ruleSet.rule(id: id) else {
                var message = "no rule with id '\(id)'"
                if let close = ruleSet.rules.map(\.id).first(where: { $0.lowercased() == id.lowercased() }) {
                    message += " (did you mean '\(close)'?)"
                }
                Console.error("patrolctl: " + message)
                throw InvalidInput()
            }
            switch output {
            case .table: Console.out(detailText(rule))
            case .json: Console.out(detail(rule).json)
            case .yaml: Console.out(String(detail(rule).yaml.dropLast()))
            }
        }
    }

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate rule files; they load together, in the order given (all-or-nothing).",
            discussion: """
                Directories contribute their *.yaml and *.yml files in name order. To check a local file that \
                extends the shipped rules, give both: -f rules/ -f local.yaml.

                Example: patrolctl rules validate -f rules/ -f /etc/patrol/rules.d/local.yaml
                """)

        @Option(name: [.customShort("f"), .long], parsing: .singleValue, help: "A rule file or directory; repeatable.")
        var file: [String]
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func validate() throws {
            if file.isEmpty { throw ValidationError("give at least one rule file or directory with -f") }
        }

        func run() async throws {
            let files = try RuleSource.expand(file)
            let ruleSet = try RuleSource.load(files)
            let value = OutputValue.object([
                ("valid", .bool(true)), ("files", .list(files.map { .string($0) })),
                ("rules", .int(ruleSet.rules.count)),
            ])
            switch output {
            case .table:
                Console.out("valid: \(ruleSet.rules.count) rules in \(files.count) file\(files.count == 1 ? "" : "s")")
            case .json: Console.out(value.json)
            case .yaml: Console.out(String(value.yaml.dropLast()))
            }
        }
    }
}

/// `--rules`: where the rule catalog comes from.
struct RuleSource: ParsableArguments {
    @Option(
        name: .customLong("rules"), parsing: .singleValue,
        help: ArgumentHelp(
            "Rule file or directory; repeatable, later ones extend earlier. Default ./rules.", valueName: "path"))
    var paths: [String] = []

    func load() throws -> RuleSet { try Self.load(try Self.expand(paths.isEmpty ? ["rules"] : paths)) }

    /// Files as given, directories to their `*.yaml`/`*.yml` files in name order (not recursive, so
    /// `rules/bindings/` is not read as rules).
    static func expand(_ paths: [String]) throws -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                Console.error("patrolctl: \(path): no such file or directory")
                throw InvalidInput()
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                let yaml = names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
                if yaml.isEmpty {
                    Console.error("patrolctl: \(path): no *.yaml or *.yml files")
                    throw InvalidInput()
                }
                let base = path.hasSuffix("/") ? String(path.dropLast()) : path
                files += yaml.map { "\(base)/\($0)" }
            } else {
                files.append(path)
            }
        }
        return files
    }

    static func load(_ files: [String]) throws -> RuleSet {
        do {
            return try RuleSet.load(files: files)
        } catch {
            Console.error(error.message)
            throw InvalidInput()
        }
    }
}

private func parameterValue(_ value: ParameterValue) -> OutputValue {
    switch value {
    case .scalar(let text): return .string(text)
    case .list(let items): return .list(items.map { .string($0) })
    }
}

private func parameters(_ rule: Rule) -> OutputValue {
    .object(rule.parameters.keys.sorted().map { ($0, parameterValue(rule.parameters[$0]!)) })
}

private func summary(_ rule: Rule) -> OutputValue {
    .object([
        ("id", .string(rule.id)), ("name", .string(rule.name)), ("severity", .string(rule.severity.rawValue)),
        ("enabled", .bool(rule.enabled)), ("events", .list(rule.events.map { .string($0.rawValue) })),
        ("tags", .list(rule.tags.map { .string($0) })), ("needsProfile", .bool(rule.needsProfile)),
        ("parameters", parameters(rule)),
    ])
}

private func detail(_ rule: Rule) -> OutputValue {
    var members: [(String, OutputValue)] = [
        ("id", .string(rule.id)), ("name", .string(rule.name)), ("severity", .string(rule.severity.rawValue)),
        ("enabled", .bool(rule.enabled)), ("events", .list(rule.events.map { .string($0.rawValue) })),
        ("tags", .list(rule.tags.map { .string($0) })), ("needsProfile", .bool(rule.needsProfile)),
        ("description", .string(rule.description)),
    ]
    if let sequence = rule.sequence {
        members.append(
            (
                "sequence",
                .object([
                    ("by", .list(sequence.by.map { .string($0) })),
                    ("withinNanoseconds", .int(Int(sequence.withinNanoseconds))),
                    (
                        "steps",
                        .list(
                            sequence.steps.map { step in
                                .object([
                                    ("events", .list(step.events.map { .string($0.rawValue) })),
                                    (
                                        "condition",
                                        .string(step.condition.trimmingCharacters(in: .whitespacesAndNewlines))
                                    ),
                                ])
                            })
                    ),
                ])
            ))
    }
    if !rule.condition.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        members.append(("condition", .string(rule.condition.trimmingCharacters(in: .whitespacesAndNewlines))))
    }
    members += [
        ("output", .string(rule.output)), ("fix", .string(rule.fix)), ("parameters", parameters(rule)),
        ("exceptions", .list(rule.exceptions.map { .string($0.name) })),
        ("location", .string(rule.location.description)),
    ]
    return .object(members)
}

private func detailText(_ rule: Rule) -> String {
    func wrap(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) }
    var lines = [
        "ID:            \(rule.id)",
        "Name:          \(rule.name)",
        "Severity:      \(rule.severity.rawValue)",
        "Enabled:       \(rule.enabled ? "yes" : "no")",
        "Events:        \(rule.events.map(\.rawValue).joined(separator: ", "))",
        "Tags:          \(rule.tags.joined(separator: ", "))",
        "Needs profile: \(rule.needsProfile ? "yes" : "no")",
        "Defined at:    \(rule.location)",
        "",
        "Description:",
        "  " + wrap(rule.description),
    ]
    if let sequence = rule.sequence {
        lines += [
            "",
            "Sequence (by \(sequence.by.joined(separator: ", ")), "
                + "within \(sequence.withinNanoseconds / 1_000_000) ms):",
        ]
        for (index, step) in sequence.steps.enumerated() {
            lines.append(
                "  \(index + 1). [\(step.events.map(\.rawValue).joined(separator: ","))] \(wrap(step.condition))")
        }
    }
    if !wrap(rule.condition).isEmpty { lines += ["", "Condition:", "  " + wrap(rule.condition)] }
    lines += ["", "Output:", "  " + rule.output, "", "Fix:", "  " + wrap(rule.fix)]
    if !rule.parameters.isEmpty {
        lines += ["", "Parameters:"]
        for name in rule.parameters.keys.sorted() { lines.append("  \(name): \(rule.parameters[name]!)") }
    }
    if !rule.exceptions.isEmpty {
        lines += ["", "Exceptions: " + rule.exceptions.map(\.name).joined(separator: ", ")]
    }
    return lines.joined(separator: "\n")
}
