import AuditPipeline
import ArgumentParser
import Basics
import Elasticsearch
import EventModel
import Foundation
import Logging
import RuleEngine
import Synchronization
import TestSupport

/// `patrol-bench audit-es-serve` (hidden): the Elasticsearch test server holding an NDJSON file of audit events,
/// in its own process so that `audit-es` can report the server's CPU time apart from Patrol's.
///
/// Each event is stored in the dated index of its time (`<prefix>-YYYY.MM.DD`) with a millisecond `@timestamp`, as
/// Fluentd with logstash_format ships them. Prints `ready PORT DOCUMENTS CPU_SECONDS` (CPU spent loading), then
/// serves until its standard input closes and prints the CPU it used in all.
struct AuditESServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit-es-serve", abstract: "Serve an NDJSON audit file from the Elasticsearch test server.",
        shouldDisplay: false)

    @Option(help: "NDJSON audit events.")
    var file: String

    @Option(help: "Index prefix of the dated indices.")
    var indexPrefix = "audit"

    mutating func run() throws {
        // Unbuffered: the parent waits for these lines on a pipe.
        func emit(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
        let server = try ElasticsearchTestServer()
        var loaded = 0
        for line in try readLines(file) {
            guard case .object(var members)? = try? JSONText.parse(line),
                let text = members["requestReceivedTimestamp"]?.stringValue ?? members["stageTimestamp"]?.stringValue,
                let time = AuditMapping.parseRFC3339(text)
            else { continue }
            let iso = time.iso8601  // YYYY-MM-DDThh:mm:ss.uuuuuuZ
            members["@timestamp"] = .string(String(iso.dropLast(4)) + "Z")
            let day = iso.prefix(10).replacingOccurrences(of: "-", with: ".")
            server.add(.object(members), index: "\(indexPrefix)-\(day)")
            loaded += 1
        }
        emit("ready \(server.port) \(loaded) \(processCPUSeconds())")
        while readLine() != nil {}
        emit("done \(processCPUSeconds())")
        server.stop()
    }
}

/// `patrol-bench audit-es`: documents per second end to end from the Elasticsearch test server through the static
/// audit source (point in time + search_after, page by page, HTTP on loopback) → the Fluentd field mapping → the
/// audit rules → alerts, with the server's own CPU time measured separately (it runs in a child process).
struct AuditESBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit-es",
        abstract: "Audit documents/s from the Elasticsearch test server through source + mapping + rules + alerts.")

    @Option(help: "NDJSON audit events the server holds (e.g. the shared background.ndjson).")
    var file: String

    @Option(help: "Directory holding the audit rule files (audit-*.yaml).")
    var rules = "rules"

    @Option(help: "Documents per search page.")
    var pageSize = 1000

    @Option(help: "Timed passes over the whole range; the best is reported.")
    var rounds = 3

    mutating func run() async throws {
        precondition(rounds > 0 && pageSize > 0)
        let ruleSet = try RuleSet.load(files: try defaultAuditRuleFiles(rules))
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        server.arguments = ["audit-es-serve", "--file", file]
        let input = Pipe()
        let output = Pipe()
        server.standardInput = input
        server.standardOutput = output
        try server.run()
        let lines = LineReader(output.fileHandleForReading)
        let ready = (lines.next() ?? "").split(separator: " ")
        guard ready.count == 4, ready[0] == "ready", let port = Int(ready[1]), let documents = Int(ready[2]),
            let loadCPU = Double(ready[3])
        else {
            server.terminate()
            throw ValidationError("the test server did not start: \(ready.joined(separator: " "))")
        }
        print("audit-es: \(documents) documents in the test server (loaded in \(format(loadCPU)) CPU-s); "
            + "\(ruleSet.rules.count) rules; page size \(pageSize); Fluentd mapping")

        let client = ElasticsearchClient(endpoint: try .parse("127.0.0.1:\(port)"))
        var logger = Logger(label: "audit-es")
        logger.logLevel = .warning
        var bestWall = Double.infinity, bestCPU = Double.infinity
        var summary: ElasticsearchAuditSource.Summary?
        var alerts = 0
        let clock = ContinuousClock()
        for _ in 0..<rounds {
            let source = ElasticsearchAuditSource(
                client: client,
                configuration: .init(
                    indexPrefix: "audit", start: 0, end: WallClock.now(), pageSize: pageSize, mapping: .fluentd),
                logger: logger)
            let evaluator = Mutex(RuleEvaluator(ruleSet: ruleSet))
            let raised = Atomic<Int>(0)
            let cpuStart = processCPUSeconds()
            let start = clock.now
            summary = try await source.run { records in
                var count = 0
                evaluator.withLock { evaluator in
                    for record in records {
                        let event = Event(time: 0, node: "", process: EventModel.ProcessInfo(), payload: .audit(record))
                        count += evaluator.evaluate(event).count
                    }
                }
                raised.add(count, ordering: .relaxed)
            }
            let elapsed = clock.now - start
            bestWall = min(bestWall, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            bestCPU = min(bestCPU, processCPUSeconds() - cpuStart)
            alerts = raised.load(ordering: .relaxed)
        }
        try input.fileHandleForWriting.close()
        let done = (lines.next() ?? "").split(separator: " ")
        server.waitUntilExit()
        let serverCPU = done.count == 2 ? (Double(done[1]) ?? .nan) - loadCPU : .nan
        let perRoundServer = serverCPU / Double(rounds)
        guard let summary else { return }
        print("audit-es: \(summary.documents) documents per round (\(summary.malformed) malformed), \(alerts) alerts")
        print("audit-es: patrol (source + mapping + rules + alerts, all its threads) "
            + "\(Int(Double(summary.documents) / bestCPU)) documents per CPU-second, "
            + "\(Int(Double(summary.documents) / bestWall)) documents/s wall  [best of \(rounds)]")
        print("audit-es: test server \(format(perRoundServer)) CPU-s per round (serving only, mean of \(rounds)) = "
            + "\(Int(Double(summary.documents) / perRoundServer)) documents per server CPU-second; "
            + "patrol \(format(bestCPU)) CPU-s per round")
    }

    func format(_ seconds: Double) -> String { String(format: "%.3f", seconds) }
}

/// Lines of a pipe, read as they arrive.
final class LineReader {
    let handle: FileHandle
    var buffer: [UInt8] = []

    init(_ handle: FileHandle) { self.handle = handle }

    func next() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty {
                defer { buffer = [] }
                return buffer.isEmpty ? nil : String(decoding: buffer, as: UTF8.self)
            }
            buffer.append(contentsOf: chunk)
        }
    }
}
