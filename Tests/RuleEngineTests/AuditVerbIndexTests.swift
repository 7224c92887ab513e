import EventModel
import RuleEngine
import Testing

// Audit rules are indexed by the verbs and resources their conditions require, so an event only visits rules
// that can match its verb and resource. The index must never hide an alert: each rule below fires exactly when its condition says so.

@Suite struct AuditVerbIndexTests {
    static let rules = """
        - macro: writes
          condition: ka.verb in (create, update)
        - rule:
            id: W1
            name: Write through a macro
            severity: low
            events: [audit]
            condition: writes and ka.target.resource = pods
            output: "w1 %ka.verb"
        - rule:
            id: D1
            name: Delete only
            severity: low
            events: [audit]
            condition: ka.verb = delete
            output: "d1 %ka.verb"
        - rule:
            id: N1
            name: Not a read
            severity: low
            events: [audit]
            condition: not ka.verb in (get, list, watch)
            output: "n1 %ka.verb"
        - rule:
            id: O1
            name: Either a delete or a secret
            severity: low
            events: [audit]
            condition: ka.verb = delete or ka.target.resource = secrets
            output: "o1 %ka.verb"
        - rule:
            id: A1
            name: Any verb for secrets
            severity: low
            events: [audit]
            condition: ka.target.resource = secrets
            output: "a1 %ka.verb"
        """

    func fired(_ verb: String?, _ resource: String?) throws -> [String] {
        var evaluator = RuleEvaluator(ruleSet: try RuleSet.load(yaml: Self.rules))
        var document: [String: JSONValue] = ["objectRef": .object(resource.map { ["resource": .string($0)] } ?? [:])]
        if let verb { document["verb"] = .string(verb) }
        let tree = evaluator.evaluate(auditEvent(document))
        // The same document read from text (indexed) must raise the same alerts.
        let text = JSONValue.object(document).jsonText
        let indexed = evaluator.evaluate(try AuditMapping.raw.event(fromJSON: text, sourceID: "file:1"))
        #expect(indexed.map(\.ruleID) == tree.map(\.ruleID))
        return tree.map(\.ruleID)
    }

    @Test func rulesFireForTheirVerbsOnly() throws {
        #expect(try fired("create", "pods") == ["W1", "N1"])
        #expect(try fired("update", "pods") == ["W1", "N1"])
        #expect(try fired("get", "pods") == [])
        #expect(try fired("delete", "pods") == ["D1", "N1", "O1"])
        #expect(try fired("get", "secrets") == ["O1", "A1"])
        // A verb no rule names still reaches the rules that do not require one, in rule order.
        #expect(try fired("impersonate", "secrets") == ["N1", "O1", "A1"])
        #expect(try fired(nil, "secrets") == ["N1", "O1", "A1"])  // absent verb: "not ka.verb in" holds
    }

    // The index also splits by `ka.target.resource` (W1 needs pods, A1 secrets; O1's `or` needs neither).
    @Test func rulesFireForTheirResourcesOnly() throws {
        #expect(try fired("create", "secrets") == ["N1", "O1", "A1"])
        #expect(try fired("create", "configmaps") == ["N1"])
        #expect(try fired("delete", "secrets") == ["D1", "N1", "O1", "A1"])
        // No resource at all, or one no rule names: only the rules that require none.
        #expect(try fired("create", nil) == ["N1"])
        #expect(try fired("delete", nil) == ["D1", "N1", "O1"])
        #expect(try fired("get", "Secrets") == [])
        #expect(try fired(nil, nil) == ["N1"])
    }
}
