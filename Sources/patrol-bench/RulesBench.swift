import ArgumentParser
import EventModel
import RuleEngine
import TestSupport

/// Rule evaluation throughput on one core: the 30 signature rules of `bench/rules/signature-30.yaml` against
/// the sensor's typical exec/open/open/open/connect mix (`TestSupport.EventFixtures`).
struct RulesBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Evaluate an exec/open/connect mix against bench/rules/signature-30.yaml; print events/s on one core.")

    @Option(help: "Rule file(s) to load (repeatable).")
    var rules: [String] = ["bench/rules/signature-30.yaml"]

    @Option(help: "Events to evaluate per round.")
    var events = 2_000_000

    @Option(help: "Distinct events generated up front and cycled.")
    var distinctEvents = 100_000

    @Option(help: "Timed rounds; the best is reported.")
    var rounds = 3

    @Option(help: "Fixture seed.")
    var seed: UInt64 = 42

    @Option(
        help: """
            Percent of the sample's events that raise an alert. The fixtures' mix is attack-heavy (about half alert); \
            with a value here, alerting events are dropped from the sample until this share remains (1 is typical).
            """)
    var alertPercent: Double?

    mutating func run() throws {
        precondition(events > 0 && distinctEvents > 0 && rounds > 0)
        let ruleSet = try RuleSet.load(files: rules)
        var fixtures = EventFixtures(seed: seed)
        var sample = fixtures.events(distinctEvents, kinds: EventFixtures.execOpenConnect)
        if let alertPercent {
            var probe = RuleEvaluator(ruleSet: ruleSet)
            var quiet: [Event] = []
            var alerting: [Event] = []
            for event in sample {
                if probe.evaluate(event).isEmpty { quiet.append(event) } else { alerting.append(event) }
            }
            let keep = min(alerting.count, Int(Double(quiet.count) * alertPercent / max(1e-9, 100 - alertPercent)))
            // Spread the kept alerting events evenly through the quiet ones.
            var mixed: [Event] = []
            mixed.reserveCapacity(quiet.count + keep)
            let stride = keep > 0 ? max(1, quiet.count / keep) : Int.max
            var kept = 0
            for (index, event) in quiet.enumerated() {
                mixed.append(event)
                if kept < keep, index % stride == stride - 1 {
                    mixed.append(alerting[kept])
                    kept += 1
                }
            }
            sample = mixed
        }
        print("rules: \(ruleSet.rules.count) rules from \(rules.joined(separator: ", ")); "
            + "\(events) events per round, exec/open/open/open/connect mix (\(sample.count) distinct, cycled)")
        var best = Double.infinity
        var bestCPU = Double.infinity
        var alerts = 0
        let clock = ContinuousClock()
        for _ in 0..<rounds {
            var evaluator = RuleEvaluator(ruleSet: ruleSet)
            alerts = 0
            let cpuStart = threadCPUSeconds()
            let start = clock.now
            sample.withUnsafeBufferPointer { buffer in
                var index = 0
                for _ in 0..<events {
                    alerts &+= evaluator.evaluate(buffer[index]).count
                    index += 1
                    if index == buffer.count { index = 0 }
                }
            }
            let elapsed = clock.now - start
            best = min(best, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            bestCPU = min(bestCPU, threadCPUSeconds() - cpuStart)
        }
        print("rules: \(alerts) alerts per round (\(String(format1: Double(alerts) * 100 / Double(events))) % of events)")
        print("rules: \(String(format1: Double(events) / best / 1e6))M events/s "
            + "(\(String(format1: best * 1e9 / Double(events))) ns/event)  [best of \(rounds), one core, wall]")
        print("rules: \(String(format1: Double(events) / bestCPU / 1e6))M events per CPU-second (thread CPU time)")
    }
}
