import AlertSinks
import EventModel
import Foundation
import Logging
import RuleEngine
import Store
import Synchronization
import TestSupport
import Testing

@testable import CollectorApp

/// The collector's rule bindings end to end in process: `BindingsController` over a real store, the real ingest
/// loop evaluating events through them, the shipped rules and default binding, and the binding documents of
/// `Tests/BindingsTests/Fixtures`. Issue 6, acceptance 3 (each document accepted with its effect on an event, or
/// rejected with its reason, without a restart) and the bindings half of acceptance 4 (a restart keeps them).
@Suite struct CollectorBindingsTests {
    static let repository: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        parts.removeLast(3)  // Tests/CollectorAppTests/CollectorBindingsTests.swift
        return parts.joined(separator: "/")
    }()
    static let fixtures = repository + "/Tests/BindingsTests/Fixtures"
    static let shippedRules = Result { try RuleSet.load(files: try RuleFiles.expand([repository + "/rules"])) }

    /// The part of `Collector.run` that bindings touch: the store, the controller loaded from it and the seed,
    /// and the ingest loop, wired as the collector wires them.
    final class RunningCollector: Sendable {
        let store: Store
        let bindings: BindingsController
        let ingest: IngestService
        let task: Task<Void, any Error>
        // A fresh boot id per start, so the ingest ledger restored from the store never takes a batch for a resend.
        let bootID = UUID().uuidString
        let sequence = Mutex<UInt64>(0)

        init(storePath: String, seed: [String]? = nil, owners: KubernetesOwners? = nil) async throws {
            store = try await Store.open(path: storePath)
            let ruleSet = try CollectorBindingsTests.shippedRules.get()
            let logger = Logger(label: "bindings-test")
            bindings = try await BindingsController.load(
                ruleSet: ruleSet, seedPaths: seed, rulePaths: [CollectorBindingsTests.repository + "/rules"],
                store: store, logger: logger)
            let ingest = IngestService(
                store: store, ruleSet: ruleSet, signal: OutboxSignal(), bindings: bindings, owners: owners,
                logger: logger)
            self.ingest = ingest
            task = Task { try await ingest.run() }
        }

        /// Ingests one batch and returns the alerts it wrote to the outbox.
        func send(_ events: Event...) async throws -> [Alert] {
            let head = try await store.outboxHead()
            let number = sequence.withLock { value in
                value += 1
                return value
            }
            let result = await ingest.submit(EventBatch(sensorID: "s1", bootID: bootID, sequence: number, events: events))
            guard case .success = result else {
                Issue.record("batch refused: \(result)")
                return []
            }
            return try await store.outbox(after: head, limit: 1000).map(\.alert)
        }

        func apply(_ files: String..., dryRun: Bool = false) async throws -> [BindingApplyResult] {
            var documents: [(source: String, text: String)] = []
            for file in files {
                documents.append((file, try String(contentsOfFile: CollectorBindingsTests.fixtures + "/" + file, encoding: .utf8)))
            }
            return await bindings.apply(documents, dryRun: dryRun)
        }

        func stop() async {
            task.cancel()
            _ = try? await task.value
            await store.close()
        }
    }

    // MARK: Events

    static func pod(_ namespace: String, _ labels: [String: String] = [:], name: String = "p") -> ContainerRef {
        ContainerRef(
            runtime: "containerd", containerID: "c-\(namespace)-\(name)", podUID: "uid-\(namespace)-\(name)",
            podName: name, namespace: namespace, containerName: "main", image: "busybox", labels: labels)
    }

    /// R1000: exec of a binary staged in /dev/shm.
    static func shmExec(_ container: ContainerRef) -> Event {
        Event(
            time: 1_000_000_000, node: "node-a", process: ProcessInfo(pid: 40, ppid: 1, tid: 40, comm: "x", exe: "/dev/shm/x"),
            container: container, payload: .exec(Exec(path: "/dev/shm/x", argv: ["/dev/shm/x"])))
    }

    /// R1007: a connection to a mining pool port.
    static func minerConnect(_ container: ContainerRef) -> Event {
        Event(
            time: 1_000_000_000, node: "node-a", process: ProcessInfo(pid: 41, comm: "xmrig", exe: "/usr/bin/xmrig"),
            container: container,
            payload: .connect(
                NetworkFlow(
                    proto: .tcp, localAddress: "10.0.0.5", localPort: 40000, remoteAddress: "198.51.100.7",
                    remotePort: 3333)))
    }

    /// R1003 step 1: pid 42 reads a private SSH key.
    static func sshKeyOpen(_ container: ContainerRef, time: UInt64) -> Event {
        Event(
            time: time, node: "node-a", process: ProcessInfo(pid: 42, comm: "ssh", exe: "/usr/bin/ssh"),
            container: container, payload: .open(FileOpen(path: "/root/.ssh/id_rsa", flags: 0, result: 3)))
    }

    /// R1003 step 2: pid 42 connects over TCP to `port`.
    static func sshConnect(_ container: ContainerRef, port: UInt16, time: UInt64) -> Event {
        Event(
            time: time, node: "node-a", process: ProcessInfo(pid: 42, comm: "ssh", exe: "/usr/bin/ssh"),
            container: container,
            payload: .connect(
                NetworkFlow(
                    proto: .tcp, localAddress: "10.0.0.5", localPort: 40001, remoteAddress: "203.0.113.9",
                    remotePort: port)))
    }

    static func ids(_ alerts: [Alert]) -> [String] { alerts.map(\.ruleID).sorted() }

    static func actions(_ results: [BindingApplyResult]) -> [String: BindingApplyAction] {
        Dictionary(uniqueKeysWithValues: results.map { ($0.namespace.isEmpty ? $0.name : "\($0.namespace)/\($0.name)", $0.action) })
    }

    // MARK: Tests

    @Test func theShippedDefaultBindingAppliesWhileNoBindingIsApplied() async throws {
        let directory = try TemporaryDirectory(prefix: "bindings")
        defer { directory.remove() }
        let collector = try await RunningCollector(storePath: directory.file("patrol.db"))
        #expect(await collector.bindings.list(namespace: nil).isEmpty)
        #expect(Self.ids(try await collector.send(Self.shmExec(Self.pod("default")))) == ["R1000"])
        // The default binding leaves kube-system and Patrol's own pods alone.
        #expect(try await collector.send(Self.shmExec(Self.pod("kube-system"))).isEmpty)
        #expect(try await collector.send(Self.shmExec(Self.pod("patrol", ["app.kubernetes.io/name": "patrol"]))).isEmpty)
        await collector.stop()
    }

    /// Acceptance 3 through the collector: each accepted document changes which events alert, at once.
    @Test func eachAcceptedBindingChangesAlertsWithoutARestart() async throws {
        let directory = try TemporaryDirectory(prefix: "bindings")
        defer { directory.remove() }
        let collector = try await RunningCollector(storePath: directory.file("patrol.db"))
        let web = Self.pod("shop", ["app": "web"], name: "web-1")
        let db = Self.pod("shop", ["app": "db"], name: "db-1")

        // Before: the default binding gives every pod R1000.
        #expect(Self.ids(try await collector.send(Self.shmExec(db))) == ["R1000"])

        // matchLabels: only app=web pods get R1000, and the default binding no longer applies.
        #expect(Self.actions(try await collector.apply("valid/match-labels.yaml")) == ["web-exec": .created])
        #expect(Self.ids(try await collector.send(Self.shmExec(web))) == ["R1000"])
        #expect(try await collector.send(Self.shmExec(db)).isEmpty)
        #expect(try await collector.send(Self.minerConnect(db)).isEmpty)

        // severity: Crypto miner (high in the rule file) for every pod, raised to critical.
        #expect(Self.actions(try await collector.apply("valid/severity-override.yaml")) == ["miners-critical": .created])
        let mined = try await collector.send(Self.minerConnect(db))
        #expect(Self.ids(mined) == ["R1007"])
        #expect(mined.first?.severity == .critical)

        // ruleTags: [miner, ld_preload] binds R1007 at its own severity; once the override's binding is deleted,
        // the alert is back to high.
        #expect(Self.actions(try await collector.apply("valid/ruletags.yaml")) == ["by-tags": .created])
        #expect(try await collector.send(Self.minerConnect(db)).first?.severity == .critical)
        #expect(try await collector.bindings.delete(name: "miners-critical", namespace: ""))
        let tagged = try await collector.send(Self.minerConnect(db))
        #expect(Self.ids(tagged) == ["R1007"])
        #expect(tagged.first?.severity == .high)
        #expect(try await collector.bindings.delete(name: "by-tags", namespace: ""))

        // namespaceSelector (two documents in one file): R1000 for namespace shop only.
        #expect(
            Self.actions(try await collector.apply("valid/namespace-selector.yaml"))
                == ["shop-namespace": .created, "payments-team": .created])
        #expect(Self.ids(try await collector.send(Self.shmExec(db))) == ["R1000"])
        #expect(try await collector.send(Self.shmExec(Self.pod("blog", ["app": "db"]))).isEmpty)

        // parameters: R1003 with allowedPorts [22, 2222] for app=bastion pods.
        #expect(Self.actions(try await collector.apply("valid/ssh-allowed-ports.yaml")) == ["bastion-ssh": .created])
        let bastion = Self.pod("ops", ["app": "bastion"], name: "bastion-1")
        #expect(try await collector.send(Self.sshKeyOpen(bastion, time: 1_000_000_000)).isEmpty)
        #expect(try await collector.send(Self.sshConnect(bastion, port: 2222, time: 1_500_000_000)).isEmpty)
        #expect(try await collector.send(Self.sshKeyOpen(bastion, time: 3_000_000_000)).isEmpty)
        #expect(Self.ids(try await collector.send(Self.sshConnect(bastion, port: 2200, time: 3_500_000_000))) == ["R1003"])

        // An update by name replaces the binding: web-exec now selects app=db instead of app=web.
        let retargeted = try String(contentsOfFile: Self.fixtures + "/valid/match-labels.yaml", encoding: .utf8)
            .replacingOccurrences(of: "app: web", with: "app: db")
        let updated = await collector.bindings.apply([("retarget.yaml", retargeted)], dryRun: false)
        #expect(Self.actions(updated) == ["web-exec": .updated])
        #expect(Self.ids(try await collector.send(Self.shmExec(Self.pod("blog", ["app": "db"])))) == ["R1000"])
        #expect(try await collector.send(Self.shmExec(Self.pod("blog", ["app": "web"]))).isEmpty)
        // The same document again changes nothing.
        #expect(Self.actions(await collector.bindings.apply([("again.yaml", retargeted)], dryRun: false)) == ["web-exec": .unchanged])

        let listed = await collector.bindings.list(namespace: nil)
        #expect(listed.map(\.name) == ["bastion-ssh", "payments-team", "shop-namespace", "web-exec"])
        #expect(listed.first { $0.name == "web-exec" }?.selector == "namespaces: <all>; pods: app=db")
        #expect(listed.first { $0.name == "web-exec" }?.rules == ["Exec from malicious source"])
        await collector.stop()
    }

    /// Acceptance 3, the rejected half: every invalid document of the test set is refused with its reason,
    /// through the collector, and changes nothing (the events alert exactly as before).
    @Test func everyInvalidDocumentIsRejectedWithItsReasonAndChangesNothing() async throws {
        let directory = try TemporaryDirectory(prefix: "bindings")
        defer { directory.remove() }
        let collector = try await RunningCollector(storePath: directory.file("patrol.db"))
        let web = Self.pod("shop", ["app": "web"], name: "web-1")
        let db = Self.pod("shop", ["app": "db"], name: "db-1")
        _ = try await collector.apply("valid/match-labels.yaml")

        let invalid = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures + "/invalid").sorted()
        #expect(invalid.count >= 20)
        for file in invalid {
            // Each invalid file together with a valid one: all-or-nothing, so neither is applied.
            let results = try await collector.apply("invalid/" + file, "valid/severity-override.yaml")
            #expect(!results.isEmpty && results.allSatisfy { $0.action == .rejected }, "\(file): \(results)")
            #expect(results.contains { $0.message.contains("invalid/" + file) }, "\(file): \(results)")
            #expect(
                results.contains { $0.name == "miners-critical" && $0.message.contains("not applied") }, "\(file): \(results)")
        }
        let twoReferences = try await collector.apply("invalid/two-references.yaml")
        #expect(twoReferences.count == 1)
        #expect(twoReferences.first?.name == "bad")
        #expect(
            twoReferences.first?.message.contains(
                "document 1 (bad): spec.rules[0]: a rule entry has exactly one of ruleName, ruleID or ruleTags; it has ruleName and ruleID")
                == true)

        // Nothing changed: web-exec alone is applied.
        #expect(await collector.bindings.list(namespace: nil).map(\.name) == ["web-exec"])
        #expect(Self.ids(try await collector.send(Self.shmExec(web))) == ["R1000"])
        #expect(try await collector.send(Self.minerConnect(db)).isEmpty)
        await collector.stop()
    }

    /// Two documents with the same source name (stdin twice) are still told apart, and each binding keeps its own
    /// text.
    @Test func repeatedSourceNamesKeepEachDocumentsText() async throws {
        let directory = try TemporaryDirectory(prefix: "bindings")
        defer { directory.remove() }
        let collector = try await RunningCollector(storePath: directory.file("patrol.db"))
        let first = try String(contentsOfFile: Self.fixtures + "/valid/match-labels.yaml", encoding: .utf8)
        let second = try String(contentsOfFile: Self.fixtures + "/valid/severity-override.yaml", encoding: .utf8)
        let results = await collector.bindings.apply([("-", first), ("-", second)], dryRun: false)
        #expect(Self.actions(results) == ["web-exec": .created, "miners-critical": .created])
        #expect(await collector.bindings.get(name: "web-exec", namespace: "")?.contains("name: web-exec") == true)
        #expect(await collector.bindings.get(name: "miners-critical", namespace: "")?.contains("name: miners-critical") == true)
        await collector.stop()
    }

    @Test func aDryRunReportsButChangesNothing() async throws {
        let directory = try TemporaryDirectory(prefix: "bindings")
        defer { directory.remove() }
        let collector = try await RunningCollector(storePath: directory.file("patrol.db"))
        let results = try await collector.apply("valid/match-labels.yaml", dryRun: true)
        #expect(Self.actions(results) == ["web-exec": .created])
        #expect(await collector.bindings.list(namespace: nil).isEmpty)
        #expect(Self.ids(try await collector.send(Self.shmExec(Self.pod("default", ["app": "db"])))) == ["R1000"])
        await collector.stop()
        let reopened = try await Store.open(path: directory.file("patrol.db"))
        #expect(try await reopened.bindings().isEmpty)
        await reopened.close()
    }

    @Test func deletingTheLastBindingBringsTheDefaultBack() async throws {
        let directory = try TemporaryDirectory(prefix: "bindings")
        defer { directory.remove() }
        let collector = try await RunningCollector(storePath: directory.file("patrol.db"))
        let db = Self.pod("default", ["app": "db"])
        _ = try await collector.apply("valid/match-labels.yaml")
        #expect(try await collector.send(Self.shmExec(db)).isEmpty)
        #expect(try await collector.bindings.delete(name: "web-exec", namespace: ""))
        #expect(Self.ids(try await collector.send(Self.shmExec(db))) == ["R1000"])
        #expect(try await collector.bindings.delete(name: "web-exec", namespace: "") == false)
        await collector.stop()
    }

    /// An empty `bindings.files` configures no default: until a binding is applied, container events raise
    /// nothing, while events from no container still meet the host-capable rules.
    @Test func anEmptySeedMeansNoRulesForPodsUntilABindingIsApplied() async throws {
        let directory = try TemporaryDirectory(prefix: "bindings")
        defer { directory.remove() }
        let collector = try await RunningCollector(storePath: directory.file("patrol.db"), seed: [])
        #expect(try await collector.send(Self.shmExec(Self.pod("default"))).isEmpty)
        var host = Self.shmExec(Self.pod("default"))
        host.container = nil
        #expect(Self.ids(try await collector.send(host)) == ["R1000"])
        _ = try await collector.apply("valid/match-labels.yaml")
        #expect(Self.ids(try await collector.send(Self.shmExec(Self.pod("default", ["app": "web"])))) == ["R1000"])
        await collector.stop()
    }

    /// Acceptance 4, bindings half: a restart on the same store keeps the bindings, their text and their effects
    /// (and the default binding does not come back).
    @Test func bindingsAndTheirEffectsSurviveARestart() async throws {
        let directory = try TemporaryDirectory(prefix: "bindings")
        defer { directory.remove() }
        let db = Self.pod("shop", ["app": "db"], name: "db-1")
        let first = try await RunningCollector(storePath: directory.file("patrol.db"))
        _ = try await first.apply("valid/match-labels.yaml", "valid/severity-override.yaml", "valid/namespace-selector.yaml")
        let before = await first.bindings.list(namespace: nil)
        let text = await first.bindings.get(name: "payments-team", namespace: "")
        await first.stop()

        let second = try await RunningCollector(storePath: directory.file("patrol.db"))
        #expect(await second.bindings.list(namespace: nil) == before)
        #expect(before.count == 4)
        #expect(await second.bindings.get(name: "payments-team", namespace: "") == text)
        #expect(text?.contains("name: payments-team") == true && text?.contains("name: shop-namespace") == false)
        let mined = try await second.send(Self.minerConnect(db))
        #expect(Self.ids(mined) == ["R1007"] && mined.first?.severity == .critical)
        #expect(Self.ids(try await second.send(Self.shmExec(db))) == ["R1000"])  // shop-namespace
        #expect(try await second.send(Self.shmExec(Self.pod("default", ["app": "db"]))).isEmpty)  // no default
        await second.stop()
    }

    /// An apply that leaves a pod's rules as they were keeps that pod's sequence state: an SSH key read before
    /// the apply and a connection after it still make R1003. An apply that changes the pod's rules starts it
    /// afresh, so the same pair across that apply raises nothing.
    @Test func anApplyKeepsSequenceStateOfPodsWhoseRulesDidNotChange() async throws {
        let directory = try TemporaryDirectory(prefix: "bindings")
        defer { directory.remove() }
        let collector = try await RunningCollector(storePath: directory.file("patrol.db"))
        let bastion = Self.pod("ops", ["app": "bastion"], name: "bastion-1")
        _ = try await collector.apply("valid/ssh-allowed-ports.yaml")

        #expect(try await collector.send(Self.sshKeyOpen(bastion, time: 1_000_000_000)).isEmpty)
        _ = try await collector.apply("valid/match-labels.yaml")  // app=web only: the bastion's rules stay
        #expect(Self.ids(try await collector.send(Self.sshConnect(bastion, port: 2200, time: 1_500_000_000))) == ["R1003"])

        #expect(try await collector.send(Self.sshKeyOpen(bastion, time: 5_000_000_000)).isEmpty)
        _ = try await collector.apply("valid/severity-override.yaml")  // every pod: the bastion gains R1007
        #expect(try await collector.send(Self.sshConnect(bastion, port: 2200, time: 5_500_000_000)).isEmpty)
        await collector.stop()
    }

    @Test func theBindingsKeyNamesTheDefaultBindingFiles() throws {
        let config = try CollectorConfiguration.parse(
            yaml: "bindings:\n  files: [/etc/patrol/default.yaml]\n", source: "c.yaml")
        #expect(config.bindingSeedPaths == ["/etc/patrol/default.yaml"])
        #expect(try CollectorConfiguration.parse(yaml: "bindings: {files: []}\n", source: "c.yaml").bindingSeedPaths == [])
        #expect(try CollectorConfiguration.parse(yaml: "store: x.db\n", source: "c.yaml").bindingSeedPaths == nil)
        #expect(throws: (any Error).self) {
            try CollectorConfiguration.parse(yaml: "bindings: {file: x.yaml}\n", source: "c.yaml")
        }
    }

    /// A default binding that does not validate stops the start-up, naming the file and the problem.
    @Test func anInvalidDefaultBindingStopsTheStartUp() async throws {
        let directory = try TemporaryDirectory(prefix: "bindings")
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let bad = Self.fixtures + "/invalid/unknown-rule-id.yaml"
        await #expect(throws: (any Error).self) {
            _ = try await BindingsController.load(
                ruleSet: try Self.shippedRules.get(), seedPaths: [bad], rulePaths: [], store: store,
                logger: Logger(label: "bindings-test"))
        }
        await store.close()
    }
}
