import ArgumentParser
import EventModel
import Foundation
import RuleEngine

/// The shipped audit rule files: `rules/audit-*.yaml` under the working directory, in name order.
func defaultAuditRuleFiles(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory)
        .filter { $0.hasPrefix("audit-") && $0.hasSuffix(".yaml") }
        .sorted()
        .map { directory + "/" + $0 }
}

/// The lines of a file of JSON documents, without empty lines; a clear error when the file is absent.
func readLines(_ path: String) throws -> [String] {
    guard FileManager.default.fileExists(atPath: path) else {
        throw ValidationError("audit event file '\(path)' does not exist (pass --file PATH)")
    }
    let text = try String(contentsOfFile: path, encoding: .utf8)
    // Split the bytes, not Characters: grapheme breaking a 6 MB file costs seconds.
    return text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).map { String(Substring($0)) }
}

/// `patrol-bench audit-validate`: runs the audit rules over a file of audit events and prints, per labelled
/// category, how many events some rule detected and which rules fired.
struct AuditValidate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit-validate",
        abstract: "Run the audit rules over an NDJSON file of audit events; print a detection table per labelled category.")

    @Option(help: "NDJSON file, one audit event (or shipper document) per line.")
    var file: String

    @Option(help: "TSV labels: a header, then one row per line of --file; column 5 holds comma-separated categories.")
    var labels: String?

    @Option(help: "Directory holding the audit rule files (audit-*.yaml).")
    var rules = "rules"

    @Option(help: "Extra rule file loaded after the shipped ones (repeatable), e.g. local overrides.")
    var extraRules: [String] = []

    @Option(help: "Field mapping preset: raw, fluentd, elastic-agent.")
    var preset = "raw"

    @Option(help: "Labelled categories that are benign (an alert on them is a false positive).")
    var benignCategories: [String] = ["anonymous-health-probe"]

    @Flag(help: "Exit with status 1 when a labelled attack event raised no alert.")
    var strict = false

    @Flag(help: "Also map every line through a full JSONValue tree and check the alerts are identical; exit 1 if not.")
    var compareTree = false

    mutating func run() throws {
        guard let presetValue = AuditMapping.Preset(rawValue: preset) else {
            throw ValidationError("unknown preset '\(preset)'; expected raw, fluentd or elastic-agent")
        }
        let mapping = AuditMapping(preset: presetValue)
        let files = try defaultAuditRuleFiles(rules) + extraRules
        let ruleSet = try RuleSet.load(files: files)
        var evaluator = RuleEvaluator(ruleSet: ruleSet)
        var treeEvaluator = RuleEvaluator(ruleSet: ruleSet)
        var treeDifferences = 0
        let lines = try readLines(file)
        var categoriesByLine: [Int: [String]] = [:]
        if let labels {
            for (index, row) in try readLines(labels).dropFirst().enumerated() {
                let columns = row.split(separator: "\t", omittingEmptySubsequences: false)
                let lineNumber = Int(columns.first ?? "") ?? (index + 1)
                let categories = columns.count > 4 ? columns[4].split(separator: ",").map(String.init) : []
                categoriesByLine[lineNumber] = categories
            }
        }
        let activityRules = Set(ruleSet.rules.filter { $0.tags.contains("activity") }.map(\.id))

        struct Row { var total = 0, detected = 0, rules: [String: Int] = [:], missed: [Int] = [] }
        var table: [String: Row] = [:]
        var malformed = 0
        var alertsByRule: [String: Int] = [:]
        var eventsWithAlert = 0, eventsWithDetection = 0
        var attackTotal = 0, attackDetected = 0
        var benignTotal = 0, benignFlagged = 0
        var unlabelledTotal = 0, unlabelledFlagged = 0
        for (index, line) in lines.enumerated() {
            let lineNumber = index + 1
            let event: Event
            do {
                event = try mapping.event(fromJSON: line, sourceID: "\(file):\(lineNumber)")
            } catch {
                malformed += 1
                print("line \(lineNumber): skipped: \(error)")
                continue
            }
            let alerts = evaluator.evaluate(event)
            if compareTree {
                // The same line through the tree parser and event(from:) must raise the very same alerts.
                let tree = try mapping.event(from: try JSONText.parse(line), sourceID: "\(file):\(lineNumber)")
                var treeEvent = tree
                treeEvent.time = event.time  // events without any time get the read time
                if treeEvaluator.evaluate(treeEvent) != alerts {
                    treeDifferences += 1
                    print("line \(lineNumber): the tree-mapped event raised different alerts")
                }
            }
            let fired = Set(alerts.map(\.ruleID))
            let detections = fired.subtracting(activityRules)
            for id in fired { alertsByRule[id, default: 0] += 1 }
            if !fired.isEmpty { eventsWithAlert += 1 }
            if !detections.isEmpty { eventsWithDetection += 1 }
            guard labels != nil else { continue }
            let categories = categoriesByLine[lineNumber] ?? []
            let attacks = categories.filter { !benignCategories.contains($0) }
            if categories.isEmpty {
                unlabelledTotal += 1
                if !detections.isEmpty { unlabelledFlagged += 1 }
            } else if attacks.isEmpty {
                benignTotal += 1
                if !detections.isEmpty { benignFlagged += 1 }
            } else {
                attackTotal += 1
                if !fired.isEmpty { attackDetected += 1 }
            }
            for category in categories {
                var row = table[category, default: Row()]
                row.total += 1
                if !fired.isEmpty { row.detected += 1 } else { row.missed.append(lineNumber) }
                for id in fired { row.rules[id, default: 0] += 1 }
                table[category] = row
            }
        }

        print("file: \(file) (\(lines.count) lines, \(malformed) malformed); rules: \(ruleSet.rules.count) from "
            + files.joined(separator: ", "))
        if labels != nil {
            print("")
            print("| category | detected / total | rules that fired (events) |")
            print("|---|---|---|")
            for (category, row) in table.sorted(by: { $0.key < $1.key }) {
                let rules = row.rules.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                    .map { "\($0.key) (\($0.value))" }.joined(separator: ", ")
                let benign = benignCategories.contains(category) ? " (benign)" : ""
                print("| \(category)\(benign) | \(row.detected) / \(row.total) | \(rules) |")
            }
            print("")
            print("attack events detected: \(attackDetected) / \(attackTotal)")
            print("benign-labelled events with a detection (non-activity) alert: \(benignFlagged) / \(benignTotal)")
            print("unlabelled events with a detection (non-activity) alert: \(unlabelledFlagged) / \(unlabelledTotal)")
            for (category, row) in table.sorted(by: { $0.key < $1.key }) where !row.missed.isEmpty
                && !benignCategories.contains(category)
            {
                print("missed \(category): lines \(row.missed.map(String.init).joined(separator: ","))")
            }
        }
        print("")
        print("events with any alert: \(eventsWithAlert) / \(lines.count - malformed); "
            + "with a detection (non-activity) alert: \(eventsWithDetection)")
        print("alerts by rule: " + alertsByRule.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        if compareTree {
            print("tree comparison: \(treeDifferences) lines whose alerts differ")
            if treeDifferences > 0 { throw ExitCode(1) }
        }
        if strict, attackDetected < attackTotal { throw ExitCode(1) }
    }
}

