#if canImport(Glibc)
import Glibc
#endif
import EventModel
import RuleEngine
import Testing

@Suite struct ListsAndMacrosTests {
    let base = """
        - list: shell_binaries
          items: [bash, sh, zsh]
        - list: all_shells
          items: [shell_binaries, fish]
        - macro:
            name: spawned_shell
            condition: proc.name in (shell_binaries)
        - macro: container
          condition: container.id exists
        - rule:
            id: R1
            name: Shell in container
            severity: medium
            events: [exec]
            condition: spawned_shell and container
            output: "shell %proc.name in %container.name"
        - rule:
            id: R2
            name: Any shell
            severity: low
            events: [exec]
            condition: proc.name in all_shells
            output: "shell %proc.name"
        """

    @Test func listsAndMacrosExpand() throws {
        let set = try RuleSet.load(yaml: base, fileName: "base.yaml")
        var evaluator = RuleEvaluator(ruleSet: set)
        #expect(evaluator.evaluate(execEvent("/bin/bash")).map(\.ruleID) == ["R1", "R2"])
        #expect(evaluator.evaluate(execEvent("/bin/bash", container: nil)).map(\.ruleID) == ["R2"])
        #expect(evaluator.evaluate(execEvent("/usr/bin/fish")).map(\.ruleID) == ["R2"])
        #expect(evaluator.evaluate(execEvent("/usr/bin/python")).isEmpty)
        #expect(set.rules.map(\.id) == ["R1", "R2"])
    }

    @Test func appendAndOverrideFromALaterFile() throws {
        let user = """
            - list: shell_binaries
              items: [ksh]
              append: true
            - macro: container
              condition: and k8s.ns.name != kube-system
              override:
                condition: append
            - rule:
                id: R2
                enabled: false
            - rule:
                id: R1
                severity: critical
                tags: [custom]
                override:
                  severity: replace
                  tags: append
            """
        let set = try RuleSet.load(sources: [("base.yaml", base), ("user.yaml", user)])
        var evaluator = RuleEvaluator(ruleSet: set)
        let alerts = evaluator.evaluate(execEvent("/bin/ksh"))
        #expect(alerts.map(\.ruleID) == ["R1"])
        #expect(alerts.first?.severity == .critical)
        #expect(alerts.first?.tags == ["custom"])
        #expect(set.rule(id: "R2")?.enabled == false)
        var system = podContainer
        system.namespace = "kube-system"
        #expect(evaluator.evaluate(execEvent("/bin/ksh", container: system)).isEmpty)
    }

    @Test func overrideReplacesList() throws {
        let user = """
            - list: shell_binaries
              items: [tcsh]
              override:
                items: replace
            """
        let set = try RuleSet.load(sources: [("base.yaml", base), ("user.yaml", user)])
        var evaluator = RuleEvaluator(ruleSet: set)
        #expect(evaluator.evaluate(execEvent("/bin/bash")).isEmpty)
        #expect(evaluator.evaluate(execEvent("/bin/tcsh")).map(\.ruleID) == ["R1", "R2"])
    }

    @Test func conditionAppendOnRule() throws {
        let user = """
            - rule:
                id: R2
                condition: and proc.pid != 100
                append: true
            """
        let set = try RuleSet.load(sources: [("base.yaml", base), ("user.yaml", user)])
        var evaluator = RuleEvaluator(ruleSet: set)
        #expect(evaluator.evaluate(execEvent("/bin/bash", container: nil)).isEmpty)
        #expect(evaluator.evaluate(execEvent("/bin/bash", pid: 5, container: nil)).map(\.ruleID) == ["R2"])
        #expect(set.rule(id: "R2")?.condition == "(proc.name in all_shells) and proc.pid != 100")
    }

