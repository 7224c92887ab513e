import Basics
import EventModel
import Testing

// The field-mapping presets turn each shipper's layout into the raw audit.k8s.io/v1 layout that rules read.

private let rawEvent = #"""
    {"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a-1",
     "stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/pods?fieldManager=kubectl-create",
     "verb":"create","user":{"username":"alice","groups":["dev"]},"sourceIPs":["10.0.0.9"],
     "objectRef":{"resource":"pods","namespace":"shop","apiVersion":"v1"},
     "responseStatus":{"metadata":{},"code":201},
     "requestObject":{"kind":"Pod","spec":{"containers":[{"name":"app","image":"nginx"}]}},
     "requestReceivedTimestamp":"2019-02-01T10:20:30.123456Z","stageTimestamp":"2019-02-01T10:20:30.223456Z",
     "annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}
    """#

/// The normalised audit document of an event.
private func document(_ event: Event) throws -> JSONValue {
    guard case .audit(let record) = event.payload else {
        Issue.record("not an audit event")
        return .null
    }
    return record.document
}

/// The mapping error for `json`, or nil when it maps.
private func mappingError(_ mapping: AuditMapping, _ json: String) -> AuditMappingError? {
    do {
        _ = try mapping.event(fromJSON: json)
        return nil
    } catch {
        return error
    }
}

@Suite struct AuditMappingTests {
    @Test func rawEventKeepsItsFieldsAndStageTime() throws {
        let event = try AuditMapping.raw.event(fromJSON: rawEvent, sourceID: "file:1")
        let doc = try document(event)
        #expect(doc["verb"]?.stringValue == "create")
        #expect(doc["user"]?["username"]?.stringValue == "alice")
        #expect(doc["responseStatus"]?["code"]?.numberValue == 201)
        #expect(doc["requestObject"]?["spec"]?["containers"]?.arrayValue?.count == 1)
        // stageTimestamp 2019-02-01T10:20:30.223456Z
        #expect(event.time == 1_549_016_430_223_456_000)
        if case .audit(let record) = event.payload { #expect(record.sourceID == "file:1") }
    }

    @Test func fluentdParsesStringifiedObjectsAndFallsBackToAtTimestamp() throws {
        let json = #"""
            {"@timestamp":"2019-02-01T10:20:31.000Z","origin":"audit","auditID":"a-2","verb":"create",
             "requestURI":"/api/v1/namespaces/shop/pods","user":{"username":"bob"},
             "objectRef":{"resource":"pods","namespace":"shop"},"responseStatus":{"code":201},
             "requestObject":"{\"kind\":\"Pod\",\"spec\":{\"hostPID\":true}}",
             "responseObject":"{\"kind\":\"Pod\"}"}
            """#
        let event = try AuditMapping.fluentd.event(fromJSON: json)
        let doc = try document(event)
        #expect(doc["requestObject"]?["spec"]?["hostPID"] == JSONValue.bool(true))
        #expect(doc["responseObject"]?["kind"]?.stringValue == "Pod")
        #expect(doc["origin"]?.stringValue == "audit")
        #expect(event.time == 1_549_016_431_000_000_000)
        // The raw preset does not accept a stringified request object: it says which field is wrong.
        let error = try #require(mappingError(.raw, json))
        #expect(error.code == .wrongType && error.field == "requestObject")
    }

    @Test func fluentdPrefersTheApiserverTimeOverIngestTime() throws {
        let json = #"""
            {"@timestamp":"2019-02-01T11:00:00Z","auditID":"a","verb":"get","requestURI":"/api/v1/pods",
             "stageTimestamp":"2019-02-01T10:00:00Z"}
            """#
        #expect(try AuditMapping.fluentd.event(fromJSON: json).time == 1_549_015_200_000_000_000)
    }

    @Test func elasticAgentNestedUnderKubernetesAuditWithDedottedAnnotations() throws {
        let json = #"""
            {"@timestamp":"2019-02-01T10:20:30.5Z","data_stream":{"dataset":"kubernetes.audit_logs"},
             "kubernetes":{"audit":{"auditID":"a-3","verb":"get","requestURI":"/api/v1/namespaces/shop/secrets/db",
               "user":{"username":"carol"},"objectRef":{"resource":"secrets","namespace":"shop","name":"db"},
               "responseStatus":{"code":200},
               "annotations":{"authorization_k8s_io/decision":"allow","authorization_k8s_io/reason":"RBAC"}}}}
            """#
        let event = try AuditMapping.elasticAgent.event(fromJSON: json)
        let doc = try document(event)
        #expect(doc["verb"]?.stringValue == "get")
        #expect(doc["annotations"]?["authorization.k8s.io/decision"]?.stringValue == "allow")
        #expect(doc["annotations"]?["authorization_k8s_io/decision"] == nil)
        #expect(event.time == 1_549_016_430_500_000_000)
    }

    @Test func elasticAgentFlatDottedKeys() throws {
        let json = #"""
            {"@timestamp":"2019-02-01T10:20:30Z","kubernetes.audit.auditID":"a-4","kubernetes.audit.verb":"list",
             "kubernetes.audit.requestURI":"/api/v1/secrets","kubernetes.audit.user.username":"dave",
             "kubernetes.audit.objectRef.resource":"secrets","kubernetes.audit.responseStatus.code":200}
            """#
        let doc = try document(try AuditMapping.elasticAgent.event(fromJSON: json))
        #expect(doc["user"]?["username"]?.stringValue == "dave")
        #expect(doc["objectRef"]?["resource"]?.stringValue == "secrets")
        #expect(doc["responseStatus"]?["code"]?.numberValue == 200)
    }

    @Test func webhookEventListGivesEveryItem() throws {
        let json = "{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[\(rawEvent),\(rawEvent)]}"
        let events = try AuditMapping.raw.events(fromJSON: json)
        #expect(events.count == 2)
        #expect(try AuditMapping.raw.events(fromJSON: rawEvent).count == 1)
    }

    @Test func malformedDocumentsNameTheField() throws {
        let notJSON = try #require(mappingError(.raw, "{\"verb\":"))
        #expect(notJSON.code == .notJSON)
        #expect(notJSON.message.contains("not JSON"))

        let array = try #require(mappingError(.raw, "[1,2]"))
        #expect(array.code == .wrongType)

        // Trimmed events (no verb, or no requestURI, or no auditID) still map; one naming no request does not.
        #expect(mappingError(.raw, #"{"auditID":"a","requestURI":"/x","stageTimestamp":"2019-02-01T10:00:00Z"}"#) == nil)
        #expect(mappingError(.raw, #"{"verb":"get","objectRef":{"resource":"pods"}}"#) == nil)
        let noRequest = try #require(mappingError(.raw, #"{"auditID":"a","stageTimestamp":"2019-02-01T10:00:00Z"}"#))
        #expect(noRequest.code == .missingField && noRequest.field == "verb")
        #expect(noRequest.message.contains("'verb'"))

        let numericVerb = try #require(
            mappingError(.raw, #"{"auditID":"a","verb":7,"requestURI":"/x","stageTimestamp":"2019-02-01T10:00:00Z"}"#))
        #expect(numericVerb.code == .wrongType && numericVerb.field == "verb")

        let badCode = try #require(mappingError(.raw, #"""
            {"auditID":"a","verb":"get","requestURI":"/x","stageTimestamp":"2019-02-01T10:00:00Z",
             "responseStatus":{"code":"two hundred"}}
            """#))
        #expect(badCode.field == "responseStatus.code")

        let badTime = try #require(mappingError(.raw, #"{"auditID":"a","verb":"get","requestURI":"/x","stageTimestamp":"yesterday"}"#))
        #expect(badTime.code == .wrongType && badTime.field == "stageTimestamp")

        // Without any time the event is dated when it was read.
        let before = WallClock.now()
        #expect(try AuditMapping.raw.event(fromJSON: #"{"auditID":"a","verb":"get","requestURI":"/x"}"#).time >= before)

        let agentMissing = try #require(mappingError(.elasticAgent, #"{"@timestamp":"2019-02-01T10:00:00Z","verb":"get"}"#))
        #expect(agentMissing.code == .missingField && agentMissing.field == "kubernetes.audit")

        let agentNoRequest = try #require(mappingError(.elasticAgent, #"""
            {"@timestamp":"2019-02-01T10:00:00Z","kubernetes":{"audit":{"auditID":"a","level":"Metadata"}}}
            """#))
        #expect(agentNoRequest.field == "kubernetes.audit.verb")
        let agentBadUser = try #require(mappingError(.elasticAgent, #"""
            {"@timestamp":"2019-02-01T10:00:00Z","kubernetes":{"audit":{"verb":"get","user":"x"}}}
            """#))
        #expect(agentBadUser.code == .wrongType && agentBadUser.field == "kubernetes.audit.user")

        let brokenStringified = try #require(mappingError(.fluentd, #"""
            {"@timestamp":"2019-02-01T10:00:00Z","auditID":"a","verb":"get","requestURI":"/x","requestObject":"{oops"}
            """#))
        #expect(brokenStringified.code == .notJSON && brokenStringified.field == "requestObject")
    }

    @Test func deeplyNestedDocumentIsAnErrorNotACrash() throws {
        let deep = String(repeating: "[", count: 100_000)
        let error = try #require(mappingError(.raw, deep))
        #expect(error.code == .notJSON)
    }

    @Test func rfc3339Variants() {
        #expect(AuditMapping.parseRFC3339("1970-01-01T00:00:01Z") == 1_000_000_000)
        #expect(AuditMapping.parseRFC3339("1970-01-01T01:00:01+01:00") == 1_000_000_000)
        #expect(AuditMapping.parseRFC3339("1970-01-01T00:00:00.000000001Z") == 1)
        #expect(AuditMapping.parseRFC3339("1970-01-01 00:00:01Z") == 1_000_000_000)
        #expect(AuditMapping.parseRFC3339("1970-13-01T00:00:01Z") == nil)
        // Exports that drop the zone hold UTC.
        #expect(AuditMapping.parseRFC3339("1970-01-01 00:00:01.5") == 1_500_000_000)
        #expect(AuditMapping.parseRFC3339("1970-01-01T00:00:01+0") == nil)
    }
}