/// `patrol-bench audit`: audit events per second through parse + field mapping + the full audit rule set +
/// alert construction, in process on one core, with `grep -P` running K8sCop's URI patterns over the same
/// file in the same run as the raw-regex bound.
struct AuditBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Audit events/s on one core: parse + mapping + audit rules + alerts over a looped NDJSON file, vs grep -P.")

    @Option(help: "NDJSON audit events (e.g. the shared background.ndjson).")
    var file: String

    @Option(help: "Directory holding the audit rule files (audit-*.yaml).")
    var rules = "rules"

    @Option(help: "Passes over the file per round.")
    var loops = 10

    @Option(help: "Timed rounds; the best is reported.")
    var rounds = 3

    @Flag(help: "Skip the grep -P comparison.")
    var noGrep = false

    @Option(help: "How far each event goes: parse (JSON index only), map (+ field mapping), all (+ rules and alerts).")
    var stage = "all"

    /// K8sCop's URI checks folded into one PCRE over the JSON line (its own regexes, defects included).
    static let k8scopPattern =
        #""requestURI":"/api/v1/(pods(\?limit=\d)?|pods\?includeUninitialized=true|secrets(\?limit=\d)?"#
        + #"|namespaces/[a-z0-9-]+/(pods(\?limit=\d)?|pods\?includeUninitialized=true|pods/[a-z0-9-]+(/exec?\?[^"]*)?"#
        + #"|secrets(\?limit=\d)?|secrets/[a-z0-9-]+\?))""#

    mutating func run() throws {
        precondition(loops > 0 && rounds > 0)
        guard ["parse", "map", "all"].contains(stage) else { throw ValidationError("--stage: parse, map or all") }
        let lines = try readLines(file)
        let ruleSet = try RuleSet.load(files: try defaultAuditRuleFiles(rules))
        let mapping = AuditMapping.raw
        let perRound = lines.count * loops
        print("audit: \(lines.count) events in \(file), \(loops) passes per round (\(perRound) events); "
            + "\(ruleSet.rules.count) rules (\(ruleSet.rules.filter(\.enabled).count) enabled)")
        var bestWall = Double.infinity, bestCPU = Double.infinity
        var alerts = 0, malformed = 0
        let clock = ContinuousClock()
        // Read once: reading the option property inside the loop cost a few per cent of the measured time.
        let stage = self.stage
        for _ in 0..<rounds {
            var evaluator = RuleEvaluator(ruleSet: ruleSet)
            alerts = 0
            malformed = 0
            let cpuStart = threadCPUSeconds()
            let start = clock.now
            for _ in 0..<loops {
                for line in lines {
                    do {
                        switch stage {
                        case "parse":
                            alerts &+= try JSONIndex(line).kind(JSONIndex.root) == .object ? 1 : 0
                        case "map":
                            alerts &+= Int(try mapping.event(fromJSON: line).time & 1)
                        default:
                            let event = try mapping.event(fromJSON: line)
                            alerts &+= evaluator.evaluate(event).count
                        }
                    } catch {
                        malformed += 1
                    }
                }
            }
            let elapsed = clock.now - start
            bestWall = min(bestWall, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            bestCPU = min(bestCPU, threadCPUSeconds() - cpuStart)
        }
        print("audit: \(alerts) alerts per round, \(malformed) malformed")
        print("audit: patrol \(Int(Double(perRound) / bestCPU)) events per CPU-second (thread CPU time), "
            + "\(Int(Double(perRound) / bestWall)) events/s wall  [best of \(rounds), one core]")
        guard !noGrep else { return }
        // grep reads the same file `loops` times per round; its CPU time comes from the children's rusage.
        var bestGrep = Double.infinity
        var matches = 0
        for _ in 0..<rounds {
            let before = childCPUSeconds()
            for _ in 0..<loops {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/grep")
                process.arguments = ["-P", "-c", Self.k8scopPattern, file]
                let pipe = Pipe()
                process.standardOutput = pipe
                try process.run()
                let output = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                matches = Int(String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            }
            bestGrep = min(bestGrep, childCPUSeconds() - before)
        }
        print("audit: grep -P (K8sCop's URI patterns, one PCRE) \(Int(Double(perRound) / bestGrep)) lines per CPU-second, "
            + "\(matches) matching lines per pass  [best of \(rounds)]")
    }
}

func childCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}
