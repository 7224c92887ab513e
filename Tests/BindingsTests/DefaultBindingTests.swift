import Bindings
import EventModel
import RuleEngine
import Testing

@Suite struct DefaultBindingTests {
    @Test func coversEveryShippedRuntimeRuleExceptNotDefault() throws {
        let binding = try #require(try defaultBinding().first)
        let bound = Set(binding.rules.flatMap(\.ruleIDs))
        // Runtime rules: everything not evaluated on audit events only.
        let runtime = try rules().rules.filter { $0.events != [.audit] }
        let expected = Set(runtime.filter { !$0.tags.contains("not-default") }.map(\.id))
        #expect(bound == expected, "rules/bindings/default.yaml must list: \(expected.subtracting(bound).sorted())")
        #expect(!bound.contains("R1006"))
    }

    @Test func appliesWhileNoBindingsAreApplied() throws {
        var bound = BoundEvaluator(ruleSet: try rules(), defaultBindings: try defaultBinding())
        #expect(ids(bound.evaluate(shmExec(pod("shop", ["app": "web"])))) == ["R1000"])
        #expect(ids(bound.evaluate(minerConnect(pod("default")))) == ["R1007"])
        for system in ["kube-system", "kube-public", "kube-node-lease"] {
            #expect(bound.evaluate(shmExec(pod(system))).isEmpty, "\(system)")
        }
        // Patrol's own pods.
        #expect(bound.evaluate(shmExec(pod("patrol-system", ["app.kubernetes.io/name": "patrol"]))).isEmpty)
        #expect(ids(bound.evaluate(shmExec(pod("patrol-system", ["app.kubernetes.io/name": "other"])))) == ["R1000"])
        #expect(bound.evaluate(unshareEvent(pod("shop"))).isEmpty)  // R1006 is left out
        // A container outside Kubernetes (a plain runc container: no pod, no namespace, no labels) is selected:
        // NotIn matches an absent label.
        let bare = ContainerRef(runtime: "runc", containerID: "bare-1")
        #expect(ids(bound.evaluate(shmExec(bare))) == ["R1000"])
    }

    @Test func hostEventsUseTheHostRules() throws {
        var bound = BoundEvaluator(ruleSet: try rules(), defaultBindings: try defaultBinding())
        // R1000 can fire on the host; R1006 (in_container) is not even evaluated there.
        #expect(ids(bound.evaluate(shmExec(nil))) == ["R1000"])
        #expect(bound.hostResolution.rules["R1000"] != nil)
        #expect(bound.hostResolution.rules["R1006"] == nil)
        var none = BoundEvaluator(ruleSet: try rules(), defaultBindings: try defaultBinding(), hostRules: .none)
        #expect(none.evaluate(shmExec(nil)).isEmpty)
        var only = BoundEvaluator(ruleSet: try rules(), hostRules: .ids(["R1007"]))
        #expect(only.evaluate(shmExec(nil)).isEmpty)
        #expect(ids(only.evaluate(minerConnect(nil))) == ["R1007"])
    }
}

@Suite struct LiveChangeTests {
    @Test func applyAndDeleteTakeEffectWithoutRestart() throws {
        var bound = BoundEvaluator(ruleSet: try rules(), defaultBindings: try defaultBinding())
        let web = pod("shop", ["app": "web"])
        #expect(ids(bound.evaluate(minerConnect(web))) == ["R1007"])  // default binding

        bound.apply(try fixture("valid/match-labels.yaml"))  // R1000 only, app=web
        #expect(bound.evaluate(minerConnect(web)).isEmpty)
        #expect(ids(bound.evaluate(shmExec(web))) == ["R1000"])

        bound.apply(try fixture("valid/severity-override.yaml"))
        #expect(bound.evaluate(minerConnect(web)).map(\.severity) == [.critical])
        #expect(bound.bindings.keys.sorted() == ["miners-critical", "web-exec"])

        try bound.delete("miners-critical")
        #expect(bound.evaluate(minerConnect(web)).isEmpty)
        #expect(throws: BindingsError.self) { try bound.delete("miners-critical") }

        try bound.delete("web-exec")  // none left: the default binding is back
        #expect(ids(bound.evaluate(minerConnect(web))) == ["R1007"])
    }

