import EventModel
import RuleEngine
import Testing

/// The shipped anomaly rules (`rules/runtime-anomalies.yaml`) against events with and without a profile
/// judgement: each fires only for behaviour a final profile lacks, and its message carries the allow command.
@Suite struct AnomalyRulesTests {
    let ruleSet: RuleSet

    init() throws {
        ruleSet = try RuleSet.load(files: ["rules/runtime-signatures.yaml", "rules/runtime-anomalies.yaml"])
    }

    func judgement(_ state: String = "final", unexpected: [String] = [], allow: [String] = []) -> ProfileJudgement {
        ProfileJudgement(state: state, workload: "shop/Deployment/web", unexpected: unexpected, allowCommands: allow)
    }

    func anomalyIDs(_ event: Event, _ profile: ProfileJudgement?) -> [String] {
        var evaluator = RuleEvaluator(ruleSet: ruleSet)
        return evaluator.evaluate(event, profile: profile).map(\.ruleID).filter { $0.hasPrefix("R0") }.sorted()
    }

    @Test("Each kind of unexpected behaviour raises its rule, with the allow command in the message")
    func unexpectedBehaviour() throws {
        let allow = "patrolctl profiles allow shop/Deployment/web --container nginx --exec /usr/bin/kubectl --arg kubectl"
        var evaluator = RuleEvaluator(ruleSet: ruleSet)
        let alerts = evaluator.evaluate(
            execEvent("/usr/bin/kubectl", argv: ["kubectl"]),
            profile: judgement(unexpected: ["exec /usr/bin/kubectl"], allow: [allow]))
        let ids = alerts.map(\.ruleID).filter { $0.hasPrefix("R0") }.sorted()
        #expect(ids == ["R0001", "R0007"])
        let r0001 = try #require(alerts.first { $0.ruleID == "R0001" })
        #expect(r0001.message.contains("shop/Deployment/web"))
        #expect(r0001.message.hasSuffix(allow))

        let unexpected = judgement(unexpected: ["something new"])
        #expect(anomalyIDs(openEvent("/etc/nginx/secret.conf"), unexpected) == ["R0002"])
        #expect(anomalyIDs(openEvent("/var/run/secrets/kubernetes.io/serviceaccount/token"), unexpected) == ["R0006"],
                "R0002 ignores the secrets directories by default; R0006 is the token rule")
        #expect(anomalyIDs(openEvent("/proc/1/status"), unexpected) == [], "R0002's ignorePrefixes")
        #expect(anomalyIDs(dnsEvent("pool.example."), unexpected) == ["R0005"])
        #expect(anomalyIDs(connectEvent("203.0.113.9", 8443), unexpected) == ["R0008"])
        let syscalls = Event(
            time: 1, node: "n", process: ProcessInfo(pid: 1), container: podContainer,
            payload: .syscalls(SyscallSet(syscalls: [272])))
        #expect(anomalyIDs(syscalls, unexpected) == ["R0003"])
        let capability = Event(
            time: 1, node: "n", process: ProcessInfo(pid: 1), container: podContainer,
            payload: .capability(CapabilityUse(capability: 21, syscall: 165)))
        #expect(anomalyIDs(capability, unexpected) == ["R0004"])
    }

    @Test("Nothing fires while learning, for a failed profile, for known behaviour or without a profile")
    func silentCases() {
        let event = execEvent("/bin/sh", argv: ["sh"])
        #expect(anomalyIDs(event, nil) == [])
        #expect(anomalyIDs(event, judgement("learning", unexpected: ["exec /bin/sh"])) == [])
        // A container first seen already running records like learning; what it lacks is not known yet.
        #expect(anomalyIDs(event, judgement("partial", unexpected: ["exec /bin/sh"])) == [])
        #expect(anomalyIDs(event, judgement("failed", unexpected: ["exec /bin/sh"])) == [])
        #expect(anomalyIDs(event, judgement("final")) == [])
    }

    @Test("R0002's ignoreMounts skips opens on the container's volumes only when set, as KubeCop's did")
    func ignoreMounts() throws {
        let unexpected = judgement(unexpected: ["open /data/db/journal"])
        var onVolume = openEvent("/data/db/journal", flags: 2)
        onVolume.payload = .open(FileOpen(path: "/data/db/journal", flags: 2, result: 3, fromVolume: true))
        let inImage = openEvent("/etc/app.conf", flags: 2)
        // KubeCop's default: volumes are judged like any other path.
        #expect(anomalyIDs(onVolume, unexpected) == ["R0002"])
        #expect(anomalyIDs(inImage, unexpected) == ["R0002"])

        for value: ParameterValue in [true, ParameterValue(.bool(true))] {
            let ignoring = try ruleSet.withParameters(["R0002": ["ignoreMounts": value]])
            var evaluator = RuleEvaluator(ruleSet: ignoring)
            #expect(evaluator.evaluate(onVolume, profile: unexpected).filter { $0.ruleID == "R0002" }.isEmpty,
                    "ignoreMounts \(value): the open is on a volume")
            #expect(evaluator.evaluate(inImage, profile: unexpected).map(\.ruleID).contains("R0002"),
                    "ignoreMounts \(value): the open is not on a volume")
        }
        let explicitFalse = try ruleSet.withParameters(["R0002": ["ignoreMounts": false]])
        var evaluator = RuleEvaluator(ruleSet: explicitFalse)
        #expect(evaluator.evaluate(onVolume, profile: unexpected).map(\.ruleID).contains("R0002"))
        // Learned opens on a volume stay silent either way.
        #expect(anomalyIDs(onVolume, judgement()) == [])
    }
}
