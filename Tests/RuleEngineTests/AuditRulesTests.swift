import EventModel
import Foundation
import RuleEngine
import Testing

// The shipped audit rules (rules/audit-k8scop.yaml, rules/audit-behaviours.yaml) over small raw audit events
// written here as JSON text and read through AuditMapping.raw, exactly as the file and webhook sources read them.

private func auditRuleFiles() -> [String] {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    parts.removeLast(3)
    let directory = parts.joined(separator: "/") + "/rules"
    return ["audit-k8scop.yaml", "audit-behaviours.yaml"].map { directory + "/" + $0 }
}

private let auditRuleSources = Result {
    try auditRuleFiles().map { (fileName: $0, yaml: try String(contentsOfFile: $0, encoding: .utf8)) }
}

private let auditRuleSet = Result { try RuleSet.load(sources: try auditRuleSources.get()) }

// MARK: Event builders

private func quoted(_ text: String) -> String {
    "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

/// `objectRef` as the apiserver fills it from the request path (nil for non-resource URLs like /healthz).
private func objectRef(_ uri: String, name override: String?) -> String? {
    let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
    var parts = path.split(separator: "/").map(String.init)
    var group = ""
    if parts.first == "api", parts.count >= 2 {
        parts.removeFirst(2)
    } else if parts.first == "apis", parts.count >= 3 {
        group = parts[1]
        parts.removeFirst(3)
    } else {
        return nil
    }
    var namespace: String?
    if parts.first == "namespaces", parts.count >= 3 {
        namespace = parts[1]
        parts.removeFirst(2)
    }
    guard let resource = parts.first else { return nil }
    var members = ["\"resource\":\(quoted(resource))", "\"apiGroup\":\(quoted(group))", "\"apiVersion\":\"v1\""]
    if let namespace { members.append("\"namespace\":\(quoted(namespace))") }
    if let name = override ?? (parts.count >= 2 ? parts[1] : nil) { members.append("\"name\":\(quoted(name))") }
    if parts.count >= 3 { members.append("\"subresource\":\(quoted(parts[2]))") }
    return "{" + members.joined(separator: ",") + "}"
}

/// One raw `audit.k8s.io/v1` Event at stage ResponseComplete, as JSON text.
private func auditJSON(
    _ verb: String, _ uri: String, user: String = "alice", groups: [String] = ["system:authenticated"],
    code: Int = 200, decision: String = "allow", name: String? = nil, request: String? = nil,
    impersonating: String? = nil
) -> String {
    var members = [
        #""kind":"Event""#, #""apiVersion":"audit.k8s.io/v1""#, #""level":"RequestResponse""#,
        #""auditID":"5f0c2a4e-1""#, #""stage":"ResponseComplete""#, "\"requestURI\":\(quoted(uri))",
        "\"verb\":\(quoted(verb))",
        "\"user\":{\"username\":\(quoted(user)),\"groups\":[\(groups.map(quoted).joined(separator: ","))]}",
        #""sourceIPs":["10.0.0.9"]"#, #""userAgent":"kubectl/v1.31.0""#,
        "\"responseStatus\":{\"metadata\":{},\"code\":\(code)}",
        #""requestReceivedTimestamp":"2026-11-20T10:00:00.000001Z""#,
        #""stageTimestamp":"2026-11-20T10:00:00.000200Z""#,
        "\"annotations\":{\"authorization.k8s.io/decision\":\(quoted(decision)),\"authorization.k8s.io/reason\":\"\"}",
    ]
    if let ref = objectRef(uri, name: name) { members.append("\"objectRef\":\(ref)") }
    if let request { members.append("\"requestObject\":\(request)") }
    if let impersonating { members.append("\"impersonatedUser\":{\"username\":\(quoted(impersonating))}") }
    return "{" + members.joined(separator: ",") + "}"
}

/// A Pod object with `containers` (JSON objects) and extra `spec` members.
private func podJSON(_ containers: [String] = [#"{"name":"app","image":"nginx:1.25"}"#], spec: String = "") -> String {
    #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":["#
        + containers.joined(separator: ",") + "]" + (spec.isEmpty ? "" : "," + spec) + "}}"
}

/// The alerts the audit rules raise for one event, by rule id. `overrides` is a user rule file loaded after them.
private func alerts(_ json: String, overrides: String? = nil) throws -> [String: Alert] {
    let set: RuleSet
    if let overrides {
        set = try RuleSet.load(sources: try auditRuleSources.get() + [(fileName: "local.yaml", yaml: overrides)])
    } else {
        set = try auditRuleSet.get()
    }
    let event = try AuditMapping.raw.event(fromJSON: json, sourceID: "file:test")
    var evaluator = RuleEvaluator(ruleSet: set)
    var byRule: [String: Alert] = [:]
    for alert in evaluator.evaluate(event) { byRule[alert.ruleID] = alert }
    return byRule
}

private func fired(_ json: String, overrides: String? = nil) throws -> Set<String> {
    Set(try alerts(json, overrides: overrides).keys)
}

// MARK: K8sCop categories and defects

@Suite struct AuditK8sCopRulesTests {
    @Test func rulesLoadAndCarryTheirCategory() throws {
        let set = try auditRuleSet.get()
        let event = try AuditMapping.raw.event(
            fromJSON: auditJSON("get", "/api/v1/namespaces/shop/secrets/db", user: "mallory"))
        var evaluator = RuleEvaluator(ruleSet: set)
        let alert = try #require(evaluator.evaluate(event).first { $0.ruleID == "KC008" })
        #expect(alert.tags.contains("category:Secrets"))
        #expect(alert.tags.contains("k8scop"))
        #expect(alert.fields["ka.kubectl"] == "kubectl describe secrets db -n shop")
    }

    @Test func everyAuditRuleIsComplete() throws {
        let set = try auditRuleSet.get()
        #expect(set.rules.count == 58)
        for rule in set.rules {
            #expect(!rule.name.isEmpty && !rule.description.isEmpty && !rule.fix.isEmpty, "\(rule.id)")
            #expect(rule.events == [.audit], "\(rule.id)")
            if rule.id.hasPrefix("KC") {
                #expect(rule.tags.contains("k8scop"), "\(rule.id)")
                #expect(rule.tags.contains { ["category:Enum", "category:Tamper", "category:Secrets", "category:Exec"]
                    .contains($0) }, "\(rule.id)")
                #expect(rule.output.contains("%ka.kubectl"), "\(rule.id)")
            }
        }
        // Only the noisy, cluster-specific rules are off by default.
        #expect(Set(set.rules.filter { !$0.enabled }.map(\.id)) == ["KA004", "KA062"])
    }

    @Test func defect1SecretsListWithAnyLimit() throws {
        #expect(try fired(auditJSON("list", "/api/v1/secrets?limit=500")).contains("KC006"))
        #expect(try fired(auditJSON("list", "/api/v1/namespaces/shop/secrets?limit=12345")).contains("KC007"))
        // Denied: nothing was read.
        #expect(try !fired(auditJSON("list", "/api/v1/secrets?limit=500", code: 403)).contains("KC006"))
    }

    @Test func defect2SingleSecretRead() throws {
        #expect(try fired(auditJSON("get", "/api/v1/namespaces/default/secrets/exec-token-qjp9l")).contains("KC008"))
        #expect(try !fired(auditJSON("get", "/api/v1/namespaces/default/secrets/exec-token-qjp9l", code: 404))
            .contains("KC008"))
    }

    @Test func defect3NamesWithDots() throws {
        #expect(try fired(auditJSON("get", "/api/v1/namespaces/shop.eu/pods/web.v2")).contains("KC005"))
        #expect(try fired(auditJSON("delete", "/api/v1/namespaces/shop/pods/web.v2")).contains("KC004"))
        #expect(try fired(auditJSON("create", "/api/v1/namespaces/shop/pods/web.v2/exec?command=id")).contains("KC009"))
        #expect(try fired(auditJSON("get", "/api/v1/namespaces/shop/secrets/tls.crt")).contains("KC008"))
        // Not a Kubernetes name (uppercase, underscore), so not the pod URL K8sCop described.
        #expect(try !fired(auditJSON("get", "/api/v1/namespaces/shop/pods/Web_V2")).contains("KC005"))
    }

    @Test func defect4ModernKubectlCreate() throws {
        let uri = "/api/v1/namespaces/shop/pods?fieldManager=kubectl-create&fieldValidation=Strict"
        let alerts = try alerts(auditJSON("create", uri, code: 201, request: podJSON()))
        let alert = try #require(alerts["KC003"])
        #expect(alert.tags.contains("category:Tamper"))
        #expect(try !fired(auditJSON("create", uri, code: 403, request: podJSON())).contains("KC003"))
        // Listing the same collection is Enum, not Tamper.
        let listed = try fired(auditJSON("list", "/api/v1/namespaces/shop/pods?limit=500"))
        #expect(listed.contains("KC002") && !listed.contains("KC003"))
    }

    @Test func defect5ExeIsNotExec() throws {
        #expect(try !fired(auditJSON("get", "/api/v1/namespaces/shop/pods/web/exe?command=ls")).contains("KC009"))
        let uri = "/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fpasswd"
            + "&container=app&stdin=true&stdout=true"
        let alert = try #require(try alerts(auditJSON("create", uri, code: 101))["KC009"])
        #expect(alert.tags.contains("category:Exec"))
        #expect(alert.fields["ka.exec.container"] == "app")
        #expect(alert.fields["ka.exec.command"] == "sh -c cat /etc/passwd")
        #expect(alert.message.contains("ran 'sh -c cat /etc/passwd' in shop/web-1 container app"))
    }

    @Test func eventsWithoutRequestURIUseTheObjectRef() throws {
        // A trimmed event: verb and objectRef, no requestURI.
        let secrets = #"""
            {"verb":"list","user":{"username":"x"},"objectRef":{"resource":"secrets"},"responseStatus":{"code":200}}
            """#
        #expect(try fired(secrets).contains("KC006"))
        let oneNamespace = #"""
            {"verb":"list","user":{"username":"x"},"objectRef":{"resource":"secrets","namespace":"a"},"responseStatus":{"code":200}}
            """#
        #expect(try !fired(oneNamespace).contains("KC006"))
        #expect(try fired(#"{"verb":"list","user":{"username":"x"},"objectRef":{"resource":"pods"}}"#).contains("KC001"))
    }

    @Test func enumAllNamespacesAndUninitialized() throws {
        #expect(try fired(auditJSON("list", "/api/v1/pods?limit=500")).contains("KC001"))
        #expect(try fired(auditJSON("list", "/api/v1/namespaces/shop/pods?includeUninitialized=true", code: 403))
            .contains("KC002"))
        #expect(try !fired(auditJSON("list", "/api/v1/namespaces/shop/pods", code: 403)).contains("KC002"))
    }

    @Test func allowListSilencesAUser() throws {
        let overrides = """
            - list: k8scop_allowed_users
              items: [ci-deployer]
              append: true
            """
        let json = auditJSON("list", "/api/v1/secrets", user: "ci-deployer")
        #expect(try fired(json).contains("KC006"))
        #expect(try !fired(json, overrides: overrides).contains("KC006"))
    }
}

// MARK: REFERENCE §3 behaviours

@Suite struct AuditBehaviourRulesTests {
    @Test func userOutsideTheAllowedSet() throws {
        #expect(try fired(auditJSON("get", "/api/v1/namespaces/shop/configmaps/a", user: "mallory")).contains("KA001"))
        #expect(try !fired(auditJSON("get", "/api/v1/namespaces/shop/configmaps/a", user: "kubernetes-admin"))
            .contains("KA001"))
        #expect(try !fired(auditJSON("get", "/api/v1/nodes", user: "system:node:n1")).contains("KA001"))
    }

    @Test func anonymousAllowedOutsideHealthEndpoints() throws {
        #expect(try fired(auditJSON("get", "/api/v1/namespaces/shop/pods", user: "system:anonymous")).contains("KA002"))
        #expect(try !fired(auditJSON("get", "/healthz", user: "system:anonymous")).contains("KA002"))
        let denied = try fired(auditJSON("get", "/api/v1/pods", user: "system:anonymous", code: 403, decision: "forbid"))
        #expect(!denied.contains("KA002") && denied.contains("KA003"))
    }

    @Test func fullAdminUserIsOffByDefault() throws {
        let json = auditJSON("get", "/api/v1/nodes", user: "bob", groups: ["system:masters", "system:authenticated"])
        #expect(try !fired(json).contains("KA004"))
        let enable = "- rule: {id: KA004, enabled: true, override: {enabled: replace}}"
        #expect(try fired(json, overrides: enable).contains("KA004"))
        #expect(try !fired(auditJSON("get", "/api/v1/nodes", user: "bob"), overrides: enable).contains("KA004"))
    }

    @Test func privilegedContainerIncludingInitAndEphemeral() throws {
        let privileged = #"{"name":"x","image":"alpine","securityContext":{"privileged":true}}"#
        let plain = #"{"name":"app","image":"nginx:1.25"}"#
        let pods = "/api/v1/namespaces/shop/pods"
        #expect(try fired(auditJSON("create", pods, code: 201, request: podJSON([privileged]))).contains("KA010"))
        let initPod = podJSON([plain], spec: "\"initContainers\":[\(privileged)]")
        #expect(try fired(auditJSON("create", pods, code: 201, request: initPod)).contains("KA010"))
        let ephemeral = podJSON([plain], spec: "\"ephemeralContainers\":[\(privileged)]")
        #expect(try fired(auditJSON("patch", pods + "/web/ephemeralcontainers", request: ephemeral)).contains("KA010"))
        let deployment = #"{"kind":"Deployment","spec":{"template":{"spec":{"containers":["# + privileged + "]}}}}"
        #expect(try fired(auditJSON("create", "/apis/apps/v1/namespaces/shop/deployments", code: 201, request: deployment))
            .contains("KA010"))
        #expect(try !fired(auditJSON("create", pods, code: 201, request: podJSON([plain]))).contains("KA010"))
        let unprivileged = #"{"name":"x","image":"alpine","securityContext":{"privileged":false}}"#
        #expect(try !fired(auditJSON("create", pods, code: 201, request: podJSON([unprivileged]))).contains("KA010"))
    }

    @Test func imageAllowListExemptsTrustedImages() throws {
        let trusted = #"{"name":"proxy","image":"registry.k8s.io/kube-proxy:v1.31.0","securityContext":{"privileged":true}}"#
        let json = auditJSON("create", "/api/v1/namespaces/shop/pods", code: 201, request: podJSON([trusted]))
        #expect(try !fired(json).contains("KA010"))
        let mine = #"{"name":"agent","image":"registry.local/node-agent:2","securityContext":{"privileged":true}}"#
        let own = auditJSON("create", "/api/v1/namespaces/shop/pods", code: 201, request: podJSON([mine]))
        #expect(try fired(own).contains("KA010"))
        let overrides = """
            - list: ka_trusted_images
              items: [registry.local/node-agent]
              append: true
            """
        #expect(try !fired(own, overrides: overrides).contains("KA010"))
    }

    @Test func sensitiveAndOtherHostPaths() throws {
        let pods = "/api/v1/namespaces/shop/pods"
        func pod(_ path: String) -> String {
            podJSON(spec: "\"volumes\":[{\"name\":\"h\",\"hostPath\":{\"path\":\(quoted(path))}}]")
        }
        for path in ["/", "/proc", "/etc", "/root", "/var/run/docker.sock", "/run/containerd/containerd.sock",
            "/var/run/crio/crio.sock", "/var/lib/kubelet", "/var/lib/kubelet/pki", "/etc/kubernetes",
            "/etc/kubernetes/manifests"]
        {
            #expect(try fired(auditJSON("create", pods, code: 201, request: pod(path))).contains("KA011"), "\(path)")
        }
        let data = try fired(auditJSON("create", pods, code: 201, request: pod("/srv/data")))
        #expect(!data.contains("KA011") && data.contains("KA012"))
        #expect(try !fired(auditJSON("create", pods, code: 201, request: podJSON())).contains("KA012"))
    }

    @Test func hostNamespaces() throws {
        let pods = "/api/v1/namespaces/shop/pods"
        for (flag, rule) in [("hostNetwork", "KA013"), ("hostPID", "KA014"), ("hostIPC", "KA015")] {
            #expect(try fired(auditJSON("create", pods, code: 201, request: podJSON(spec: "\"\(flag)\":true")))
                .contains(rule))
            #expect(try !fired(auditJSON("create", pods, code: 201, request: podJSON(spec: "\"\(flag)\":false")))
                .contains(rule))
        }
    }

    @Test func podInSystemNamespace() throws {
        #expect(try fired(auditJSON("create", "/api/v1/namespaces/kube-system/pods", code: 201, request: podJSON()))
            .contains("KA016"))
        #expect(try fired(auditJSON("create", "/api/v1/namespaces/kube-public/pods", code: 201, request: podJSON()))
            .contains("KA016"))
        #expect(try !fired(auditJSON("create", "/api/v1/namespaces/shop/pods", code: 201, request: podJSON()))
            .contains("KA016"))
        // A trusted image is exempt only when a workload controller (or the kubelet, an allowed user) creates it.
        let proxy = podJSON([#"{"name":"p","image":"registry.k8s.io/kube-proxy:v1.31.0"}"#])
        let uri = "/api/v1/namespaces/kube-system/pods"
        #expect(try !fired(auditJSON("create", uri, user: "system:serviceaccount:kube-system:daemon-set-controller",
            code: 201, request: proxy)).contains("KA016"))
        #expect(try fired(auditJSON("create", uri, user: "system:serviceaccount:kube-system:controller", code: 201,
            request: proxy)).contains("KA016"))
    }

    @Test func dangerousCapabilities() throws {
        let added = #"{"name":"x","image":"alpine","securityContext":{"capabilities":{"add":["SYS_ADMIN"]}}}"#
        let benign = #"{"name":"x","image":"alpine","securityContext":{"capabilities":{"add":["CHOWN"]}}}"#
        let pods = "/api/v1/namespaces/shop/pods"
        #expect(try fired(auditJSON("create", pods, code: 201, request: podJSON([added]))).contains("KA017"))
        #expect(try !fired(auditJSON("create", pods, code: 201, request: podJSON([benign]))).contains("KA017"))
    }

    @Test func execAttachPortForwardAndEphemeralContainers() throws {
        let pod = "/api/v1/namespaces/shop/pods/web"
        #expect(try fired(auditJSON("create", pod + "/exec?command=sh", code: 101)).contains("KA020"))
        #expect(try fired(auditJSON("create", pod + "/attach?container=app", code: 101)).contains("KA020"))
        #expect(try fired(auditJSON("create", pod + "/portforward?ports=5432", code: 101)).contains("KA021"))
        #expect(try fired(auditJSON("patch", pod + "/ephemeralcontainers", request: podJSON())).contains("KA022"))
        let logs = try fired(auditJSON("get", pod + "/log?container=app"))
        #expect(logs.isDisjoint(with: ["KA020", "KA021", "KA022"]))
        let overrides = """
            - list: ka_exec_allowed_users
              items: [oncall]
              append: true
            """
        #expect(try !fired(auditJSON("create", pod + "/exec?command=sh", user: "oncall", code: 101), overrides: overrides)
            .contains("KA020"))
    }

    private func binding(_ role: String) -> String {
        #"{"kind":"ClusterRoleBinding","roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"#
            + quoted(role) + #"},"subjects":[{"kind":"User","name":"mallory"}]}"#
    }

    private func role(verbs: [String], resources: [String]) -> String {
        let v = verbs.map(quoted).joined(separator: ","), r = resources.map(quoted).joined(separator: ",")
        return #"{"kind":"ClusterRole","rules":[{"apiGroups":[""],"resources":["# + r + #"],"verbs":["# + v + "]}]}"
    }

    @Test func rbacBindingsToClusterAdmin() throws {
        let uri = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
        #expect(try fired(auditJSON("create", uri, code: 201, request: binding("cluster-admin"))).contains("KA030"))
        #expect(try !fired(auditJSON("create", uri, code: 201, request: binding("view"))).contains("KA030"))
    }

    @Test func rbacRolesWithWildcardsWriteVerbsAndExec() throws {
        let uri = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
        let readOnly = try fired(auditJSON("create", uri, code: 201, request: role(verbs: ["get", "list"], resources: ["pods"])))
        #expect(readOnly.isDisjoint(with: ["KA032", "KA033", "KA034"]))
        #expect(try fired(auditJSON("create", uri, code: 201, request: role(verbs: ["get"], resources: ["*"])))
            .contains("KA032"))
        #expect(try fired(auditJSON("create", uri, code: 201, request: role(verbs: ["*"], resources: ["pods"])))
            .contains("KA032"))
        #expect(try fired(auditJSON("create", uri, code: 201, request: role(verbs: ["delete"], resources: ["pods"])))
            .contains("KA033"))
        #expect(try fired(auditJSON("create", uri, code: 201, request: role(verbs: ["create"], resources: ["pods/exec"])))
            .contains("KA034"))
    }

    @Test func systemClusterRoleModifiedOrDeleted() throws {
        let uri = "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:aggregate-to-edit"
        #expect(try fired(auditJSON("delete", uri)).contains("KA036"))
        #expect(try fired(auditJSON("patch", uri, request: "{}")).contains("KA036"))
        #expect(try !fired(auditJSON("patch", uri, user: "system:apiserver", request: "{}")).contains("KA036"))
        #expect(try !fired(auditJSON("delete", "/apis/rbac.authorization.k8s.io/v1/clusterroles/my-role"))
            .contains("KA036"))
    }

    @Test func secretReadAndDeniedRead() throws {
        let secret = "/api/v1/namespaces/shop/secrets/db"
        #expect(try fired(auditJSON("get", secret)).contains("KA040"))
        #expect(try !fired(auditJSON("get", secret, user: "system:serviceaccount:shop:app")).contains("KA040"))
        let denied = try fired(auditJSON("get", secret, code: 403, decision: "forbid"))
        #expect(denied.contains("KA041") && !denied.contains("KA040"))
        #expect(try !fired(auditJSON("get", secret)).contains("KA041"))
    }

    @Test func secretCreatedOrDeletedOutsideKubeSystem() throws {
        #expect(try fired(auditJSON("create", "/api/v1/namespaces/shop/secrets", code: 201, name: "db")).contains("KA042"))
        #expect(try fired(auditJSON("delete", "/api/v1/namespaces/shop/secrets/db")).contains("KA042"))
        #expect(try !fired(auditJSON("delete", "/api/v1/namespaces/kube-system/secrets/db")).contains("KA042"))
        #expect(try !fired(auditJSON("delete", "/api/v1/namespaces/shop/secrets/db", user: "system:kube-controller-manager"))
            .contains("KA042"))
    }

    @Test func configMapWithCredentials() throws {
        let uri = "/api/v1/namespaces/shop/configmaps"
        for data in [#"{"AWS_ACCESS_KEY_ID":"AKIA0000"}"#, #"{"db.conf":"user=app password=hunter2"}"#,
            #"{"gpg":"passphrase: x"}"#]
        {
            let json = auditJSON("create", uri, code: 201, request: "{\"kind\":\"ConfigMap\",\"data\":\(data)}")
            #expect(try fired(json).contains("KA044"), "\(data)")
        }
        let plain = auditJSON("create", uri, code: 201, request: #"{"kind":"ConfigMap","data":{"color":"blue"}}"#)
        #expect(try !fired(plain).contains("KA044"))
    }

    @Test func serviceAccountInKubeNamespace() throws {
        #expect(try fired(auditJSON("create", "/api/v1/namespaces/kube-system/serviceaccounts", code: 201, name: "x"))
            .contains("KA050"))
        #expect(try !fired(auditJSON("create", "/api/v1/namespaces/shop/serviceaccounts", code: 201, name: "x"))
            .contains("KA050"))
        #expect(try !fired(auditJSON("create", "/api/v1/namespaces/kube-system/serviceaccounts", user: "system:apiserver",
            code: 201, name: "x")).contains("KA050"))
    }

    @Test func namespaceOutsideAllowedList() throws {
        #expect(try fired(auditJSON("create", "/api/v1/namespaces", code: 201, name: "crypto")).contains("KA051"))
        #expect(try !fired(auditJSON("create", "/api/v1/namespaces", code: 201, name: "default")).contains("KA051"))
        let overrides = """
            - list: ka_allowed_namespaces
              items: [crypto]
              append: true
            """
        #expect(try !fired(auditJSON("create", "/api/v1/namespaces", code: 201, name: "crypto"), overrides: overrides)
            .contains("KA051"))
    }

    @Test func nodePortIngressWithoutTLSAndUntrustedNode() throws {
        let services = "/api/v1/namespaces/shop/services"
        #expect(try fired(auditJSON("create", services, code: 201, request: #"{"spec":{"type":"NodePort"}}"#))
            .contains("KA060"))
        #expect(try !fired(auditJSON("create", services, code: 201, request: #"{"spec":{"type":"ClusterIP"}}"#))
            .contains("KA060"))
        let ingresses = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses"
        #expect(try fired(auditJSON("create", ingresses, code: 201, request: #"{"spec":{"rules":[]}}"#)).contains("KA061"))
        let tls = #"{"spec":{"tls":[{"hosts":["a.example"],"secretName":"a"}]}}"#
        #expect(try !fired(auditJSON("create", ingresses, code: 201, request: tls)).contains("KA061"))
        let node = auditJSON("create", "/api/v1/nodes", user: "system:node:evil", code: 201, name: "evil")
        #expect(try !fired(node).contains("KA062"))
        let enable = "- rule: {id: KA062, enabled: true, override: {enabled: replace}}"
        #expect(try fired(node, overrides: enable).contains("KA062"))
    }

    @Test func activityForCreateAndDelete() throws {
        let cases: [(String, String, String)] = [
            ("/apis/apps/v1/namespaces/shop/deployments", "web", "KA101"),
            ("/api/v1/namespaces/shop/services", "web", "KA102"),
            ("/api/v1/namespaces/shop/configmaps", "cfg", "KA103"),
            ("/api/v1/namespaces", "team-a", "KA104"),
            ("/api/v1/namespaces/shop/serviceaccounts", "app", "KA105"),
            ("/apis/rbac.authorization.k8s.io/v1/namespaces/shop/roles", "r", "KA106"),
            ("/apis/rbac.authorization.k8s.io/v1/clusterroles", "cr", "KA106"),
            ("/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings", "rb", "KA107"),
            ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "crb", "KA107"),
            ("/api/v1/namespaces/shop/secrets", "s", "KA108"),
        ]
        for (collection, name, rule) in cases {
            #expect(try fired(auditJSON("create", collection, code: 201, name: name)).contains(rule), "\(collection)")
            #expect(try fired(auditJSON("delete", collection + "/" + name)).contains(rule), "\(collection)")
            #expect(try !fired(auditJSON("get", collection + "/" + name)).contains(rule), "\(collection)")
        }
    }
}