    @Test func unchangedResolutionsKeepSequenceState() throws {
        var bound = BoundEvaluator(ruleSet: try rules(), defaultBindings: try defaultBinding())
        let web = pod("shop", ["app": "web"])
        bound.apply(try fixture("valid/merge.yaml"))
        #expect(bound.evaluate(sshKeyOpen(web, time: 1_000_000_000)).isEmpty)  // R1003 step 1 pending
        // A binding that does not select this pod changes nothing for it: the pending step survives.
        bound.apply(try fixture("valid/namespaced.yaml"))
        #expect(ids(bound.evaluate(sshConnect(web, port: 2222, time: 1_500_000_000))) == ["R1003"])

        // A change that does touch the pod's rules starts it afresh: step 1 is forgotten.
        #expect(bound.evaluate(sshKeyOpen(web, time: 2_000_000_000)).isEmpty)
        bound.apply(try fixture("valid/ssh-allowed-ports.yaml"))  // selects app=bastion only
        bound.apply(try fixture("valid/unshare-opt-in.yaml"))  // adds R1006 to app=web
        #expect(bound.evaluate(sshConnect(web, port: 2222, time: 2_500_000_000)).isEmpty)
    }

    @Test func podsWithEqualRulesShareOneEvaluatorAndTheCacheIsBounded() throws {
        var bound = BoundEvaluator(
            ruleSet: try rules(), bindings: try fixture("valid/match-labels.yaml"), maxCachedPods: 4)
        for index in 0..<10 {
            _ = bound.evaluate(shmExec(pod("ns\(index)", ["app": "web"], name: "p\(index)")))
            _ = bound.evaluate(shmExec(pod("ns\(index)", ["app": "db"], name: "q\(index)")))
        }
        #expect(bound.evaluatorCount == 2)  // R1000, and nothing
        #expect(bound.cachedPods <= 4)
        // Labels that appear later (the pod watcher caught up) re-resolve: the key includes the labels.
        #expect(bound.evaluate(shmExec(pod("late"))).isEmpty)
        #expect(ids(bound.evaluate(shmExec(pod("late", ["app": "web"])))) == ["R1000"])
    }
}

@Suite struct LabelSelectorTests {
    @Test func kubernetesSemantics() {
        let labels = ["app": "web", "tier": "prod"]
        #expect(LabelSelector().matches(labels))
        #expect(LabelSelector().matches([:]))
        #expect(LabelSelector(matchLabels: ["app": "web"]).matches(labels))
        #expect(!LabelSelector(matchLabels: ["app": "web", "x": "y"]).matches(labels))
        #expect(LabelSelector(matchExpressions: [.init(key: "app", op: .in, values: ["api", "web"])]).matches(labels))
        #expect(!LabelSelector(matchExpressions: [.init(key: "zone", op: .in, values: ["a"])]).matches(labels))
        // NotIn and DoesNotExist match when the key is absent.
        #expect(LabelSelector(matchExpressions: [.init(key: "zone", op: .notIn, values: ["a"])]).matches(labels))
        #expect(!LabelSelector(matchExpressions: [.init(key: "tier", op: .notIn, values: ["prod"])]).matches(labels))
        #expect(LabelSelector(matchExpressions: [.init(key: "tier", op: .exists)]).matches(labels))
        #expect(!LabelSelector(matchExpressions: [.init(key: "tier", op: .doesNotExist)]).matches(labels))
        #expect(LabelSelector(matchExpressions: [.init(key: "zone", op: .doesNotExist)]).matches(labels))
        // matchLabels and matchExpressions are ANDed.
        #expect(
            !LabelSelector(matchLabels: ["app": "web"], matchExpressions: [.init(key: "tier", op: .doesNotExist)])
                .matches(labels))
    }
}
