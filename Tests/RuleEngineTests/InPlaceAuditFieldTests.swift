import EventModel
import RuleEngine
import Testing

/// The cached `ka.*` fields of an audit document read from text are compared where they lie in the line (bytes)
/// when they are plain ASCII strings, and as decoded Strings otherwise. These cases pin that both ways answer as the
/// String comparison does: each condition runs on the line read as text (indexed, bytes where possible) and on the
/// same document parsed into a tree (Strings only), and both must give the expected answer.
@Suite struct InPlaceAuditFieldTests {
    /// True when a single audit rule with `condition` fires for the JSON `line`; checks the indexed and tree events
    /// agree first.
    func fires(_ condition: String, _ line: String, mapping: AuditMapping = .raw, lists: String = "") throws -> Bool {
        let yaml = lists + "\n" + """
            - rule:
                id: T1
                name: Test rule
                severity: high
                events: [audit]
                condition: '\(condition.replacingQuotes)'
                output: "hit %ka.user.name %ka.uri.path"
            """
        var evaluator = RuleEvaluator(ruleSet: try RuleSet.load(yaml: yaml, fileName: "test.yaml"))
        let indexed = evaluator.evaluate(try mapping.event(fromJSON: line, sourceID: "file:1"))
        var treeEvent = try mapping.event(from: try JSONText.parse(line), sourceID: "file:1")
        treeEvent.time = try mapping.event(fromJSON: line, sourceID: "file:1").time
        let tree = evaluator.evaluate(treeEvent)
        #expect(indexed == tree, "bytes and Strings disagree on \(condition) for \(line)")
        return !indexed.isEmpty
    }