    @Test func multipleDocumentsInOneText() throws {
        let yaml = """
            - list: l_a
              items: [a]
            ---
            - rule:
                id: X
                name: X
                severity: info
                events: [exec]
                condition: proc.name in l_a
                output: x
            """
        let set = try RuleSet.load(yaml: yaml, fileName: "multi.yaml")
        var evaluator = RuleEvaluator(ruleSet: set)
        #expect(evaluator.evaluate(execEvent("/bin/a")).count == 1)
    }

    @Test func falcoFlatFormForRules() throws {
        let yaml = """
            - rule: Flat rule
              id: F1
              description: flat form
              severity: low
              events: exec
              condition: proc.name = ls
              output: ls ran
            """
        let set = try RuleSet.load(yaml: yaml, fileName: "flat.yaml")
        #expect(set.rules.first?.name == "Flat rule")
        #expect(set.rules.first?.description == "flat form")
        var evaluator = RuleEvaluator(ruleSet: set)
        #expect(evaluator.evaluate(execEvent("/bin/ls")).count == 1)
    }

    @Test func loadFromFiles() throws {
        let path = "/tmp/patrol-rules-test-\(UInt32.random(in: 0...UInt32.max)).yaml"
        let handle = fopen(path, "w")!
        fputs(base, handle)
        fclose(handle)
        defer { remove(path) }
        let set = try RuleSet.load(files: [path])
        #expect(set.rules.count == 2)
        #expect(throws: RuleEngineError.self) { try RuleSet.load(files: ["/nonexistent/rules.yaml"]) }
    }
}

@Suite struct ExceptionTests {
    let yaml = """
        - rule:
            id: W1
            name: Write below etc
            severity: high
            events: [open]
            condition: fd.name startswith /etc/ and fd.write = true
            output: "write %fd.name by %proc.name"
            exceptions:
              - name: known_writers
                fields: [proc.name, fd.directory]
                comps: [=, startswith]
                values:
                  - [cat, /etc/ssl]
                  - [apt, /etc/apt]
              - name: known_procs
                fields: proc.name
                values: [dpkg, rpm]
              - name: listed_files
                fields: [fd.name]
                comps: [in]
                values:
                  - [[/etc/hosts, /etc/resolv.conf]]
        """

    @Test func exceptionRowsSuppress() throws {
        let set = try RuleSet.load(yaml: yaml, fileName: "exc.yaml")
        var evaluator = RuleEvaluator(ruleSet: set)
        #expect(evaluator.evaluate(openEvent("/etc/passwd", flags: 1)).count == 1)
        #expect(evaluator.evaluate(openEvent("/etc/passwd", flags: 0)).isEmpty)
        // cat under /etc/ssl is allowed, cat under /etc/apt is not (rows are matched whole).
        #expect(evaluator.evaluate(openEvent("/etc/ssl/certs/x.pem", flags: 1)).isEmpty)
        #expect(evaluator.evaluate(openEvent("/etc/apt/sources.list", flags: 1)).count == 1)
        #expect(evaluator.evaluate(openEvent("/etc/apt/sources.list", flags: 1, exe: "/usr/bin/apt")).isEmpty)
        #expect(evaluator.evaluate(openEvent("/etc/passwd", flags: 1, exe: "/usr/bin/dpkg")).isEmpty)
        #expect(evaluator.evaluate(openEvent("/etc/hosts", flags: 1)).isEmpty)
    }

    @Test func exceptionValuesAppendFromUserFile() throws {
        let user = """
            - rule:
                id: W1
                exceptions:
                  - name: known_writers
                    values:
                      - [cat, /etc/apt]
                  - name: by_container
                    fields: [container.name]
                    values: [[redis]]
                override:
                  exceptions: append
            """
        let set = try RuleSet.load(sources: [("exc.yaml", yaml), ("user.yaml", user)])
        var evaluator = RuleEvaluator(ruleSet: set)
        #expect(evaluator.evaluate(openEvent("/etc/apt/sources.list", flags: 1)).isEmpty)
        var redis = podContainer
        redis.containerName = "redis"
        #expect(evaluator.evaluate(openEvent("/etc/passwd", flags: 1, container: redis)).isEmpty)
        #expect(evaluator.evaluate(openEvent("/etc/passwd", flags: 1)).count == 1)
        #expect(set.rule(id: "W1")?.exceptions.count == 4)
    }

