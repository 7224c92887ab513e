import Bindings
import EventModel
import RuleEngine
import Testing

/// Issue 6, acceptance 3 (offline): each invalid fixture is rejected with its reason, the file, the document and
/// the field path.
@Suite struct RejectedBindingsTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let file: String
        let code: BindingsError.Code
        let path: String
        let reason: String
        var testDescription: String { file }
    }

    static let cases: [Case] = [
        Case(
            file: "two-references.yaml", code: .ruleReference, path: "spec.rules[0]",
            reason: "a rule entry has exactly one of ruleName, ruleID or ruleTags; it has ruleName and ruleID"),
        Case(
            file: "no-reference.yaml", code: .ruleReference, path: "spec.rules[0]",
            reason: "a rule entry needs exactly one of ruleName, ruleID or ruleTags; it has none"),
        Case(
            file: "unknown-rule-name.yaml", code: .unknownRule, path: "spec.rules[0].ruleName",
            reason: "no rule named 'Crypto minor' (did you mean 'Crypto miner'?)"),
        Case(
            file: "unknown-rule-id.yaml", code: .unknownRule, path: "spec.rules[0].ruleID",
            reason: "no rule with id 'R1099' (did you mean"),
        Case(
            file: "unknown-tags.yaml", code: .unknownRule, path: "spec.rules[0].ruleTags",
            reason: "no rule has any of the tags [cryptominer, no-such-tag]"),
        Case(
            file: "unknown-parameter.yaml", code: .badParameter, path: "spec.rules[0].parameters.allowedPort",
            reason: "rule R1003 has no parameter 'allowedPort' (did you mean 'allowedPorts'?)"),
        Case(
            file: "parameter-shape.yaml", code: .badParameter, path: "spec.rules[0].parameters.allowedPorts",
            reason: "rule R1003 expects a list (e.g. [a, b]) for 'allowedPorts', got a single value"),
        Case(file: "parameter-type.yaml", code: .badParameter, path: "spec.rules[0].parameters", reason: "ssh"),
        Case(
            file: "bad-severity.yaml", code: .badSeverity, path: "spec.rules[0].severity",
            reason: "bad severity 'urgent'; expected one of info, low, medium, high, critical"),
        Case(
            file: "bad-operator.yaml", code: .badSelector, path: "spec.podSelector.matchExpressions[0].operator",
            reason: "unknown operator 'Equals'; expected one of In, NotIn, Exists, DoesNotExist"),
        Case(
            file: "in-without-values.yaml", code: .badSelector, path: "spec.podSelector.matchExpressions[0].values",
            reason: "operator In needs a non-empty 'values' list"),
        Case(
            file: "exists-with-values.yaml", code: .badSelector,
            path: "spec.namespaceSelector.matchExpressions[0].values", reason: "operator Exists takes no 'values'"),
        Case(
            file: "bad-label-key.yaml", code: .badSelector, path: "spec.podSelector.matchLabels",
            reason: "label key '-app'"),
        Case(
            file: "unknown-field.yaml", code: .badDocument, path: "spec.podSelectr",
            reason: "unknown field (did you mean 'podSelector'?)"),
        Case(
            file: "wrong-kind.yaml", code: .badDocument, path: "kind",
            reason: "unsupported kind 'RuntimeRuleBinding'; expected 'RuntimeRuleAlertBinding'"),
        Case(
            file: "wrong-api-version.yaml", code: .badDocument, path: "apiVersion",
            reason: "unsupported apiVersion 'kubescape.io/v2'; expected 'kubescape.io/v1'"),
        Case(file: "missing-name.yaml", code: .badDocument, path: "metadata.name", reason: "missing required field"),
        Case(file: "not-yaml.yaml", code: .badDocument, path: "", reason: "invalid YAML"),
    ]

    @Test(arguments: cases) func rejected(_ expected: Case) throws {
        let file = fixtures + "/invalid/" + expected.file
        let found = problems { () throws(BindingsError) in try BindingLoader.load(paths: [file], ruleSet: try! rules())
        }
        #expect(found.count == 1, "\(found)")
        let problem = try #require(found.first)
        #expect(problem.code == expected.code)
        #expect(problem.location.file == file)
        #expect(problem.location.path == expected.path)
        #expect(problem.reason.contains(expected.reason), "\(problem.reason)")
        if expected.code != .badDocument || expected.path != "" {
            #expect(problem.location.document == 1)
            #expect(problem.location.line > 0)
        }
    }

    @Test func oneBadDocumentRejectsTheFileAndEveryErrorIsListed() throws {
        let file = fixtures + "/invalid/multi-document.yaml"
        let found = problems { () throws(BindingsError) in try BindingLoader.load(paths: [file], ruleSet: try! rules())
        }
        #expect(found.map(\.location.document) == [2, 3])
        #expect(found.map(\.location.name) == ["second", "third"])
        #expect(found.map(\.code) == [.ruleReference, .badSeverity])
        #expect(found[0].location.path == "spec.rules[1]")
        #expect(
            found[0].description.hasPrefix(
                file + ":15: document 2 (second): spec.rules[1]: a rule entry has exactly one"))
    }

    @Test func aDirectoryIsOneApply() throws {
        // The valid fixtures load together ...
        let all = try BindingLoader.load(paths: [fixtures + "/valid"], ruleSet: try rules())
        #expect(all.count == 13)
        // ... and one invalid file among valid ones rejects everything.
        let found = problems { () throws(BindingsError) in
            try BindingLoader.load(
                paths: [fixtures + "/valid", fixtures + "/invalid/bad-severity.yaml"], ruleSet: try! rules())
        }
        #expect(found.map(\.code) == [.badSeverity])
    }

    @Test func duplicateNamesInOneApply() throws {
        let found = problems { () throws(BindingsError) in
            try BindingLoader.load(paths: [fixtures + "/invalid/duplicate-name.yaml"], ruleSet: try! rules())
        }
        #expect(found.map(\.code) == [.duplicateName])
        #expect(found.first?.location.document == 2)
    }

    @Test func missingPathIsAnIOError() {
        let found = problems { () throws(BindingsError) in
            try BindingLoader.load(paths: [fixtures + "/no-such-file.yaml"], ruleSet: try! rules())
        }
        #expect(found.map(\.code) == [.io])
    }
}
