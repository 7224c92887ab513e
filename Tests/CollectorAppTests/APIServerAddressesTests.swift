import EventModel
import RuleEngine
import Testing

@testable import CollectorApp

/// R0007's "connection to the API server" needs the API server's address; the collector takes it once from
/// `KUBERNETES_SERVICE_HOST` at start-up (KubeCop resolved it for every event) and appends it to the rules' list.
@Suite struct APIServerAddressesTests {
    static let files = ["rules/runtime-signatures.yaml", "rules/runtime-anomalies.yaml"]

    @Test func addressComesFromTheServiceEnvironment() {
        let inCluster = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]
        #expect(APIServerAddresses.fromEnvironment(inCluster) == ["10.96.0.1"])
        #expect(APIServerAddresses.fromEnvironment(["KUBERNETES_SERVICE_HOST": "fd00:0:0:0::1"]) == ["fd00::1"],
                "IPv6 as the sensor writes it")
        #expect(APIServerAddresses.fromEnvironment(["KUBERNETES_SERVICE_HOST": "[fd00::1]"]) == ["fd00::1"])
        #expect(APIServerAddresses.fromEnvironment([:]) == [], "outside a cluster")
        #expect(APIServerAddresses.fromEnvironment(["KUBERNETES_SERVICE_HOST": "kubernetes.default.svc"]) == [],
                "a name is not resolved (and never per event)")
    }

    @Test func connectionToTheAPIServerRaisesR0007() throws {
        let (ruleSet, applied) = try APIServerAddresses.load(files: Self.files, addresses: ["10.96.0.1"])
        #expect(applied)
        let judgement = ProfileJudgement(
            state: "final", workload: "shop/Deployment/web", unexpected: ["connect tcp://10.96.0.1:443"],
            allowCommands: [
                "patrolctl profiles allow shop/Deployment/web --container web --connect tcp://10.96.0.1:443"
            ])
        func ids(_ address: String) -> [String] {
            var evaluator = RuleEvaluator(ruleSet: ruleSet)
            return evaluator.evaluate(Self.connect(to: address), profile: judgement).map(\.ruleID)
                .filter { $0.hasPrefix("R0") }.sorted()
        }
        #expect(ids("10.96.0.1") == ["R0007", "R0008"])
        #expect(ids("10.96.0.2") == ["R0008"], "any other new destination is only R0008")

        // Without the address (not in a cluster) the rules load unchanged and R0007 has nothing to match.
        let (plain, none) = try APIServerAddresses.load(files: Self.files, addresses: [])
        #expect(!none)
        var evaluator = RuleEvaluator(ruleSet: plain)
        let alerts = evaluator.evaluate(Self.connect(to: "10.96.0.1"), profile: judgement)
        #expect(!alerts.contains { $0.ruleID == "R0007" })
    }

    @Test func rulesWithoutTheListLoadAsTheyAre() throws {
        let (ruleSet, applied) = try APIServerAddresses.load(
            files: ["rules/runtime-signatures.yaml"], addresses: ["10.96.0.1"])
        #expect(!applied)
        #expect(ruleSet.rule(id: "R0007") == nil)
    }

    static func connect(to address: String) -> Event {
        let container = ContainerRef(
            runtime: "containerd", containerID: "c1", podUID: "u1", podName: "web-1", namespace: "shop",
            containerName: "web", image: "web:1", ownerKind: "Deployment", ownerName: "web")
        return Event(
            time: 1, node: "n", process: ProcessInfo(pid: 7, comm: "curl", exe: "/usr/bin/curl"), container: container,
            payload: .connect(NetworkFlow(family: .inet, remoteAddress: address, remotePort: 443)))
    }
}
