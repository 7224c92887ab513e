import ArgumentParser
import Bindings
import EventModel
import RuleEngine
import TestSupport

/// What bindings add per event: the same events through a plain `RuleEvaluator` and through a `BoundEvaluator`
/// (pod lookup in the resolution cache, then that pod's evaluator, then severity overrides), in one run, so the
/// ratio holds on a noisy machine.
struct BindingsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bindings",
        abstract: "Per-event cost of BoundEvaluator over RuleEvaluator (same rules, same events, one core).")

    @Option(help: "Rule file(s) to load (repeatable).")
    var rules: [String] = ["rules/runtime-signatures.yaml"]

    @Option(
        help: """
            Binding file(s) or directories (repeatable, e.g. rules/bindings/default.yaml). Default: one binding of \
            every rule to every pod, so both sides raise the same alerts and the difference is the binding overhead.
            """)
    var bindings: [String] = []

    @Option(help: "Events to evaluate per round.")
    var events = 2_000_000

    @Option(help: "Distinct events generated up front and cycled.")
    var distinctEvents = 100_000

    @Option(help: "Timed rounds; the best of each side is reported.")
    var rounds = 3

    @Option(help: "Labels per pod (0 to 3).")
    var labels = 3

    @Option(help: "Fixture seed.")
    var seed: UInt64 = 42

    mutating func run() throws {
        precondition(events > 0 && distinctEvents > 0 && rounds > 0)
        let ruleSet = try RuleSet.load(files: rules)
        let everything = """
            apiVersion: kubescape.io/v1
            kind: RuntimeRuleAlertBinding
            metadata: {name: everything}
            spec:
              rules:
            \(ruleSet.rules.map { "    - ruleID: \($0.id)" }.joined(separator: "\n"))
            """
        let bound =
            bindings.isEmpty
            ? try BindingLoader.load(yaml: everything, file: "<every rule>", ruleSet: ruleSet)
            : try BindingLoader.load(paths: bindings, ruleSet: ruleSet)
        var fixtures = EventFixtures(seed: seed)
        // Pods carry a few labels, as from the Kubernetes API (the cache key hashes them).
        let sample = fixtures.events(distinctEvents, kinds: EventFixtures.execOpenConnect).map { event in
            var event = event
            if var container = event.container {
                let all = [
                    ("app", container.containerName), ("pod-template-hash", String(container.podName.suffix(5))),
                    ("app.kubernetes.io/part-of", "shop"),
                ]
                container.labels = Dictionary(uniqueKeysWithValues: all.prefix(labels))
                event.container = container
            }
            return event
        }
        print(
            "bindings: \(ruleSet.rules.count) rules, \(bound.count) binding(s); \(events) events per round "
                + "(\(sample.count) distinct, cycled)")
        let clock = ContinuousClock()
        func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
        var bestPlain = Double.infinity
        var bestBound = Double.infinity
        var cpuPlain = Double.infinity
        var cpuBound = Double.infinity
        var alertsPlain = 0
        var alertsBound = 0
        for _ in 0..<rounds {
            // Alternate the two sides in each round so load changes hit both.
            var plain = RuleEvaluator(ruleSet: ruleSet)
            alertsPlain = 0
            var cpuStart = threadCPUSeconds()
            var start = clock.now
            sample.withUnsafeBufferPointer { buffer in
                var index = 0
                for _ in 0..<events {
                    alertsPlain &+= plain.evaluate(buffer[index]).count
                    index += 1
                    if index == buffer.count { index = 0 }
                }
            }
            bestPlain = min(bestPlain, seconds(clock.now - start))
            cpuPlain = min(cpuPlain, threadCPUSeconds() - cpuStart)

            var boundEvaluator = BoundEvaluator(ruleSet: ruleSet, bindings: bound)
            alertsBound = 0
            cpuStart = threadCPUSeconds()
            start = clock.now
            sample.withUnsafeBufferPointer { buffer in
                var index = 0
                for _ in 0..<events {
                    alertsBound &+= boundEvaluator.evaluate(buffer[index]).count
                    index += 1
                    if index == buffer.count { index = 0 }
                }
            }
            bestBound = min(bestBound, seconds(clock.now - start))
            cpuBound = min(cpuBound, threadCPUSeconds() - cpuStart)
        }
        let plainNs = bestPlain * 1e9 / Double(events)
        let boundNs = bestBound * 1e9 / Double(events)
        print("bindings: RuleEvaluator  \(String(format1: plainNs)) ns/event, \(alertsPlain) alerts per round")
        print("bindings: BoundEvaluator \(String(format1: boundNs)) ns/event, \(alertsBound) alerts per round")
        print(
            "bindings: ratio \(String(format1: boundNs / plainNs))x, +\(String(format1: boundNs - plainNs)) ns/event "
                + "[best of \(rounds), one core, wall]")
        let plainCPU = cpuPlain * 1e9 / Double(events)
        let boundCPU = cpuBound * 1e9 / Double(events)
        print(
            "bindings: thread CPU: RuleEvaluator \(String(format1: plainCPU)) ns/event, BoundEvaluator "
                + "\(String(format1: boundCPU)) ns/event, ratio \(String(format1: boundCPU / plainCPU))x")
    }
}
