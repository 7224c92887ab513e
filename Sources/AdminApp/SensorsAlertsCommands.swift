import ArgumentParser
import Foundation
import WireFormat

/// `patrolctl sensors ...`: the sensors that said hello to the collector, with their latest status.
struct SensorsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensors", abstract: "Sensors known to the collector: version, last seen, drops, hooks.",
        subcommands: [List.self, Get.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every sensor: node, version, last seen, drops, hooks.")
        @OptionGroup var connection: CollectorOptions
        @Option(name: .long, help: "Only sensors on this node.") var node: String?
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func run() async throws {
            let client = try connection.client()
            render(try await client.table("ListSensors", AdminListRequest(filter: node ?? "")), output)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One sensor in full: hooks failed and why, counters.")
        @OptionGroup var connection: CollectorOptions
        @Argument(help: "The sensor id.") var sensor: String
        @Option(name: .shortAndLong, help: "Output format: yaml (also for table) or json.")
        var output: OutputFormat = .yaml

        func run() async throws {
            let client = try connection.client()
            let request = AdminGetRequest(name: sensor, format: output == .json ? .json : .yaml)
            printDocument(try await client.document("GetSensor", request))
        }
    }
}

/// `patrolctl alerts ...`: alerts from the collector's store (its outbox), newest first.
struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts", abstract: "Alerts in the collector's store, newest first.",
        subcommands: [List.self, Get.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Alerts, newest first, filtered by time, rule and namespace.",
            discussion: """
                Examples:
                  patrolctl alerts list --since 1h --rule R0001
                  patrolctl alerts list --since 2026-01-01T00:00:00Z --namespace shop -o json
                """)
        @OptionGroup var connection: CollectorOptions
        @Option(
            name: .long,
            help: "Only alerts seen since: a duration back from now (90s, 30m, 1h, 2d) or an RFC 3339 time.")
        var since: String?
        @Option(name: .long, help: "Only this rule (id or name).") var rule: String?
        @Option(name: .shortAndLong, help: "Only this namespace.") var namespace: String?
        @Option(name: .long, help: "At most this many alerts. Default 100.") var limit: UInt32 = 100
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func validate() throws {
            if let since, Self.parseSince(since, now: Date()) == nil {
                throw ValidationError(
                    "--since '\(since)' is neither a duration (90s, 30m, 1h, 2d) nor an RFC 3339 time")
            }
            if let rule, rule.contains(",") { throw ValidationError("--rule takes one rule") }
        }

        /// Nanoseconds since the epoch of `text`: `1h` back from `now`, or an RFC 3339 time.
        static func parseSince(_ text: String, now: Date) -> UInt64? {
            let units: [(String, Double)] = [("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
            for (suffix, scale) in units where text.hasSuffix(suffix) {
                if let number = Double(text.dropLast(suffix.count)), number >= 0 {
                    return UInt64(max(0, now.timeIntervalSince1970 - number * scale) * 1e9)
                }
            }
            let formatter = ISO8601DateFormatter()
            if let date = formatter.date(from: text) { return UInt64(max(0, date.timeIntervalSince1970) * 1e9) }
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            if let date = formatter.date(from: text) { return UInt64(max(0, date.timeIntervalSince1970) * 1e9) }
            return nil
        }

        func run() async throws {
            var filter: [String] = []
            if let rule { filter.append("rule=\(rule)") }
            if let since, let nanoseconds = Self.parseSince(since, now: Date()) {
                filter.append("since=\(nanoseconds)")
            }
            let client = try connection.client()
            let request = AdminListRequest(
                namespace: namespace ?? "", filter: filter.joined(separator: ","), limit: limit)
            render(try await client.table("ListAlerts", request), output)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One alert in full, by id.")
        @OptionGroup var connection: CollectorOptions
        @Argument(help: "The alert id.") var id: String
        @Option(name: .shortAndLong, help: "Output format: yaml (also for table) or json.")
        var output: OutputFormat = .yaml

        func run() async throws {
            let client = try connection.client()
            let request = AdminGetRequest(name: id, format: output == .json ? .json : .yaml)
            printDocument(try await client.document("GetAlert", request))
        }
    }
}