    @Test func exceptionFieldsAreTypeChecked() {
        let bad = """
            - rule:
                id: W2
                name: w
                severity: low
                events: [open]
                condition: fd.name = /x
                output: x
                exceptions:
                  - name: by_pid
                    fields: [proc.pid]
                    values: [[notanumber]]
            """
        let error = loadError(bad, file: "exc-bad.yaml")
        #expect(error?.code == .typeMismatch)
        #expect(error?.message.contains("exc-bad.yaml:9") == true)
    }
}

@Suite struct SequenceTests {
    let yaml = """
        - list: ssh_files
          items: [/root/.ssh/, /etc/ssh/]
        - rule:
            id: R1003
            name: Malicious SSH connection
            severity: high
            parameters:
              allowedPorts: [22]
            output: "ssh files then connect to %net.daddr:%net.dport by %proc.name"
            sequence:
              by: proc.pid
              within: 2s
              steps:
                - events: [open]
                  condition: fd.name startswith (ssh_files)
                - events: [connect]
                  condition: net.proto = tcp and net.dport not in param.allowedPorts
        """

    func evaluator() throws -> RuleEvaluator {
        RuleEvaluator(ruleSet: try RuleSet.load(yaml: yaml, fileName: "seq.yaml"))
    }

    @Test func firesWithinWindowSamePid() throws {
        var evaluator = try evaluator()
        #expect(evaluator.evaluate(openEvent("/root/.ssh/id_rsa", pid: 42, time: 1_000_000_000)).isEmpty)
        #expect(evaluator.pendingSequences == 1)
        let alerts = evaluator.evaluate(connectEvent("203.0.113.1", 2222, pid: 42, time: 2_500_000_000))
        #expect(alerts.map(\.ruleID) == ["R1003"])
        #expect(alerts.first?.message == "ssh files then connect to 203.0.113.1:2222 by ssh")
        #expect(evaluator.pendingSequences == 0)
        // Completed: a second connect needs a new first step.
        #expect(evaluator.evaluate(connectEvent("203.0.113.1", 2222, pid: 42, time: 2_600_000_000)).isEmpty)
    }

    @Test func outsideWindowDoesNotFire() throws {
        var evaluator = try evaluator()
        _ = evaluator.evaluate(openEvent("/etc/ssh/ssh_config", pid: 42, time: 1_000_000_000))
        #expect(evaluator.evaluate(connectEvent("203.0.113.1", 2222, pid: 42, time: 3_500_000_000)).isEmpty)
    }

    @Test func differentPidDoesNotFire() throws {
        var evaluator = try evaluator()
        _ = evaluator.evaluate(openEvent("/root/.ssh/id_rsa", pid: 42, time: 1_000_000_000))
        #expect(evaluator.evaluate(connectEvent("203.0.113.1", 2222, pid: 43, time: 1_100_000_000)).isEmpty)
        #expect(evaluator.evaluate(connectEvent("203.0.113.1", 2222, pid: 42, time: 1_200_000_000)).count == 1)
    }

    @Test func differentContainerDoesNotFire() throws {
        var evaluator = try evaluator()
        var other = podContainer
        other.containerID = "other"
        _ = evaluator.evaluate(openEvent("/root/.ssh/id_rsa", pid: 42, time: 1_000_000_000))
        #expect(evaluator.evaluate(connectEvent("203.0.113.1", 2222, pid: 42, time: 1_100_000_000, container: other)).isEmpty)
    }

