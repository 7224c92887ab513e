import ArgumentParser
import Foundation
import WireFormat

/// `patrolctl scans ...`: on-demand malware scans run by a node's sensor (docs/malware.md#on-demand-scans).
struct ScansCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scans", abstract: "On-demand malware scans on a node's sensor: start, list, get.",
        discussion: """
            The collector queues the scan for the node's sensor, which gets it with its next reply (within one \
            status interval when idle). Scans are kept in the collector's memory, not across its restarts.

            Examples:
              patrolctl scans start --node worker-1 --path /srv/uploads --wait
              patrolctl scans start --node worker-1 --container 3f2a9c...
              patrolctl scans list --node worker-1
              patrolctl scans get scan-0123456789ab -o json
            """,
        subcommands: [Start.self, List.self, Get.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a scan; prints its id (with --wait, its result).",
            discussion: """
                Without --path and --container the sensor scans its configured roots (the whole host by default). \
                With --container, --path is inside the container's root file system.

                With --wait: progress goes to stderr while the scan runs, then the result (as `scans get`) to \
                stdout. Exit status 0 when the scan finished and found nothing, 1 when it found malware, failed, \
                was cancelled or had not finished within --wait-timeout.
                """)
        @OptionGroup var connection: CollectorOptions
        @Option(name: .long, help: "The node whose sensor scans (or a sensor id).") var node: String
        @Option(name: .long, help: "A host path (or, with --container, a path inside the container).")
        var path: String?
        @Option(name: .long, help: ArgumentHelp("A container id: scan its root file system.", valueName: "id"))
        var container: String?
        @Flag(name: .long, help: "Wait for the scan to end and print its result.") var wait = false
        @Option(
            name: .long,
            help: ArgumentHelp("With --wait: give up after this long. Default 3600.", valueName: "seconds"))
        var waitTimeout: Double = 3600
        @Option(name: .shortAndLong, help: "Output format of the --wait result: yaml (also for table) or json.")
        var output: OutputFormat = .yaml

        func validate() throws {
            if node.isEmpty { throw ValidationError("--node must not be empty") }
            if let path, container == nil, !path.hasPrefix("/") {
                throw ValidationError("--path must be absolute (or inside --container)")
            }
            if waitTimeout <= 0 { throw ValidationError("--wait-timeout must be positive") }
        }

        func run() async throws {
            let client = try connection.client()
            let request = AdminStartScanRequest(node: node, path: path ?? "", containerID: container ?? "")
            let reply = try client.decode(
                try await client.call("StartScan", WireCodec.encode(request)), WireCodec.decodeAdminStartScanReply)
            guard wait else {
                Console.out(reply.scanID)
                return
            }
            Console.error("scan \(reply.scanID) queued on \(reply.sensors.joined(separator: ", "))")
            try await waitForEnd(reply.scanID)
        }

        /// Polls `GetScan` once a second, printing each change of progress on stderr, until the scan has ended.
        private func waitForEnd(_ id: String) async throws {
            let deadline = ContinuousClock.now + .milliseconds(Int64(waitTimeout * 1000))
            var lastLine = ""
            while true {
                // Each call closes its connection; a new client per poll.
                let document = try await connection.client().document(
                    "GetScan", AdminGetRequest(name: id, format: .json))
                let scan = ScanSummary(json: document.body)
                let line = scan.progressLine(id)
                if line != lastLine {
                    Console.error(line)
                    lastLine = line
                }
                if ["finished", "failed", "cancelled"].contains(scan.state) {
                    let final = output == .json
                        ? document : try await connection.client().document("GetScan", AdminGetRequest(name: id))
                    printDocument(final)
                    switch scan.state {
                    case "finished" where scan.findings == 0: return
                    case "finished":
                        Console.error("patrolctl: scan \(id) found \(scan.findings) infected file(s)")
                    default:
                        Console.error("patrolctl: scan \(id) \(scan.state): \(scan.error)")
                    }
                    throw InvalidInput()
                }
                if ContinuousClock.now >= deadline {
                    let waited = AdminClient.seconds(.milliseconds(Int64(waitTimeout * 1000)))
                    Console.error(
                        "patrolctl: scan \(id) has not finished after \(waited); it goes on "
                            + "(patrolctl scans get \(id))")
                    throw InvalidInput()
                }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Scans started through the collector, newest first: state, progress, findings.")
        @OptionGroup var connection: CollectorOptions
        @Option(name: .long, help: "Only scans on this node.") var node: String?
        @Option(name: .shortAndLong, help: "Output format: table, json or yaml.") var output: OutputFormat = .table

        func run() async throws {
            let client = try connection.client()
            render(try await client.table("ListScans", AdminListRequest(filter: node ?? "")), output)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One scan in full: progress, and each finding with its path, signature, SHA-256 and container.")
        @OptionGroup var connection: CollectorOptions
        @Argument(help: "The scan id (as `scans start` printed it).") var id: String
        @Option(name: .shortAndLong, help: "Output format: yaml (also for table) or json.")
        var output: OutputFormat = .yaml

        func run() async throws {
            let client = try connection.client()
            let request = AdminGetRequest(name: id, format: output == .json ? .json : .yaml)
            printDocument(try await client.document("GetScan", request))
        }
    }
}

/// The few fields of a `GetScan` JSON document that `--wait` follows.
struct ScanSummary {
    var state = ""
    var error = ""
    var findings = 0
    var filesSeen = 0
    var filesScanned = 0
    var filesUnchanged = 0

    init(json: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return }
        state = object["state"] as? String ?? ""
        error = object["error"] as? String ?? ""
        findings = object["findingsCount"] as? Int ?? 0
        let progress = object["progress"] as? [String: Any] ?? [:]
        filesSeen = progress["filesSeen"] as? Int ?? 0
        filesScanned = progress["filesScanned"] as? Int ?? 0
        filesUnchanged = progress["filesUnchanged"] as? Int ?? 0
    }

    func progressLine(_ id: String) -> String {
        "\(id): \(state), \(filesSeen) files seen, \(filesScanned) scanned, \(filesUnchanged) unchanged, "
            + "\(findings) findings"
    }
}
