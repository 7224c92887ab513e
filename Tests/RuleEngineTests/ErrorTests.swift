import EventModel
import RuleEngine
import Testing

@Suite struct LoadErrorTests {
    func expectError(
        _ yaml: String, _ code: RuleEngineError.Code, line: Int, contains reason: String, file: String = "bad.yaml",
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard let error = loadError(yaml, file: file) else {
            Issue.record("expected \(code), loaded fine", sourceLocation: sourceLocation)
            return
        }
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(error.line == line, "\(error)", sourceLocation: sourceLocation)
        #expect(error.message.contains("\(file):\(line)"), "\(error)", sourceLocation: sourceLocation)
        #expect(error.message.contains(reason), "\(error)", sourceLocation: sourceLocation)
        #expect(error.file == file)
    }

    @Test func badYAML() {
        expectError("- rule:\n    id: X\n    name: [unclosed\n", .badYAML, line: 4, contains: "invalid YAML")
        expectError("rule: not-a-list\n", .badYAML, line: 1, contains: "YAML list")
    }

    @Test func unknownTopLevelKeyAndRuleKey() {
        expectError("- lsit: x\n  items: []\n", .unknownKey, line: 1, contains: "did you mean 'list'")
        let typo = """
            - rule:
                id: T1
                name: n
                severity: low
                events: [exec]
                condtion: proc.name = x
                output: o
            """
        expectError(typo, .unknownKey, line: 6, contains: "unknown key 'condtion' in rule (did you mean 'condition'?)")
        let error = loadError(typo)
        #expect(error?.rule == "rule 'T1'")
        #expect(error?.message.contains("rule 'T1'") == true)
    }

    @Test func badRegexCarriesPCREMessage() {
        let yaml = """
            - rule:
                id: RX
                name: n
                severity: low
                events: [exec]
                condition: proc.cmdline regex 'a(b'
                output: o
            """
        expectError(yaml, .badRegex, line: 6, contains: "missing closing parenthesis")
        expectError(yaml, .badRegex, line: 6, contains: "rule 'RX'")
    }

    @Test func unknownMacroListFieldParameter() {
        func rule(_ condition: String) -> String {
            """
            - macro: my_macro
              condition: proc.name = x
            - rule:
                id: U1
                name: n
                severity: low
                events: [exec]
                condition: \(condition)
                output: o
            """
        }
        expectError(rule("my_macor"), .unknownMacro, line: 8, contains: "unknown macro 'my_macor' (did you mean 'my_macro'?)")
        expectError(rule("proc.name in shell_binaries"), .unknownList, line: 8, contains: "unknown list 'shell_binaries'")
        expectError(rule("proc.nmae = x"), .unknownField, line: 8, contains: "unknown field 'proc.nmae' (did you mean 'proc.name'?)")
        expectError(rule("proc.name in param.names"), .unknownParameter, line: 8, contains: "unknown parameter 'names'")
        expectError(rule("fd.name = /etc"), .fieldNotApplicable, line: 8, contains: "not available for event kinds [exec]")
        expectError(rule("proc.name = (a"), .badCondition, line: 8, contains: "column")
        expectError(rule("proc.name"), .badCondition, line: 8, contains: "needs an operator")
        // A macro with an unknown reference fails even when no rule uses it, at the macro's line.
        let unused = "- macro: m\n  condition: nope_macro and proc.name = x\n"
        expectError(unused, .unknownMacro, line: 2, contains: "macro 'm'")
        let cycle = "- macro: a\n  condition: b\n- macro: b\n  condition: a\n" + rule("a").split(separator: "\n").dropFirst(2).joined(separator: "\n")
        #expect(loadError(cycle)?.code == .macroCycle)
    }

    @Test func typeMismatchAtLoadTime() {
        func rule(_ condition: String) -> String {
            "- rule:\n    id: T\n    name: n\n    severity: low\n    events: [exec, connect]\n    condition: \(condition)\n    output: o\n"
        }
        expectError(rule("proc.pid = bash"), .typeMismatch, line: 6, contains: "'bash' is not an integer")
        expectError(rule("proc.pid regex '^1'"), .typeMismatch, line: 6, contains: "needs a string field")
        expectError(rule("net.dport contains 22"), .typeMismatch, line: 6, contains: "needs a string field")
        expectError(rule("proc.name > abc"), .typeMismatch, line: 6, contains: "ordering operators need an int field")
        expectError(rule("exec.upper_layer = maybe"), .typeMismatch, line: 6, contains: "not true or false")
        expectError(rule("exec.upper_layer startswith t"), .typeMismatch, line: 6, contains: "bool")
        expectError(rule("proc.name = (a, b)"), .typeMismatch, line: 6, contains: "use 'in'")
        expectError(rule("net.dport in (22, ssh)"), .typeMismatch, line: 6, contains: "'ssh' is not an integer")
    }

