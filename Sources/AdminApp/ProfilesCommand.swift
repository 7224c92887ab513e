import ArgumentParser
import EventModel
import Foundation
import WireFormat

/// `patrolctl profiles ...`: the collector's application profiles (docs/profiles.md), online.
struct ProfilesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profiles",
        abstract: "Application profiles held by the collector: list, export, import, finalize, reset, allow.",
        discussion: """
            A workload is namespace/Kind/name (default/Deployment/web), as alerts and `profiles list` print it.
            These commands talk to the collector's admin service (--collector); see docs/patrolctl.md.
            """,
        subcommands: [List.self, Get.self, Export.self, Import.self, Finalize.self, Reset.self, Allow.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every workload container's profile: state and sizes.")
        @OptionGroup var connection: CollectorOptions
        @Option(name: .shortAndLong, help: "Only this namespace.") var namespace: String?
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func run() async throws {
            let client = try connection.client()
            render(try await client.table("ListProfiles", AdminListRequest(namespace: namespace ?? "")), output)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One workload's profile as an ApplicationProfile document (YAML, or JSON with -o json).")
        @OptionGroup var connection: CollectorOptions
        @Argument(help: "The workload: namespace/Kind/name.") var workload: String
        @Option(name: .shortAndLong, help: "Output format: yaml (also for table) or json.")
        var output: OutputFormat = .yaml

        func run() async throws {
            let client = try connection.client()
            let request = AdminGetRequest(name: workload, format: output == .json ? .json : .yaml)
            printDocument(try await client.document("GetProfile", request))
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every profile (or one namespace's) as a YAML stream of ApplicationProfile documents.",
            discussion:
                "Example: patrolctl profiles export -f profiles.yaml; later patrolctl profiles import -f profiles.yaml")
        @OptionGroup var connection: CollectorOptions
        @Option(name: .shortAndLong, help: "Only this namespace.") var namespace: String?
        @Option(name: [.customShort("f"), .long], help: "Write to this file instead of stdout.") var file: String?

        func run() async throws {
            let client = try connection.client()
            let request = AdminGetRequest(name: "", namespace: namespace ?? "", format: .yaml)
            let document = try await client.document("GetProfile", request)
            if let file {
                do {
                    try document.body.write(toFile: file, atomically: true, encoding: .utf8)
                } catch {
                    Console.error("patrolctl: cannot write \(file): \(error.localizedDescription)")
                    throw InvalidInput()
                }
            } else {
                printDocument(document)
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install ApplicationProfile documents (YAML or JSON); a profile replaces the workload's own.",
            discussion:
                "All documents are read first: if any is invalid, nothing is installed and the exit status is 1.")
        @OptionGroup var connection: CollectorOptions
        @Option(name: [.customShort("f"), .long], parsing: .singleValue, help: "A file or directory; repeatable.")
        var file: [String]
        @Flag(name: .long, help: "Check only; change nothing.") var dryRun = false
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func validate() throws {
            if file.isEmpty { throw ValidationError("give at least one profile file or directory with -f") }
        }

        func run() async throws {
            let documents = try documentFiles(file).map {
                AdminDocument(name: $0.path, format: $0.path.hasSuffix(".json") ? .json : .yaml, body: $0.text)
            }
            let client = try connection.client()
            let payload = try await client.call(
                "ApplyProfiles", WireCodec.encode(AdminApplyRequest(documents: documents, dryRun: dryRun)))
            try report(try client.decode(payload, WireCodec.decodeAdminApplyReply), dryRun: dryRun, output)
        }
    }

    struct Finalize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a workload's learning now: from the next event its profile judges.")
        @OptionGroup var connection: CollectorOptions
        @Argument(help: "The workload: namespace/Kind/name.") var workload: String
        @Option(name: .long, help: "Only this container.") var container: String?

        func run() async throws {
            let client = try connection.client()
            let request = AdminProfileAllowRequest(
                name: workload, namespace: "", container: container ?? "", kind: nil, finalize: true)
            let changed = try client.decode(
                try await client.call("AllowInProfile", WireCodec.encode(request)),
                WireCodec.decodeAdminProfileAllowReply)
            Console.out(changed ? "\(workload): final" : "\(workload): already final")
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Forget a workload's profile (memory and store): it learns again from its next event.")
        @OptionGroup var connection: CollectorOptions
        @Argument(help: "The workload: namespace/Kind/name.") var workload: String

        func run() async throws {
            let client = try connection.client()
            let deleted = try client.decode(
                try await client.call("DeleteProfile", WireCodec.encode(AdminDeleteRequest(name: workload))),
                WireCodec.decodeAdminDeleteReply)
            guard deleted else {
                Console.error("patrolctl: no profile for \(workload)")
                throw InvalidInput()
            }
            Console.out("\(workload): reset; it learns again")
        }
    }

    struct Allow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add one behaviour to a workload container's profile, so it is no longer an anomaly.",
            discussion: """
                Give exactly one behaviour. Anomaly alerts end with the exact command, for example:
                  patrolctl profiles allow ns/Deployment/web --container app --exec /bin/sh --arg sh --arg -c --arg id
                  patrolctl profiles allow ns/Deployment/web --container app --open /etc/shadow --flags O_RDONLY
                  patrolctl profiles allow ns/Deployment/web --container app --syscall unshare
                  patrolctl profiles allow ns/Deployment/web --container app --capability CAP_SYS_ADMIN --syscall mount
                  patrolctl profiles allow ns/Deployment/web --container app --dns example.com
                  patrolctl profiles allow ns/Deployment/web --container app --connect tcp://10.0.0.1:443
                """)
        @OptionGroup var connection: CollectorOptions
        @Argument(help: "The workload: namespace/Kind/name.") var workload: String
        @Option(name: .long, help: "The container's name.") var container: String
        @Option(name: .long, help: "An executable's path (with its --arg words).") var exec: String?
        @Option(
            name: .long, parsing: .unconditionalSingleValue, help: "An argv word of --exec, argv[0] first; repeatable.")
        var arg: [String] = []
        @Option(name: .long, help: "An opened path (with --flags).") var open: String?
        @Option(name: .long, help: "open(2) flag names, comma separated: O_RDONLY,O_CLOEXEC.") var flags: String?
        @Option(name: .long, help: "A system call's name (alone, or the call of --capability).") var syscall: String?
        @Option(name: .long, help: "A capability's name, e.g. CAP_NET_RAW (with --syscall).") var capability: String?
        @Option(name: .long, help: "A DNS name.") var dns: String?
        @Option(name: .long, help: "An outgoing endpoint: proto://host:port.") var connect: String?
        @Option(name: .long, help: "An incoming endpoint: proto://host:port.") var accept: String?

        func validate() throws {
            let behaviours =
                [exec != nil, open != nil, capability != nil, dns != nil, connect != nil, accept != nil]
                .filter { $0 }.count + (capability == nil && syscall != nil ? 1 : 0)
            guard behaviours == 1 else {
                throw ValidationError(
                    "give exactly one of --exec, --open, --syscall, --capability (with --syscall), --dns, --connect, "
                        + "--accept"
                )
            }
            if !arg.isEmpty && exec == nil { throw ValidationError("--arg goes with --exec") }
            if (open == nil) != (flags == nil) { throw ValidationError("--open and --flags go together") }
            if capability != nil && syscall == nil { throw ValidationError("--capability needs --syscall") }
        }

        /// The behaviour as the admin service's fields (docs/patrolctl.md#profiles-allow).
        var behaviour: (EventKind, [String: String]) {
            if let exec {
                var fields = ["path": exec, "argc": String(arg.count)]
                for (index, word) in arg.enumerated() { fields["arg.\(index)"] = word }
                return (.exec, fields)
            }
            if let open { return (.open, ["path": open, "flags": flags ?? ""]) }
            if let capability { return (.capability, ["capability": capability, "syscall": syscall ?? ""]) }
            if let dns { return (.dns, ["name": dns]) }
            if let connect { return (.connect, ["endpoint": connect]) }
            if let accept { return (.accept, ["endpoint": accept]) }
            return (.syscalls, ["syscall": syscall ?? ""])
        }

        func run() async throws {
            let (kind, fields) = behaviour
            let client = try connection.client()
            let request = AdminProfileAllowRequest(
                name: workload, namespace: "", container: container, kind: kind, fields: fields)
            let changed = try client.decode(
                try await client.call("AllowInProfile", WireCodec.encode(request)),
                WireCodec.decodeAdminProfileAllowReply)
            Console.out(
                changed
                    ? "allowed in \(workload) container \(container)"
                    : "already allowed in \(workload) container \(container)")
        }
    }
}
