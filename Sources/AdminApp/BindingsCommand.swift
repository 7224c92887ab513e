import ArgumentParser
import Bindings
import EventModel
import RuleEngine
import WireFormat

/// `patrolctl bindings ...`: RuntimeRuleAlertBinding documents. `validate` is offline; `apply`, `list`, `get` and
/// `delete` talk to the collector's admin service.
struct BindingsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bindings",
        abstract: "Rule bindings (RuntimeRuleAlertBinding): which rules apply to which pods.",
        subcommands: [Validate.self, Apply.self, List.self, Get.self, Delete.self])

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply binding files to the collector, as one all-or-nothing change (validated there).",
            discussion: """
                Every document of every file is validated against the collector's loaded rules; if any is invalid, \
                nothing changes, each problem is printed and the exit status is 1. Changes reach running \
                containers without a restart. Example: patrolctl bindings apply -f deploy/bindings/ --dry-run
                """)
        @OptionGroup var connection: CollectorOptions
        @Option(
            name: [.customShort("f"), .long], parsing: .singleValue, help: "A binding file or directory; repeatable.")
        var file: [String]
        @Flag(name: .long, help: "Validate only; change nothing.") var dryRun = false
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func validate() throws {
            if file.isEmpty { throw ValidationError("give at least one binding file or directory with -f") }
        }

        func run() async throws {
            let documents = try documentFiles(file).map { AdminDocument(name: $0.path, format: .yaml, body: $0.text) }
            let client = try connection.client()
            let payload = try await client.call(
                "ApplyBindings", WireCodec.encode(AdminApplyRequest(documents: documents, dryRun: dryRun)))
            try report(try client.decode(payload, WireCodec.decodeAdminApplyReply), dryRun: dryRun, output)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The bindings applied to the collector.")
        @OptionGroup var connection: CollectorOptions
        @Option(name: .shortAndLong, help: "Only this namespace.") var namespace: String?
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func run() async throws {
            let client = try connection.client()
            render(try await client.table("ListBindings", AdminListRequest(namespace: namespace ?? "")), output)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One applied binding's document, as written.")
        @OptionGroup var connection: CollectorOptions
        @Argument(help: "The binding's name.") var name: String
        @Option(name: .shortAndLong, help: "Its namespace; none for a cluster-scoped binding.") var namespace: String?
        @Option(name: .shortAndLong, help: "Output format: yaml (also for table) or json.")
        var output: OutputFormat = .yaml

        func run() async throws {
            let client = try connection.client()
            let request = AdminGetRequest(
                name: name, namespace: namespace ?? "", format: output == .json ? .json : .yaml)
            printDocument(try await client.document("GetBinding", request))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove an applied binding; when the last one goes, the default bindings apply again.")
        @OptionGroup var connection: CollectorOptions
        @Argument(help: "The binding's name.") var name: String
        @Option(name: .shortAndLong, help: "Its namespace; none for a cluster-scoped binding.") var namespace: String?

        func run() async throws {
            let client = try connection.client()
            let deleted = try client.decode(
                try await client.call(
                    "DeleteBinding", WireCodec.encode(AdminDeleteRequest(name: name, namespace: namespace ?? ""))),
                WireCodec.decodeAdminDeleteReply)
            let key = namespace.map { "\($0)/\(name)" } ?? name
            guard deleted else {
                Console.error("patrolctl: no binding '\(key)' is applied")
                throw InvalidInput()
            }
            Console.out("binding \(key) deleted")
        }
    }

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate binding files against the rule files, as one apply (all-or-nothing).",
            discussion: """
                Every problem in every document is reported on stderr as \
                file:line: document N (name): field.path: reason, and the exit status is 1. Directories \
                contribute their *.yaml and *.yml files in name order. See docs/bindings.md.

                Example: patrolctl bindings validate -f deploy/bindings/ --rules /etc/patrol/rules.d
                """)

        @Option(
            name: [.customShort("f"), .long], parsing: .singleValue, help: "A binding file or directory; repeatable.")
        var file: [String]
        @OptionGroup var source: RuleSource
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func validate() throws {
            if file.isEmpty { throw ValidationError("give at least one binding file or directory with -f") }
        }

        func run() async throws {
            let ruleSet = try source.load()
            let bindings: [Binding]
            do {
                bindings = try BindingLoader.load(paths: file, ruleSet: ruleSet)
            } catch {
                for problem in error.problems { Console.error(problem.description) }
                Console.error("\(error.problems.count) problem\(error.problems.count == 1 ? "" : "s"); nothing applied")
                throw InvalidInput()
            }
            Console.render(output) {
                var table = Table(header: ["NAME", "NAMESPACE", "SOURCE", "RULES"])
                for binding in bindings {
                    table.rows.append([
                        binding.name, binding.namespace ?? "(all)",
                        "\(binding.source.file)#\(binding.source.document)", ruleIDs(binding).joined(separator: ","),
                    ])
                }
                return table
            } value: {
                .list(bindings.map(describe))
            }
        }
    }
}

private func ruleIDs(_ binding: Binding) -> [String] {
    var seen = Set<String>()
    return binding.rules.flatMap(\.ruleIDs).filter { seen.insert($0).inserted }
}

private func selector(_ selector: LabelSelector) -> OutputValue {
    .object([
        ("matchLabels", .object(selector.matchLabels.keys.sorted().map { ($0, .string(selector.matchLabels[$0]!)) })),
        (
            "matchExpressions",
            .list(
                selector.matchExpressions.map { requirement in
                    .object([
                        ("key", .string(requirement.key)), ("operator", .string(requirement.op.rawValue)),
                        ("values", .list(requirement.values.map { .string($0) })),
                    ])
                })
        ),
    ])
}

private func describe(_ binding: Binding) -> OutputValue {
    var members: [(String, OutputValue)] = [("name", .string(binding.name))]
    if let namespace = binding.namespace { members.append(("namespace", .string(namespace))) }
    members += [
        ("source", .object([("file", .string(binding.source.file)), ("document", .int(binding.source.document))])),
        ("namespaceSelector", selector(binding.namespaceSelector)), ("podSelector", selector(binding.podSelector)),
        (
            "rules",
            .list(
                binding.rules.map { entry in
                    var rule: [(String, OutputValue)] = []
                    switch entry.reference {
                    case .name(let name): rule.append(("ruleName", .string(name)))
                    case .id(let id): rule.append(("ruleID", .string(id)))
                    case .tags(let tags): rule.append(("ruleTags", .list(tags.map { .string($0) })))
                    }
                    rule.append(("ruleIDs", .list(entry.ruleIDs.map { .string($0) })))
                    if !entry.parameters.isEmpty {
                        rule.append(
                            (
                                "parameters",
                                .object(
                                    entry.parameters.keys.sorted().map { name in
                                        switch entry.parameters[name]! {
                                        case .scalar(let text): return (name, .string(text))
                                        case .list(let items): return (name, .list(items.map { .string($0) }))
                                        }
                                    })
                            ))
                    }
                    if let severity = entry.severity { rule.append(("severity", .string(severity.rawValue))) }
                    return .object(rule)
                })
        ),
    ]
    return .object(members)
}
