import EventModel
import Foundation
import OutboundHTTP
import TestSupport
import Testing

/// The Elasticsearch test server answers as REFERENCE §9 describes a real cluster: these tests pin
/// the behaviour other tests rely on, over real HTTP on loopback.
@Suite struct ElasticsearchTestServerTests {
    let http = HTTPClient()

    func call(_ server: ElasticsearchTestServer, _ method: HTTPMethod, _ path: String, _ body: String? = nil)
        async throws -> (status: Int, json: JSONValue?, headers: HTTPHeaders)
    {
        var request = HTTPRequest(method: method, url: server.baseURL + path)
        if let body {
            request.body = Array(body.utf8)
            request.headers["Content-Type"] = path.contains("_bulk") ? "application/x-ndjson" : "application/json"
        }
        let response = try await http.send(request)
        return (response.status, JSONValue.parse(response.body), response.headers)
    }

    static func doc(_ time: String, _ verb: String = "get") -> JSONValue {
        .object(["@timestamp": .string(time), "verb": .string(verb), "origin": .string("audit")])
    }

    @Test func infoInBothFlavours() async throws {
        let elastic = try ElasticsearchTestServer()
        defer { elastic.stop() }
        let reply = try await call(elastic, .get, "/")
        #expect(reply.status == 200)
        #expect(reply.headers["X-Elastic-Product"] == "Elasticsearch")
        #expect(reply.json?["version"]?["number"]?.stringValue == "8.13.0")
        #expect(reply.json?["version"]?["distribution"] == nil)

        let open = try ElasticsearchTestServer(flavor: .opensearch())
        defer { open.stop() }
        let openReply = try await call(open, .get, "/")
        #expect(openReply.headers["X-Elastic-Product"] == nil)
        #expect(openReply.json?["version"]?["distribution"]?.stringValue == "opensearch")
    }

    @Test func bulkReportsItemsInOrderWithConflictsAndRejections() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let body = """
            {"create":{"_index":"alerts-2024.03.01","_id":"a"}}
            {"n":1}
            {"create":{"_index":"alerts-2024.03.01","_id":"b"}}
            {"n":2}

            """
        let first = try await call(server, .post, "/_bulk", body)
        #expect(first.status == 200)
        #expect(first.json?["errors"] == .bool(false))
        #expect(first.json?["items"]?.arrayValue?.compactMap { $0["create"]?["status"]?.intValue } == [201, 201])

        // The first item is rejected with 429 (not stored), the existing id is a 409, the new one is created;
        // the request as a whole is still 200.
        server.rejectBulkItems(1)
        let again = body + "{\"create\":{\"_index\":\"alerts-2024.03.01\",\"_id\":\"c\"}}\n{\"n\":3}\n"
        let second = try await call(server, .post, "/_bulk", again)
        #expect(second.status == 200)
        #expect(second.json?["errors"] == .bool(true))
        let items = second.json?["items"]?.arrayValue ?? []
        #expect(items.compactMap { $0["create"]?["status"]?.intValue } == [429, 409, 201])
        #expect(items.first?["create"]?["error"]?["type"]?.stringValue == "es_rejected_execution_exception")
        #expect(items[1]["create"]?["error"]?["type"]?.stringValue == "version_conflict_engine_exception")
        #expect(server.documents(in: "alerts-2024.03.01").map(\.id) == ["a", "b", "c"])
        #expect(server.count("bulk.rejected") == 1)

