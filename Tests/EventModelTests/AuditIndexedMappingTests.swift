import Basics
import EventModel
import Foundation
import Testing

// Text read by the audit sources is mapped over an index (AuditMapping.event(fromJSON:)); documents that are
// already trees (Elasticsearch hits) go through event(from:). Both must give the same event and the same errors.

private func record(_ event: Event) -> AuditRecord? {
    if case .audit(let record) = event.payload { return record }
    return nil
}

private func outcome(_ body: () throws(AuditMappingError) -> Event) -> Result<Event, AuditMappingError> {
    do throws(AuditMappingError) { return .success(try body()) } catch { return .failure(error) }
}

@Suite struct AuditIndexedMappingTests {
    static let raw = #"""
        {"kind":"Event","level":"RequestResponse","auditID":"a-1","stage":"ResponseComplete",
         "requestURI":"/api/v1/namespaces/shop/pods?fieldManager=kubectl-create","verb":"create",
         "user":{"username":"alice","groups":["dev"]},"sourceIPs":["10.0.0.9"],
         "objectRef":{"resource":"pods","namespace":"shop"},"responseStatus":{"code":201},
         "requestObject":{"kind":"Pod","spec":{"containers":[{"name":"app","image":"nginx"},{"image":"x\u0079z"}]}},
         "stageTimestamp":"2019-02-01T10:20:30.223456Z",
         "annotations":{"authorization.k8s.io/decision":"allow"}}
        """#
    static let fluentd = #"""
        {"@timestamp":"2024-05-01T10:00:00.000Z","origin":"audit","verb":"update","requestURI":"/apis/rbac/x",
         "user":{"username":"bob"},"objectRef":{"resource":"clusterroles","name":"admin"},
         "requestObject":"{\"rules\":[{\"verbs\":[\"*\"],\"resources\":[\"pods\"]}]}","responseObject":null}
        """#
    static let elasticAgent = #"""
        {"@timestamp":"2024-05-01T10:00:00.000Z","kubernetes":{"audit":{"verb":"get","requestURI":"/api/v1/secrets",
         "user":{"username":"carol"},"objectRef":{"resource":"secrets"},
         "annotations":{"authorization_k8s_io/decision":"forbid","authorization_k8s_io/reason":"no"}}}}
        """#
    static let elasticAgentFlat = #"""
        {"@timestamp":"2024-05-01T10:00:00.000Z","kubernetes.audit.verb":"list",
         "kubernetes.audit.objectRef.resource":"pods","kubernetes.audit.user.username":"dave"}
        """#

    static let cases: [(AuditMapping, String)] = [
        (.raw, raw), (.fluentd, raw), (.fluentd, fluentd), (.elasticAgent, elasticAgent), (.elasticAgent, elasticAgentFlat),
    ]

    static let paths: [[String]] = [
        ["verb"], ["requestURI"], ["user", "username"], ["user", "groups"], ["user", "groups", "0"], ["objectRef", "resource"],
        ["responseStatus", "code"], ["requestObject", "spec", "containers", "1", "image"], ["requestObject", "rules"],
        ["requestObject", "rules", "0", "verbs"], ["annotations", "authorization.k8s.io/decision"],
        ["annotations", "authorization.k8s.io/reason"], ["missing"], ["verb", "deeper"], ["user", "groups", "7"],
        ["responseObject"],
    ]

    @Test func indexedEventsEqualTreeMappedEvents() throws {
        for (mapping, text) in Self.cases {
            let indexed = try mapping.event(fromJSON: text, sourceID: "f:1")
            let tree = try mapping.event(from: try JSONText.parse(text), sourceID: "f:1")
            #expect(indexed.time == tree.time)
            let fast = try #require(record(indexed))
            let slow = try #require(record(tree))
            #expect(fast.document == slow.document, "\(mapping)")
            #expect(fast == slow)
            for path in Self.paths {
                #expect(fast.value(at: path) == slow.value(at: path), "\(path) in \(text.prefix(40))")
                #expect(fast.string(at: path) == slow.string(at: path))
                #expect(fast.scalarText(at: path) == slow.scalarText(at: path), "\(path)")
                #expect(fast.integer(at: path) == slow.integer(at: path), "\(path)")
                // Paths prepared once (as rules hold them) read the same values.
                let prepared = AuditFieldPath(path)
                #expect(fast.string(at: prepared) == slow.string(at: path), "\(path)")
                #expect(fast.scalarText(at: prepared) == slow.scalarText(at: path), "\(path)")
                #expect(fast.integer(at: prepared) == slow.integer(at: path), "\(path)")
                #expect(slow.scalarText(at: prepared) == slow.scalarText(at: path), "\(path)")
            }
        }
        // The raw layout keeps the text; a value read from it is decoded (\u0079 is y).
        let raw = try #require(record(try AuditMapping.raw.event(fromJSON: Self.raw)))
        #expect(raw.isIndexed)
        #expect(raw.string(at: ["requestObject", "spec", "containers", "1", "image"]) == "xyz")
        let agent = try #require(record(try AuditMapping.elasticAgent.event(fromJSON: Self.elasticAgent)))
        #expect(agent.string(at: ["annotations", "authorization.k8s.io/decision"]) == "forbid")
        #expect(agent.string(at: ["annotations", "authorization_k8s_io/decision"]) == nil)
    }

    // Scalars are read from their tokens (rules compare numbers and bools as text) and the audit object's common
    // members are found in one pass: repeated names (the last wins), escaped names and times, odd numbers.
    static let awkward = #"""
        {"verb":"get","v\u0065rb":"list","requestURI":"/a","requestURI":"/api/v1/pods?limit=5","user":{"username":"u"},
         "objectRef":{"resource":"pods","namespace":"n"},"responseStatus":{"code":403.0,"reason":true,"x":1.5,
         "big":1e20,"neg":-7,"text":"12","no":null,"list":[1],"obj":{}},
         "stageTimestamp":"2019-02-01T10:20:30.5\u005a","annotations":{"a":false}}
        """#

    @Test func scalarsAndRepeatedOrEscapedMembersReadAsTheTreeDoes() throws {
        let indexed = try #require(record(try AuditMapping.raw.event(fromJSON: Self.awkward, sourceID: "f:3")))
        let tree = try #require(record(try AuditMapping.raw.event(from: try JSONText.parse(Self.awkward), sourceID: "f:3")))
        #expect(indexed == tree)
        #expect(try AuditMapping.raw.event(fromJSON: Self.awkward).time
            == AuditMapping.parseRFC3339("2019-02-01T10:20:30.5Z"))
        #expect(indexed.string(at: ["verb"]) == "list")
        #expect(indexed.string(at: ["requestURI"]) == "/api/v1/pods?limit=5")
        #expect(indexed.scalarText(at: ["responseStatus", "code"]) == "403")
        #expect(indexed.integer(at: ["responseStatus", "code"]) == 403)
        #expect(indexed.scalarText(at: ["responseStatus", "reason"]) == "true")
        #expect(indexed.scalarText(at: ["annotations", "a"]) == "false")
        for key in ["code", "reason", "x", "big", "neg", "text", "no", "list", "obj", "missing"] {
            let path = ["responseStatus", key]
            #expect(indexed.scalarText(at: path) == tree.value(at: path)?.scalarText, "\(key)")
            #expect(indexed.integer(at: path) == tree.value(at: path)?.integerValue, "\(key)")
            #expect(indexed.scalarText(at: path) == tree.scalarText(at: path), "\(key)")
            #expect(indexed.scalarText(at: AuditFieldPath(path)) == tree.value(at: path)?.scalarText, "\(key)")
            #expect(indexed.integer(at: AuditFieldPath(path)) == tree.value(at: path)?.integerValue, "\(key)")
        }
        // Integers read straight from their digits: signs, zero, the 15-digit limit and beyond it.
        let numbers = #"{"verb":"get","responseStatus":{"a":0,"b":-0,"c":-12,"d":123456789012345,"e":1234567890123456,"f":-999999999999999,"g":12e1}}"#
        let numbered = try #require(record(try AuditMapping.raw.event(fromJSON: numbers)))
        let numberTree = try #require(record(try AuditMapping.raw.event(from: try JSONText.parse(numbers))))
        for key in ["a", "b", "c", "d", "e", "f", "g"] {
            let path = ["responseStatus", key]
            #expect(numbered.integer(at: AuditFieldPath(path)) == numberTree.value(at: path)?.integerValue, "\(key)")
            #expect(numbered.scalarText(at: AuditFieldPath(path)) == numberTree.value(at: path)?.scalarText, "\(key)")
        }
        #expect(numbered.integer(at: AuditFieldPath(["responseStatus", "c"])) == -12)
        #expect(indexed.scalarText(at: ["responseStatus", "x"]) == "1.5")
        #expect(indexed.integer(at: ["responseStatus", "text"]) == 12)
        #expect(indexed.integer(at: ["responseStatus", "big"]) == nil)
    }

    static let refused: [(AuditMapping, String)] = [
        (.raw, #"{"verb":"get""#), (.raw, "[1]"), (.raw, #"{"verb":7}"#), (.raw, #"{"kind":"Event"}"#),
        (.raw, #"{"verb":"get","user":"alice"}"#), (.raw, #"{"verb":"get","responseStatus":{"code":"403"}}"#),
        (.raw, #"{"verb":"get","requestObject":"{}"}"#), (.fluentd, #"{"verb":"get","requestObject":"{nope"}"#),
        (.raw, #"{"verb":"get","annotations":[]}"#), (.raw, #"{"verb":"get","stageTimestamp":"yesterday"}"#),
        (.fluentd, #"{"verb":"get","@timestamp":12}"#), (.elasticAgent, #"{"kubernetes":{"audit":"flat"}}"#),
        (.elasticAgent, #"{"other":1}"#), (.elasticAgent, #"{"kubernetes":{"audit":{"verb":"get","annotations":7}}}"#),
    ]

    @Test func refusedWithTheSameFieldAndMessage() {
        for (mapping, text) in Self.refused {
            let indexed = outcome { () throws(AuditMappingError) in try mapping.event(fromJSON: text) }
            // nil: the text itself is not JSON, so there is no tree to map.
            let tree: Result<Event, AuditMappingError>?
            if let value = try? JSONText.parse(text) {
                tree = outcome { () throws(AuditMappingError) in try mapping.event(from: value) }
            } else {
                tree = nil
            }
            guard case .failure(let actual) = indexed else {
                Issue.record("accepted: \(text)")
                continue
            }
            if let tree {
                guard case .failure(let expected) = tree else {
                    Issue.record("the tree mapping accepted: \(text)")
                    continue
                }
                #expect(actual.code == expected.code, "\(text)")
                #expect(actual.field == expected.field, "\(text)")
                #expect(actual.message == expected.message, "\(text)")
            } else {
                #expect(actual.code == .notJSON, "\(text)")
                #expect(actual.message.hasPrefix("document is not JSON: "), "\(actual.message)")
            }
        }
    }

    @Test func indexedRecordsCodeAndCompareAsTheirDocument() throws {
        let indexed = try #require(record(try AuditMapping.raw.event(fromJSON: Self.raw, sourceID: "f:2")))
        let data = try JSONEncoder().encode(indexed)
        let decoded = try JSONDecoder().decode(AuditRecord.self, from: data)
        #expect(!decoded.isIndexed)
        #expect(decoded == indexed)
        #expect(decoded.hashValue == indexed.hashValue)
        var changed = indexed
        changed.document = .object(["verb": .string("delete")])
        #expect(changed.string(at: ["verb"]) == "delete")
        #expect(changed != indexed)
    }
}
