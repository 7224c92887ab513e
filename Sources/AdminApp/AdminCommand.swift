import ArgumentParser
import Basics

#if canImport(Glibc)
import Glibc
#endif

/// The `patrolctl` command line: `patrolctl <area> <verb>`, where an area is bindings, rules, and later profiles,
/// sensors and alerts (commands that talk to the collector's admin service slot in beside the offline ones).
///
/// Exit status: 0 success, 1 invalid input or rejected by the collector (the errors are on stderr), 2 usage error,
/// 3 the collector is unreachable or refused the request.
public struct AdminCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "patrolctl",
        abstract: "Patrol's admin CLI.",
        discussion: """
            Offline commands (rules, bindings validate) read files only. Online commands (profiles, sensors, \
            alerts, scans) talk to the collector's admin service: --collector ADDRESS, else $PATROL_ADMIN, else \
            ipc:///run/patrol/admin.sock; tls+tcp:// needs --cert, --key and --ca.

            Exit status: 0 success, 1 invalid input or rejected by the collector (errors on stderr), 2 usage \
            error, 3 collector unreachable or request refused.

            Examples:
              patrolctl rules list
              patrolctl rules show R1003 -o yaml
              patrolctl rules validate -f my-rules.yaml
              patrolctl bindings validate -f bindings/
              patrolctl profiles list
              patrolctl alerts list --since 1h --rule R0001
              patrolctl scans start --node worker-1 --path /srv --wait
            """,
        version: PatrolVersion.current,
        subcommands: [
            BindingsCommand.self, RulesCommand.self, ProfilesCommand.self, SensorsCommand.self, AlertsCommand.self,
            ScansCommand.self,
        ])

    public init() {}

    /// Runs `patrolctl` with the process arguments and exits with its status.
    public static func main() async {
        Glibc.exit(await run(arguments: Array(CommandLine.arguments.dropFirst())))
    }

    /// Runs `patrolctl` with `arguments` and returns the exit status (0, 1 or 2; see above).
    public static func run(arguments: [String]) async -> Int32 {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch is InvalidInput {
            return 1
        } catch is CollectorFailure {
            return 3
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help, --version, or a group named without a verb: help on stdout.
                Console.out(fullMessage(for: error))
                return 0
            }
            if let explicit = error as? ExitCode { return explicit.rawValue }
            // Everything else ArgumentParser reports is a usage error (unknown option, missing argument, a
            // value that does not parse): EX_USAGE in ArgumentParser, 2 here as for most Unix tools.
            Console.error(fullMessage(for: error))
            return 2
        }
    }
}