        // Not a JSON object, and an invalid index name: 400 items.
        let bad = "{\"create\":{\"_index\":\"x\",\"_id\":\"d\"}}\nnot json\n{\"index\":{\"_index\":\"Upper\"}}\n{}\n"
        let third = try await call(server, .post, "/_bulk", bad)
        #expect(
            third.json?["items"]?.arrayValue?.compactMap { $0.objectValue?.values.first?["status"]?.intValue } == [
                400, 400,
            ])

        // The NDJSON must end with a newline.
        let unterminated = try await call(server, .post, "/_bulk", "{\"index\":{\"_index\":\"x\"}}\n{}")
        #expect(unterminated.status == 400)
        #expect(unterminated.json?["error"]?["type"]?.stringValue == "illegal_argument_exception")
    }

    @Test func searchFiltersSortsAndPagesWithSearchAfter() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        server.add(Self.doc("2024-03-01T23:59:59.999Z"), index: "logstash-2024.03.01", id: "late")
        server.add(Self.doc("2024-03-01T00:00:00Z"), index: "logstash-2024.03.01", id: "edge")
        server.add(Self.doc("2024-03-02T00:00:00Z"), index: "logstash-2024.03.02", id: "next-edge")
        server.add(Self.doc("2024-03-01T12:00:00Z", "list"), index: "logstash-2024.03.01", id: "noon")
        let query = """
            {"size":2,"track_total_hits":false,"sort":[{"@timestamp":"asc"}],
             "query":{"bool":{"filter":[{"range":{"@timestamp":{"gte":"2024-03-01T00:00:00Z","lt":"2024-03-02T00:00:00Z"}}},
             {"term":{"origin":"audit"}}]}}}
            """
        let first = try await call(server, .post, "/logstash-*/_search", query)
        #expect(first.status == 200)
        #expect(first.json?["hits"]?["total"] == nil)
        let hits = first.json?["hits"]?["hits"]?.arrayValue ?? []
        #expect(hits.compactMap { $0["_id"]?.stringValue } == ["edge", "noon"])
        // Dates sort as epoch milliseconds.
        #expect(hits.last?["sort"] == .array([.number(1_709_294_400_000)]))
        let after = try #require(hits.last?["sort"]).jsonText
        let nextQuery = query.replacingOccurrences(of: "\"size\":2", with: "\"size\":2,\"search_after\":\(after)")
        let second = try await call(server, .post, "/logstash-*/_search", nextQuery)
        // Half-open: the last millisecond of the day is in, the next midnight is not.
        #expect(second.json?["hits"]?["hits"]?.arrayValue?.compactMap { $0["_id"]?.stringValue } == ["late"])

        let listOnly = try await call(
            server, .post, "/logstash-2024.03.01/_search", "{\"query\":{\"term\":{\"verb\":\"list\"}}}")
        #expect(listOnly.json?["hits"]?["total"]?["value"]?.intValue == 1)

        let window = try await call(server, .post, "/logstash-*/_search", "{\"from\":9999,\"size\":2}")
        #expect(window.status == 400)
    }

    @Test func missingIndicesFollowIgnoreUnavailable() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        server.add(Self.doc("2024-03-01T01:00:00Z"), index: "logstash-2024.03.01", id: "one")
        let strict = try await call(server, .post, "/logstash-2024.03.01,logstash-2024.03.02/_search", "{}")
        #expect(strict.status == 404)
        #expect(strict.json?["error"]?["type"]?.stringValue == "index_not_found_exception")
        #expect(
            strict.json?["error"]?["root_cause"]?.arrayValue?.first?["type"]?.stringValue == "index_not_found_exception"
        )
        #expect(strict.json?["status"]?.intValue == 404)
        let lenient = try await call(
            server, .post, "/logstash-2024.03.01,logstash-2024.03.02/_search?ignore_unavailable=true", "{}")
        #expect(lenient.status == 200)
        #expect(lenient.json?["hits"]?["hits"]?.arrayValue?.count == 1)
        let noneAllowed = try await call(server, .post, "/nothing-*/_search?allow_no_indices=false", "{}")
        #expect(noneAllowed.status == 404)
        let noneFine = try await call(server, .post, "/nothing-*/_search", "{}")
        #expect(noneFine.status == 200)
    }

    @Test func pointInTimeSeesASnapshotAndRenewsItsId() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        for second in 0..<3 {
            server.add(Self.doc("2024-03-01T00:00:0\(second)Z"), index: "logs-2024.03.01", id: "d\(second)")
        }
        let opened = try await call(server, .post, "/logs-*/_pit?keep_alive=1m")
        let pit = try #require(opened.json?["id"]?.stringValue)
        server.add(Self.doc("2024-03-01T00:00:09Z"), index: "logs-2024.03.01", id: "after-open")

        let withIndex = try await call(server, .post, "/logs-*/_search", "{\"pit\":{\"id\":\"\(pit)\"}}")
        #expect(withIndex.status == 400)

        let body = "{\"size\":2,\"pit\":{\"id\":\"\(pit)\",\"keep_alive\":\"1m\"},\"sort\":[{\"@timestamp\":\"asc\"}]}"
        let first = try await call(server, .post, "/_search", body)
        let hits = first.json?["hits"]?["hits"]?.arrayValue ?? []
        #expect(hits.compactMap { $0["_id"]?.stringValue } == ["d0", "d1"])
        // The implicit _shard_doc tiebreaker is the second sort value.
        #expect(hits.first?["sort"]?.arrayValue?.count == 2)
        let renewed = try #require(first.json?["pit_id"]?.stringValue)
        #expect(renewed != pit)
        let after = try #require(hits.last?["sort"]).jsonText
        let second = try await call(
            server, .post, "/_search",
            "{\"size\":5,\"pit\":{\"id\":\"\(renewed)\"},\"sort\":[{\"@timestamp\":\"asc\"}],\"search_after\":\(after)}"
        )
        // The document written after the PIT was opened is not in it.
        #expect(second.json?["hits"]?["hits"]?.arrayValue?.compactMap { $0["_id"]?.stringValue } == ["d2"])
        #expect(server.count("pit.stale") == 0)

        #expect(server.openContexts.pits == 1)
        let closed = try await call(server, .delete, "/_pit", "{\"id\":\"\(renewed)\"}")
        #expect(closed.json?["succeeded"] == .bool(true))
        #expect(server.openContexts.pits == 0)
        let gone = try await call(server, .post, "/_search", body)
        #expect(gone.status == 404)
        #expect(gone.json?["error"]?["type"]?.stringValue == "search_context_missing_exception")
    }

    @Test func openSearchPointInTimeEndpoints() async throws {
        let server = try ElasticsearchTestServer(flavor: .opensearch())
        defer { server.stop() }
        server.add(Self.doc("2024-03-01T00:00:00Z"), index: "logs-2024.03.01", id: "a")
        let esStyle = try await call(server, .post, "/logs-*/_pit?keep_alive=1m")
        #expect(esStyle.status == 400)
        #expect(esStyle.json?["error"]?.stringValue != nil)
        let opened = try await call(server, .post, "/logs-*/_search/point_in_time?keep_alive=1m")
        let pit = try #require(opened.json?["pit_id"]?.stringValue)
        let page = try await call(server, .post, "/_search", "{\"pit\":{\"id\":\"\(pit)\"},\"sort\":[\"@timestamp\"]}")
        #expect(page.json?["hits"]?["hits"]?.arrayValue?.count == 1)
        let latest = try #require(page.json?["pit_id"]?.stringValue)
        let closed = try await call(server, .delete, "/_search/point_in_time", "{\"pit_id\":[\"\(latest)\"]}")
        #expect(closed.json?["pits"]?.arrayValue?.first?["successful"] == .bool(true))
        #expect(server.openContexts.pits == 0)
    }

    @Test func scrollPagesThroughEverythingOnce() async throws {
        let server = try ElasticsearchTestServer(flavor: .elasticsearchWithoutPIT())
        defer { server.stop() }
        for minute in 0..<5 {
            server.add(Self.doc("2024-03-01T00:0\(minute):00Z"), index: "logs-2024.03.01", id: "m\(minute)")
        }
        let noPIT = try await call(server, .post, "/logs-*/_pit?keep_alive=1m")
        #expect(noPIT.status == 400)
        let first = try await call(
            server, .post, "/logs-*/_search?scroll=1m", "{\"size\":2,\"sort\":[{\"@timestamp\":\"asc\"}]}")
        var ids = first.json?["hits"]?["hits"]?.arrayValue?.compactMap { $0["_id"]?.stringValue } ?? []
        let scrollID = try #require(first.json?["_scroll_id"]?.stringValue)
        while true {
            let next = try await call(
                server, .post, "/_search/scroll", "{\"scroll\":\"1m\",\"scroll_id\":\"\(scrollID)\"}")
            let page = next.json?["hits"]?["hits"]?.arrayValue?.compactMap { $0["_id"]?.stringValue } ?? []
            if page.isEmpty { break }
            ids += page
        }
        #expect(ids == ["m0", "m1", "m2", "m3", "m4"])
        let cleared = try await call(server, .delete, "/_search/scroll", "{\"scroll_id\":[\"\(scrollID)\"]}")
        #expect(cleared.json?["num_freed"]?.intValue == 1)
        #expect(server.openContexts.scrolls == 0)
    }

    @Test func documentsAreSearchableOnlyAfterRefresh() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        server.setRefreshInterval(.seconds(3600))
        _ = try await call(server, .post, "/_bulk", "{\"index\":{\"_index\":\"logs\",\"_id\":\"x\"}}\n{\"a\":1}\n")
        let before = try await call(server, .post, "/logs/_search", "{}")
        #expect(before.json?["hits"]?["hits"]?.arrayValue?.isEmpty == true)
        _ = try await call(server, .post, "/logs/_refresh")
        let after = try await call(server, .post, "/logs/_search", "{}")
        #expect(after.json?["hits"]?["hits"]?.arrayValue?.count == 1)
        // ?refresh=wait_for makes the write visible before the reply.
        _ = try await call(
            server, .post, "/_bulk?refresh=wait_for", "{\"index\":{\"_index\":\"logs\",\"_id\":\"y\"}}\n{\"a\":2}\n")
        let waited = try await call(server, .post, "/logs/_search", "{}")
        #expect(waited.json?["hits"]?["hits"]?.arrayValue?.count == 2)
    }

    @Test func indexTemplatesApplyToNewIndices() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let missing = try await call(server, .put, "/_index_template/bad", "{\"template\":{}}")
        #expect(missing.status == 400)
        let put = try await call(
            server, .put, "/_index_template/patrol-alerts", "{\"index_patterns\":[\"alerts-*\"],\"template\":{}}")
        #expect(put.json?["acknowledged"] == .bool(true))
        _ = try await call(
            server, .post, "/_bulk", "{\"create\":{\"_index\":\"alerts-2024.03.01\",\"_id\":\"1\"}}\n{}\n")
        #expect(server.template(ofIndex: "alerts-2024.03.01") == "patrol-alerts")
        let fetched = try await call(server, .get, "/_index_template/patrol-alerts")
        #expect(fetched.json?["index_templates"]?.arrayValue?.count == 1)
    }

    @Test func injectedFaults() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        server.inject(.status(429), pathContains: "_bulk")
        server.inject(.status(503, plainStringError: true), pathContains: "_bulk")
        // curl silently re-sends a request once when a kept-alive connection closes without an answer, so
        // a client only sees a dropped connection when the retry is dropped too.
        server.inject(.drop, count: 2, pathContains: "_bulk")
        let rejected = try await call(server, .post, "/_bulk", "{\"index\":{\"_index\":\"x\"}}\n{}\n")
        #expect(rejected.status == 429)
        #expect(rejected.json?["error"]?["type"]?.stringValue == "es_rejected_execution_exception")
        let unavailable = try await call(server, .post, "/_bulk", "{\"index\":{\"_index\":\"x\"}}\n{}\n")
        #expect(unavailable.status == 503)
        #expect(unavailable.json?["error"]?.stringValue != nil)
        await #expect(throws: OutboundHTTPError.self) {
            _ = try await call(server, .post, "/_bulk", "{\"index\":{\"_index\":\"x\"}}\n{}\n")
        }
        // Faults only matched their path; nothing was stored by the failed requests.
        #expect(server.documents(in: "x").isEmpty)
        let fine = try await call(server, .post, "/_bulk", "{\"index\":{\"_index\":\"x\"}}\n{}\n")
        #expect(fine.status == 200)
        #expect(server.documents(in: "x").count == 1)

        server.requireAuthorization("ApiKey abc")
        let unauthenticated = try await call(server, .get, "/")
        #expect(unauthenticated.status == 401)
        #expect(unauthenticated.json?["error"]?["type"]?.stringValue == "security_exception")
    }
}
