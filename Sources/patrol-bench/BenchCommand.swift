import ArgumentParser

/// `patrol-bench`: Patrol's benchmarks, one subcommand (and one file) per area. Run in release mode:
/// `swift run -c release patrol-bench <subcommand>`. Results are recorded in docs/BENCHMARKS.md.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "patrol-bench",
        abstract: "Patrol benchmarks (build with -c release).",
        subcommands: [
            WireBench.self, TransportBench.self, RulesBench.self, ReplayFileBench.self, AuditBench.self, AuditValidate.self,
            OutboxBench.self, AuditESBench.self, AuditESServe.self,
            ProfilesBench.self, BindingsBench.self, ScanBench.self,
        ])
}
