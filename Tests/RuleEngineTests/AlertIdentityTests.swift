import EventModel
import RuleEngine
import Testing

/// An alert's id is the stable hash of (rule id, workload, what the event is about), so the same behaviour of the
/// same workload always maps to the same id (sinks use it to make re-delivery idempotent), and the message and
/// structured fields render the same values.
@Suite struct AlertIdentityTests {
    static let rules = """
        - rule:
            id: T1
            name: Any exec
            description: d
            severity: low
            events: [exec, open, connect]
            condition: proc.pid > 0
            output: "%proc.exe ran %evt.target twice: %evt.target (%container.name)"
        """

    static func expectedID(_ event: Event) -> String {
        var hash = StableHash()
        hash.combine("T1")
        if let container = event.container {
            hash.combine(container.namespace + "/" + container.podName + "/" + container.containerName)
        } else {
            hash.combine("node:" + event.node)
        }
        switch event.payload {
        case .exec(let exec): hash.combine("exec:" + exec.path)
        case .open(let open): hash.combine("open:" + open.path)
        case .connect(let flow): hash.combine("connect:\(flow.remoteAddress):\(flow.remotePort)")
        default: Issue.record("unexpected kind")
        }
        return hash.hex
    }

    @Test func idsHashRuleWorkloadAndEventKey() throws {
        let ruleSet = try RuleSet.load(yaml: Self.rules)
        var evaluator = RuleEvaluator(ruleSet: ruleSet)
        let events = [
            execEvent("/dev/shm/x"), execEvent("/dev/shm/x", container: nil), openEvent("/etc/shadow"),
            connectEvent("10.1.2.3", 3333),
        ]
        var ids: Set<String> = []
        for event in events {
            let alert = try #require(evaluator.evaluate(event).first)
            #expect(alert.id == Self.expectedID(event))
            ids.insert(alert.id)
        }
        // Container and host runs of the same path are different workloads.
        #expect(ids.count == events.count)
        // The same behaviour again (another pid, later) keeps its id.
        let again = try #require(evaluator.evaluate(execEvent("/dev/shm/x", pid: 999, time: 9_000_000_000)).first)
        #expect(again.id == Self.expectedID(events[0]))
    }

    @Test func aFieldUsedTwiceRendersTheSameValueInMessageAndFields() throws {
        var evaluator = RuleEvaluator(ruleSet: try RuleSet.load(yaml: Self.rules))
        let alert = try #require(evaluator.evaluate(openEvent("/etc/shadow")).first)
        #expect(alert.message == "/usr/bin/cat ran /etc/shadow twice: /etc/shadow (nginx)")
        #expect(alert.fields["evt.target"] == "/etc/shadow")
        #expect(alert.fields["container.name"] == "nginx")
        // A field with no value renders as <NA> and is left out of the structured fields.
        let host = try #require(evaluator.evaluate(openEvent("/etc/shadow", container: nil)).first)
        #expect(host.message.hasSuffix("(<NA>)"))
        #expect(host.fields["container.name"] == nil)
    }
}