    @Test func stepConditionsAndParameters() throws {
        var evaluator = try evaluator()
        _ = evaluator.evaluate(openEvent("/tmp/x", pid: 42, time: 1_000_000_000))
        #expect(evaluator.evaluate(connectEvent("203.0.113.1", 2222, pid: 42, time: 1_100_000_000)).isEmpty)
        _ = evaluator.evaluate(openEvent("/root/.ssh/id_rsa", pid: 42, time: 1_000_000_000))
        #expect(evaluator.evaluate(connectEvent("203.0.113.1", 22, pid: 42, time: 1_100_000_000)).isEmpty)
        let overridden = try RuleSet.load(yaml: yaml, fileName: "seq.yaml", parameters: ["R1003": ["allowedPorts": ["22", "2222"]]])
        var second = RuleEvaluator(ruleSet: overridden)
        _ = second.evaluate(openEvent("/root/.ssh/id_rsa", pid: 42, time: 1_000_000_000))
        #expect(second.evaluate(connectEvent("203.0.113.1", 2222, pid: 42, time: 1_100_000_000)).isEmpty)
        #expect(second.evaluate(connectEvent("203.0.113.1", 443, pid: 42, time: 1_200_000_000)).count == 1)
    }

    @Test func stateTableIsBounded() throws {
        var evaluator = RuleEvaluator(ruleSet: try RuleSet.load(yaml: yaml, fileName: "seq.yaml"), maxSequenceStates: 4)
        for pid in 0..<10 { _ = evaluator.evaluate(openEvent("/root/.ssh/id_rsa", pid: Int32(pid), time: 1_000_000_000 + UInt64(pid))) }
        #expect(evaluator.pendingSequences == 4)
        #expect(evaluator.sequenceEvictions == 6)
        // Expired entries are swept before anything is evicted.
        _ = evaluator.evaluate(openEvent("/root/.ssh/id_rsa", pid: 99, time: 10_000_000_000))
        #expect(evaluator.pendingSequences == 1)
        #expect(evaluator.sequenceEvictions == 6)
        // The newest survive: pid 9 is still pending.
        var fresh = RuleEvaluator(ruleSet: try RuleSet.load(yaml: yaml, fileName: "seq.yaml"), maxSequenceStates: 2)
        for pid in 0..<3 { _ = fresh.evaluate(openEvent("/root/.ssh/id_rsa", pid: Int32(pid), time: 1_000_000_000 + UInt64(pid))) }
        #expect(fresh.evaluate(connectEvent("1.1.1.1", 443, pid: 2, time: 1_500_000_000)).count == 1)
        #expect(fresh.evaluate(connectEvent("1.1.1.1", 443, pid: 0, time: 1_500_000_000)).isEmpty)
    }

    @Test func sequenceRuleMetadata() throws {
        let set = try RuleSet.load(yaml: yaml, fileName: "seq.yaml")
        let rule = try #require(set.rules.first)
        #expect(rule.events == [.open, .connect])
        #expect(rule.sequence?.withinNanoseconds == 2_000_000_000)
        #expect(rule.sequence?.by == ["proc.pid"])
        #expect(rule.parameters["allowedPorts"] == .list(["22"]))
    }
}

@Suite struct IndexingAndAlertTests {
    @Test func ruleForOpenNeverSeesExec() throws {
        let yaml = """
            - rule:
                id: O1
                name: open anything
                severity: low
                events: [open]
                condition: evt.count >= 0
                output: o
            - rule:
                id: E1
                name: exec anything
                severity: low
                events: [exec, exit]
                condition: evt.count >= 0
                output: e
            """
        let set = try RuleSet.load(yaml: yaml, fileName: "kinds.yaml")
        var evaluator = RuleEvaluator(ruleSet: set)
        #expect(evaluator.evaluate(execEvent("/bin/ls")).map(\.ruleID) == ["E1"])
        #expect(evaluator.evaluate(openEvent("/etc/passwd")).map(\.ruleID) == ["O1"])
        #expect(evaluator.evaluate(connectEvent("1.1.1.1", 1)).isEmpty)
    }