    @Test func duplicateIDSeverityKind() {
        let dup = """
            - rule: {id: D, name: a, severity: low, events: [exec], condition: proc.name = a, output: o}
            - rule: {id: D, name: b, severity: low, events: [exec], condition: proc.name = b, output: o}
            """
        expectError(dup, .duplicateRule, line: 2, contains: "duplicate rule id 'D' (first defined at bad.yaml:1)")
        expectError(
            "- rule: {id: S, name: a, severity: urgent, events: [exec], condition: proc.name = a, output: o}",
            .badSeverity, line: 1, contains: "bad severity 'urgent'")
        expectError(
            "- rule: {id: K, name: a, severity: low, events: [exce], condition: proc.name = a, output: o}",
            .badEventKind, line: 1, contains: "unknown event kind 'exce' (did you mean 'exec'?)")
        expectError("- rule: {id: M, name: a, severity: low, events: [exec], output: o}", .badValue, line: 1, contains: "missing required key 'condition'")
        expectError(
            "- rule: {id: G, name: a, severity: low, events: [exec], condition: 'proc.exe glob \"[a\"', output: o}", .badGlob,
            line: 1, contains: "bad glob")
        expectError(
            "- rule: {id: O, name: a, severity: low, events: [exec], condition: proc.name = a, output: '%proc.nam'}",
            .unknownField, line: 1, contains: "in output")
    }

    @Test func overrideOfMissingTargets() {
        expectError("- list: nope\n  items: [a]\n  append: true\n", .overrideTarget, line: 1, contains: "no list 'nope'")
        expectError("- rule:\n    id: NOPE\n    enabled: false\n", .overrideTarget, line: 1, contains: "no rule 'NOPE'")
    }

    @Test func errorsNameTheRightFileWhenLoadingSeveral() {
        let good = "- rule: {id: A, name: a, severity: low, events: [exec], condition: proc.name = a, output: o}"
        let bad = "- rule:\n    id: A\n    name: again\n    severity: low\n    events: [exec]\n    condition: proc.name = b\n    output: o\n"
        do {
            _ = try RuleSet.load(sources: [("shipped.yaml", good), ("user.yaml", bad)])
            Issue.record("expected duplicate")
        } catch {
            #expect(error.code == .duplicateRule)
            #expect(error.message.hasPrefix("user.yaml:1: rule 'A': duplicate rule id"))
            #expect(error.message.contains("shipped.yaml:1"))
        }
    }

    @Test func loadingIsAllOrNothing() throws {
        // The first rule is fine, the last is broken: nothing is returned, so no half rule set can run.
        let yaml = """
            - rule: {id: OK1, name: a, severity: low, events: [exec], condition: proc.name = a, output: o}
            - rule: {id: OK2, name: b, severity: low, events: [exec], condition: proc.name = b, output: o}
            - rule: {id: BAD, name: c, severity: low, events: [exec], condition: proc.pid = x, output: o}
            """
        var loaded: RuleSet?
        do {
            loaded = try RuleSet.load(yaml: yaml, fileName: "mixed.yaml")
        } catch {
            #expect(error.line == 3)
            #expect(error.rule == "rule 'BAD'")
        }
        #expect(loaded == nil)
        // A broken override in a later file discards the earlier, valid file too.
        let valid = "- rule: {id: V, name: v, severity: low, events: [exec], condition: proc.name = v, output: o}"
        let broken = "- rule:\n    id: V\n    condition: and proc.pid = nope\n    append: true\n"
        #expect(throws: RuleEngineError.self) { try RuleSet.load(sources: [("a.yaml", valid), ("b.yaml", broken)]) }
    }

    @Test func errorDescriptionFollowsPatrolError() {
        let error = loadError("- rule: {id: S, name: a, severity: urgent, events: [exec], condition: proc.name = a, output: o}", file: "x.yaml")
        #expect(error?.description.hasPrefix("bad_severity: x.yaml:1: rule 'S': bad severity") == true)
    }
}

@Suite struct MoreErrorTests {
    @Test func errorsInsideMacrosNameTheMacroLineAndTheRule() {
        let yaml = """
            - macro: open_write
              condition: fd.write = maybe
            - rule:
                id: W
                name: w
                severity: low
                events: [open]
                condition: open_write
                output: o
            """
        let error = loadError(yaml, file: "m.yaml")
        #expect(error?.code == .typeMismatch)
        #expect(error?.line == 2)
        #expect(error?.message.contains("rule 'W'") == true)
        #expect(error?.message.contains("in macro 'open_write'") == true)
    }

    @Test func appendedConditionMustStartWithAndOr() {
        let base = "- macro: m\n  condition: proc.name = a\n"
        let user = "- macro: m\n  condition: proc.name = b\n  append: true\n"
        do {
            _ = try RuleSet.load(sources: [("base.yaml", base), ("user.yaml", user)])
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .badCondition)
            #expect(error.message.hasPrefix("user.yaml:2:"))
        }
    }

    @Test func icontainsHandlesNonASCII() throws {
        #expect(try fires("proc.cmdline icontains ÉTÉ", execEvent("/bin/echo", argv: ["echo", "été"])))
        #expect(try !fires("proc.cmdline icontains hiver", execEvent("/bin/echo", argv: ["echo", "été"])))
    }
}