    func line(user: String = #""alice""#, verb: String = #""get""#, uri: String = #""/api/v1/pods""#,
              namespace: String? = #""default""#) -> String {
        var objectRef = #""resource":"pods""#
        if let namespace { objectRef += #","namespace":"# + namespace }
        return #"{"kind":"Event","auditID":"a1","verb":"# + verb + #","requestURI":"# + uri
            + #","user":{"username":"# + user + #"},"objectRef":{"# + objectRef
            + #"},"stageTimestamp":"2024-01-01T00:00:00Z"}"#
    }

    @Test("a value with escapes compares as its decoded text")
    func escapedValues() throws {
        let escapedUser = line(user: #""sys\u0074em:anonymous""#)
        #expect(try fires(#"ka.user.name = "system:anonymous""#, escapedUser))
        #expect(try fires(#"ka.user.name in ("system:anonymous", bob)"#, escapedUser))
        #expect(try fires(#"ka.user.name in (a, b, "system:anonymous", c)"#, escapedUser))
        #expect(try fires(#"ka.user.name startswith "system:""#, escapedUser))
        #expect(try fires(#"ka.user.name endswith "tem:anonymous""#, escapedUser))
        #expect(try fires(#"ka.user.name contains "em:an""#, escapedUser))
        #expect(try !fires(#"ka.user.name contains "\\u0074""#, escapedUser))
        #expect(try !fires(#"ka.user.name != "system:anonymous""#, escapedUser))
        // An escaped quote and slash: the text holds `"` and `/`, not the backslashes.
        let quoted = line(user: #""a\"b\/c""#)
        #expect(try fires(#"ka.user.name = "a\"b/c""#, quoted))
        #expect(try fires(#"ka.user.name contains "\"b/""#, quoted))
        // The verb index reads the verb too: an escaped `get` still reaches the rules that require `get`.
        #expect(try fires("ka.verb = get and ka.target.resource = pods", line(verb: #""g\u0065t""#)))
        #expect(try fires(
            "ka.verb in (get, list) and ka.target.resource in (pods, secrets)", line(verb: #""g\u0065t""#)))
        // `ka.uri.path` of an escaped URI is cut at the decoded `?` (`\u003f`).
        let escapedURI = line(uri: #""/api/v1/pods\u003fwatch=true""#)
        #expect(try fires(#"ka.uri.path = "/api/v1/pods""#, escapedURI))
        #expect(try fires(#"ka.uri contains "?watch""#, escapedURI))
    }

    @Test("non-ASCII text compares byte-wise, like every other operator: canonically equivalent spellings differ")
    func nonASCII() throws {
        #expect(try fires(#"ka.user.name = "zoë""#, line(user: #""zoë""#)))
        #expect(try fires(#"ka.user.name startswith "zo""#, line(user: #""zoë""#)))
        #expect(try fires(#"ka.user.name in (a, b, "zoë")"#, line(user: #""zoë""#)))
        #expect(try fires(#"ka.user.name in (a, "zoë")"#, line(user: #""zoë""#)))
        // U+212A KELVIN SIGN is canonically equivalent to "K", but other bytes: no operator equates them, whether
        // the value is read in place (plain ASCII "K") or as a String (the escaped or non-ASCII spelling).
        #expect(try !fires(#"ka.user.name = "K""#, line(user: "\"\u{212A}\"")))
        #expect(try !fires("ka.user.name = \"\u{212A}\"", line(user: #""K""#)))
        #expect(try !fires("ka.user.name in (\"\u{212A}\", x)", line(user: #""K""#)))
        #expect(try !fires("ka.user.name in (\"\u{212A}\", x, y)", line(user: #""K""#)))
        #expect(try fires("ka.user.name != \"\u{212A}\"", line(user: #""K""#)))
        #expect(try fires("ka.user.name = \"\u{212A}\"", line(user: "\"\u{212A}\"")))
        // "é" precomposed on one side, decomposed (e + U+0301) on the other.
        #expect(try !fires("ka.user.name = \"e\u{301}\"", line(user: "\"\u{E9}\"")))
        #expect(try !fires("ka.user.name = \"\u{E9}\"", line(user: #""e\u0301""#)))
        #expect(try fires("ka.user.name = \"e\u{301}\"", line(user: #""e\u0301""#)))
    }

    @Test("empty values are present; missing and null fields make every comparison false")
    func emptyAndMissing() throws {
        let empty = line(namespace: #""""#)
        #expect(try fires("ka.target.namespace exists", empty))
        #expect(try fires(#"ka.target.namespace = """#, empty))
        #expect(try fires(#"ka.target.namespace in (a, "", b)"#, empty))
        #expect(try fires(#"ka.target.namespace startswith """#, empty))
        #expect(try fires(#"ka.target.namespace contains """#, empty))
        #expect(try !fires(#"ka.target.namespace startswith "d""#, empty))
        #expect(try !fires(#"ka.target.namespace endswith "d""#, empty))
        #expect(try fires(#"ka.target.namespace != "default""#, empty))
        for document in [line(namespace: nil), line(namespace: "null"), line(namespace: "{}"), line(namespace: "[1]")] {
            #expect(try !fires("ka.target.namespace exists", document))
            #expect(try !fires(#"ka.target.namespace = """#, document))
            #expect(try !fires(#"ka.target.namespace != "default""#, document))
            #expect(try !fires(#"ka.target.namespace in (a, b, c)"#, document))
            #expect(try !fires(#"ka.target.namespace startswith """#, document))
            #expect(try !fires(#"ka.target.namespace regex ".*""#, document))
            #expect(try fires(#"not ka.target.namespace = "default""#, document))
        }
        // A number or a bool where a string is expected reads as its text.
        #expect(try fires(#"ka.target.namespace = "42""#, line(namespace: "42")))
        #expect(try fires(#"ka.target.namespace = "true""#, line(namespace: "true")))
        #expect(try fires(#"ka.target.namespace startswith "4""#, line(namespace: "42")))
    }

    @Test("prefix, suffix and substring tests at the edges of the value")
    func prefixAndContains() throws {
        let document = line(user: #""system:node:n1""#)
        #expect(try fires(#"ka.user.name startswith "system:node:n1""#, document))
        #expect(try !fires(#"ka.user.name startswith "system:node:n12""#, document))
        #expect(try fires(#"ka.user.name endswith "system:node:n1""#, document))
        #expect(try !fires(#"ka.user.name endswith "xsystem:node:n1""#, document))
        #expect(try fires(#"ka.user.name contains "n1""#, document))
        #expect(try fires(#"ka.user.name contains "system:node:n1""#, document))
        #expect(try !fires(#"ka.user.name contains "system:node:n1:""#, document))
        #expect(try fires(#"ka.user.name startswith (kube, "system:")"#, document))
        #expect(try fires(#"ka.user.name endswith (x, ":n1")"#, document))
        #expect(try fires(#"ka.user.name contains (zz, "node")"#, document))
        #expect(try fires(#"ka.user.name icontains "NODE:N""#, document))
        #expect(try !fires(#"ka.user.name icontains "nodes""#, document))
        #expect(try fires(#"ka.user.name glob "system:*""#, document))
        #expect(try !fires(#"ka.user.name glob "system""#, document))
        #expect(try fires(#"ka.user.name regex "^system:[a-z]+:n[0-9]$""#, document))
        #expect(try !fires(#"ka.user.name regex "^node""#, document))
    }

    @Test("ka.uri.path is the request URI up to its first question mark")
    func uriPath() throws {
        #expect(try fires(#"ka.uri.path = "/api/v1/pods""#, line(uri: #""/api/v1/pods?watch=1&x=?""#)))
        #expect(try fires(#"ka.uri.path = "/api/v1/pods""#, line(uri: #""/api/v1/pods""#)))
        #expect(try fires(#"ka.uri.path = """#, line(uri: #""?watch=1""#)))
        #expect(try fires(#"ka.uri.path = "/healthz""#, line(uri: #""/healthz?""#)))
        #expect(try fires("ka.uri.path in (/healthz, /livez, /readyz)", line(uri: #""/livez?verbose""#)))
        #expect(try fires(#"ka.uri.path regex "^/api/v1/namespaces/[a-z0-9][a-z0-9.-]*/secrets$""#,
                          line(uri: #""/api/v1/namespaces/kube-system/secrets?limit=500""#)))
        #expect(try !fires(#"ka.uri.path regex "^/api/v1/namespaces/[a-z0-9][a-z0-9.-]*/secrets$""#,
                           line(uri: #""/api/v1/namespaces/kube-system/secrets/x?limit=500""#)))
        #expect(try !fires("ka.uri.path exists", line(uri: "null")))
        #expect(try !fires(#"ka.uri.path != "/""#, line(uri: "null")))
    }

    @Test("shipper layouts: a field prefix, dedotted annotations and stringified objects read the same values")
    func shipperLayouts() throws {
        let agent = #"{"@timestamp":"2024-01-01T00:00:00Z","kubernetes":{"audit":{"auditID":"a1","verb":"get","#
            + #""requestURI":"/api/v1/pods?x=1","user":{"username":"system:anonymous"},"#
            + #""objectRef":{"resource":"pods","namespace":"default"},"#
            + #""annotations":{"authorization_k8s_io/decision":"allow"}}}}"#
        #expect(try fires("ka.auth.decision = allow", agent, mapping: .elasticAgent))
        #expect(try !fires("ka.auth.decision != allow", agent, mapping: .elasticAgent))
        #expect(try fires(#"ka.user.name = "system:anonymous" and ka.uri.path = "/api/v1/pods""#, agent,
                          mapping: .elasticAgent))
        #expect(try fires("ka.verb = get and ka.target.resource = pods", agent, mapping: .elasticAgent))
        let fluentd = #"{"verb":"create","requestURI":"/api/v1/namespaces/default/services","#
            + #""user":{"username":"bob"},"objectRef":{"resource":"services","namespace":"default"},"#
            + #""requestObject":"{\"spec\":{\"type\":\"NodePort\"}}","stageTimestamp":"2024-01-01T00:00:00Z"}"#
        #expect(try fires("ka.req.service.type = NodePort", fluentd, mapping: .fluentd))
        #expect(try fires("ka.req.service.type in (NodePort, LoadBalancer, x)", fluentd, mapping: .fluentd))
        #expect(try !fires("ka.req.service.type startswith Cluster", fluentd, mapping: .fluentd))
        #expect(try fires("ka.verb = create and ka.target.resource = services", fluentd, mapping: .fluentd))
    }

    @Test("alert output renders the same text from bytes and from Strings")
    func rendering() throws {
        let yaml = """
            - rule:
                id: T1
                name: Test rule
                severity: high
                events: [audit]
                condition: ka.user.name startswith "sys" and ka.uri.path = "/api/v1/pods"
                output: "%ka.user.name did %ka.verb on %ka.uri.path"
            """
        var evaluator = RuleEvaluator(ruleSet: try RuleSet.load(yaml: yaml, fileName: "test.yaml"))
        let alerts = evaluator.evaluate(try AuditMapping.raw.event(
            fromJSON: line(user: #""sys\u0074em:x""#, uri: #""/api/v1/pods?a=b""#), sourceID: "file:1"))
        #expect(alerts.map(\.message) == ["system:x did get on /api/v1/pods"])
    }
}