    @Test func disabledRulesDoNotRunAndEnablingFilters() throws {
        let yaml = """
            - rule: {id: A, name: a, severity: low, events: [exec], condition: proc.name = ls, output: a, enabled: false}
            - rule: {id: B, name: b, severity: low, events: [exec], condition: proc.name = ls, output: b, tags: [t1]}
            """
        let set = try RuleSet.load(yaml: yaml, fileName: "en.yaml")
        var evaluator = RuleEvaluator(ruleSet: set)
        #expect(evaluator.evaluate(execEvent("/bin/ls")).map(\.ruleID) == ["B"])
        let onlyA = set.enabling { $0.id == "A" }
        var second = RuleEvaluator(ruleSet: onlyA)
        #expect(second.evaluate(execEvent("/bin/ls")).map(\.ruleID) == ["A"])
    }

    @Test func alertContents() throws {
        let yaml = """
            - rule:
                id: R1000
                name: Exec from malicious source
                description: d
                severity: critical
                tags: [mitre_execution]
                events: [exec]
                condition: proc.exe startswith /dev/shm/
                output: "Exec of %proc.exe (%proc.cmdline) in %k8s.ns.name/%k8s.pod.name, 100%% sure. %fd.name"
                fix: Remove the binary.
            """
        let error = loadError(yaml, file: "out.yaml")
        #expect(error?.code == .fieldNotApplicable)
        #expect(error?.message.contains("out.yaml:9") == true)
        let fixed = yaml.replacing(" %fd.name", with: "")
        let set = try RuleSet.load(yaml: fixed, fileName: "out.yaml")
        var evaluator = RuleEvaluator(ruleSet: set)
        let event = execEvent("/dev/shm/x", argv: ["x", "-a"])
        let alert = try #require(evaluator.evaluate(event).first)
        #expect(alert.message == "Exec of /dev/shm/x (x -a) in shop/web-1, 100% sure.")
        #expect(alert.fix == "Remove the binary.")
        #expect(alert.severity == .critical)
        #expect(alert.tags == ["mitre_execution"])
        #expect(alert.ruleName == "Exec from malicious source")
        #expect(alert.fields["proc.exe"] == "/dev/shm/x")
        #expect(alert.fields["k8s.ns.name"] == "shop")
        #expect(alert.eventKind == .exec)
        #expect(alert.container == podContainer)
        #expect(alert.id.count == 16)
        // Same rule, workload and exec path: same id; a different path or pod: different id.
        let again = try #require(evaluator.evaluate(execEvent("/dev/shm/x", pid: 9, time: 99)).first)
        #expect(again.id == alert.id)
        let otherPath = try #require(evaluator.evaluate(execEvent("/dev/shm/y")).first)
        #expect(otherPath.id != alert.id)
        var otherPod = podContainer
        otherPod.podName = "web-2"
        let otherWorkload = try #require(evaluator.evaluate(execEvent("/dev/shm/x", container: otherPod)).first)
        #expect(otherWorkload.id != alert.id)
        let host = try #require(evaluator.evaluate(execEvent("/dev/shm/x", container: nil)).first)
        #expect(host.message.contains("<NA>/<NA>"))
    }

    @Test func parametersWithDefaultsAndOverrides() throws {
        let yaml = """
            - rule:
                id: M1
                name: Miner ports
                severity: high
                events: [connect]
                parameters:
                  ports: [3333, 45700]
                  minPort: 1024
                condition: net.dport in param.ports and net.dport >= param.minPort
                output: "miner port %net.dport"
            """
        let set = try RuleSet.load(yaml: yaml, fileName: "p.yaml")
        var evaluator = RuleEvaluator(ruleSet: set)
        #expect(evaluator.evaluate(connectEvent("1.1.1.1", 3333)).count == 1)
        #expect(evaluator.evaluate(connectEvent("1.1.1.1", 4444)).isEmpty)
        let overridden = try set.withParameters(["M1": ["ports": ["4444"]]])
        #expect(overridden.rules[0].parameters["ports"] == .list(["4444"]))
        var second = RuleEvaluator(ruleSet: overridden)
        #expect(second.evaluate(connectEvent("1.1.1.1", 4444)).count == 1)
        #expect(second.evaluate(connectEvent("1.1.1.1", 3333)).isEmpty)
        #expect(ParameterValue(JSONValue.array([.number(22), .string("80")])) == .list(["22", "80"]))
        // Overrides are type-checked like literals, and must name a declared parameter.
        #expect(throws: RuleEngineError.self) { try set.withParameters(["M1": ["ports": ["http"]]]) }
        #expect(throws: RuleEngineError.self) { try set.withParameters(["M1": ["prots": ["1"]]]) }
        #expect(throws: RuleEngineError.self) { try set.withParameters(["NOPE": ["ports": ["1"]]]) }
    }

    @Test func fieldCatalogue() {
        let names = Set(FieldInfo.all.map(\.name))
        for name in ["proc.exe", "proc.args", "fd.name", "net.dport", "dns.name", "ka.verb", "ka.uri.param", "jevt.value"] {
            #expect(names.contains(name), "\(name)")
        }
        #expect(FieldInfo.all.first { $0.name == "proc.args" }?.type == .strings)
    }
}

@Suite struct MoreSequenceTests {
    @Test func threeStepsInOrderOnly() throws {
        let yaml = """
            - rule:
                id: S3
                name: memfd then exec then connect
                severity: critical
                output: "chain ended with %evt.kind"
                sequence:
                  by: [proc.pid]
                  within: 500ms
                  steps:
                    - {events: [memfd], condition: memfd.name exists}
                    - {events: [exec], condition: 'proc.exe startswith "/memfd:"'}
                    - {events: [connect], condition: net.dport > 0}
            """
        let set = try RuleSet.load(yaml: yaml, fileName: "s3.yaml")
        var evaluator = RuleEvaluator(ruleSet: set)
        let memfd = Event(time: 1_000, node: "node-a", process: ProcessInfo(pid: 5), container: podContainer, payload: .memfd(MemfdCreate(name: "x")))
        // Out of order: exec before memfd does nothing.
        #expect(evaluator.evaluate(execEvent("/memfd:x", pid: 5, time: 500)).isEmpty)
        #expect(evaluator.evaluate(memfd).isEmpty)
        #expect(evaluator.evaluate(connectEvent("1.1.1.1", 80, pid: 5, time: 2_000)).isEmpty)  // skipped step 2
        #expect(evaluator.evaluate(execEvent("/memfd:x", pid: 5, time: 3_000)).isEmpty)
        let alerts = evaluator.evaluate(connectEvent("1.1.1.1", 80, pid: 5, time: 4_000))
        #expect(alerts.map(\.message) == ["chain ended with connect"])
    }

    @Test func exceptionsApplyToTheFinalEvent() throws {
        let yaml = """
            - rule:
                id: S2
                name: open then connect
                severity: low
                output: x
                exceptions:
                  - name: dns
                    fields: [net.dport]
                    values: [[53]]
                sequence:
                  by: proc.pid
                  within: 1s
                  steps:
                    - {events: [open], condition: fd.name = /etc/passwd}
                    - {events: [connect], condition: net.dport > 0}
            """
        var evaluator = RuleEvaluator(ruleSet: try RuleSet.load(yaml: yaml, fileName: "s2.yaml"))
        _ = evaluator.evaluate(openEvent("/etc/passwd", pid: 1, time: 10))
        #expect(evaluator.evaluate(connectEvent("1.1.1.1", 53, pid: 1, time: 20)).isEmpty)
        _ = evaluator.evaluate(openEvent("/etc/passwd", pid: 1, time: 30))
        #expect(evaluator.evaluate(connectEvent("1.1.1.1", 443, pid: 1, time: 40)).count == 1)
    }
}
