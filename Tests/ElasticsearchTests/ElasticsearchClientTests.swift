import Elasticsearch
import EventModel
import Foundation
import OutboundHTTP
import TestSupport
import Testing

@Suite struct ElasticsearchEndpointTests {
    @Test func acceptsK8sCopHostPortAndURLs() throws {
        #expect(try ElasticsearchEndpoint.parse("10.0.0.5:9200").baseURL == "http://10.0.0.5:9200")
        #expect(try ElasticsearchEndpoint.parse("es.local").baseURL == "http://es.local:9200")
        #expect(try ElasticsearchEndpoint.parse("https://es.local:9243/").baseURL == "https://es.local:9243")
        #expect(try ElasticsearchEndpoint.parse("https://proxy/es/").baseURL == "https://proxy:9200/es")
        let withUser = try ElasticsearchEndpoint.parse("https://elastic:s%3Acret@es.local:9200")
        #expect(withUser.baseURL == "https://es.local:9200")
        #expect(withUser.auth == .basic(username: "elastic", password: "s:cret"))
        #expect(throws: ElasticsearchError.self) { try ElasticsearchEndpoint.parse("ftp://es.local") }
        #expect(throws: ElasticsearchError.self) { try ElasticsearchEndpoint.parse("es.local:99999") }
        #expect(throws: ElasticsearchError.self) { try ElasticsearchEndpoint.parse("") }
    }
}

@Suite struct ElasticsearchClientTests {
    @Test func detectsDistributionAndPointInTimeSupport() async throws {
        for (flavor, distribution, pit) in [
            (ElasticsearchTestServer.Flavor.elasticsearch(), ElasticsearchClient.Distribution.elasticsearch, true),
            (.opensearch(), .opensearch, true), (.elasticsearchWithoutPIT(), .elasticsearch, false),
        ] {
            let server = try ElasticsearchTestServer(flavor: flavor)
            defer { server.stop() }
            let client = ElasticsearchClient(endpoint: try .parse(server.hostPort))
            let info = try await client.info()
            #expect(info.distribution == distribution)
            #expect(info.supportsPointInTime == pit)
        }
    }

    @Test func errorEnvelopeIsParsedInBothShapes() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let client = ElasticsearchClient(endpoint: try .parse(server.baseURL))
        do {
            _ = try await client.search(indices: "missing-2024.03.01", body: .object([:]), ignoreUnavailable: false)
            Issue.record("expected index_not_found_exception")
        } catch {
            #expect(error.code == .status)
            #expect(error.status == 404)
            #expect(error.type == "index_not_found_exception")
            #expect(error.reason == "no such index [missing-2024.03.01]")
            #expect(!error.isRetryable)
        }
        server.inject(.status(503, plainStringError: true))
        do {
            _ = try await client.info()
            Issue.record("expected 503")
        } catch {
            #expect(error.status == 503)
            #expect(error.type == nil)
            #expect(error.reason?.contains("unavailable_shards_exception") == true)
            #expect(error.isRetryable)
        }
        server.inject(.status(429))
        await #expect {
            _ = try await client.info()
        } throws: { error in
            (error as? ElasticsearchError)?.isRetryable == true
                && (error as? ElasticsearchError)?.type == "es_rejected_execution_exception"
        }
        // Twice: curl re-sends once by itself when a reused connection closes without an answer.
        server.inject(.drop, count: 2)
        await #expect {
            _ = try await client.info()
        } throws: { error in
            (error as? ElasticsearchError)?.code == .transport && (error as? ElasticsearchError)?.isRetryable == true
        }
    }

    @Test func authenticationSchemes() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let cases: [(HTTPAuth, String)] = [
            (.basic(username: "elastic", password: "changeme"), "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="),
            (.apiKey("aWQ6a2V5"), "ApiKey aWQ6a2V5"),
            (.bearer(token: "tok"), "Bearer tok"),
        ]
        for (auth, header) in cases {
            server.requireAuthorization(header)
            let client = ElasticsearchClient(endpoint: try .parse(server.baseURL, auth: auth))
            #expect(try await client.info().distribution == .elasticsearch)
            let anonymous = ElasticsearchClient(endpoint: try .parse(server.baseURL))
            await #expect(throws: ElasticsearchError.self) { _ = try await anonymous.info() }
        }
    }

    @Test func bulkItemsComeBackInOrder() async throws {
        let server = try ElasticsearchTestServer()
        defer { server.stop() }
        let client = ElasticsearchClient(endpoint: try .parse(server.hostPort))
        let operations = (0..<3).map {
            BulkOperation(
                .create, index: "alerts-2024.03.01", id: "id\($0)", document: .object(["n": .number(Double($0))]))
        }
        let first = try await client.bulk(operations)
        #expect(first.map(\.status) == [201, 201, 201])
        server.rejectBulkItems(1)
        let second = try await client.bulk(
            operations + [BulkOperation(.create, index: "BAD", id: "x", document: .object([:]))])
        #expect(second.map(\.status) == [429, 409, 409, 400])
        #expect(second[0].isRetryable)
        #expect(!second[1].isRetryable)
        #expect(second[3].errorType == "invalid_index_name_exception")
        #expect(second.map(\.id) == ["id0", "id1", "id2", "x"])
    }

    @Test func pointInTimeAndScrollRoundTrips() async throws {
        for flavor in [ElasticsearchTestServer.Flavor.elasticsearch(), .opensearch()] {
            let server = try ElasticsearchTestServer(flavor: flavor)
            defer { server.stop() }
            for second in 0..<5 {
                server.add(.object(["@timestamp": .string("2024-03-01T00:00:0\(second)Z")]), index: "logs-2024.03.01")
            }
            let client = ElasticsearchClient(endpoint: try .parse(server.baseURL))
            let info = try await client.info()
            var pit = try await client.openPointInTime(
                indices: "logs-*", keepAlive: "1m", distribution: info.distribution)
            var after: [JSONValue]?
            var seen = 0
            while true {
                var body: [String: JSONValue] = [
                    "size": .number(2), "pit": .object(["id": .string(pit), "keep_alive": .string("1m")]),
                    "sort": .array([.object(["@timestamp": .string("asc")])]),
                ]
                if let after { body["search_after"] = .array(after) }
                let page = try await client.search(indices: nil, body: .object(body))
                pit = page.pitID ?? pit
                guard let last = page.hits.last else { break }
                seen += page.hits.count
                after = last.sort
            }
            #expect(seen == 5)
            #expect(server.count("pit.stale") == 0)
            try await client.closePointInTime(id: pit, distribution: info.distribution)
            #expect(server.openContexts.pits == 0)
        }

        let server = try ElasticsearchTestServer(flavor: .elasticsearchWithoutPIT())
        defer { server.stop() }
        for second in 0..<5 { server.add(.object(["n": .number(Double(second))]), index: "logs") }
        let client = ElasticsearchClient(endpoint: try .parse(server.baseURL))
        var page = try await client.search(
            indices: "logs", body: .object(["size": .number(2), "sort": .array([.string("n")])]), scroll: "1m")
        var values = page.hits.compactMap { $0.source?["n"]?.intValue }
        let scrollID = try #require(page.scrollID)
        repeat {
            page = try await client.scroll(id: scrollID, keepAlive: "1m")
            values += page.hits.compactMap { $0.source?["n"]?.intValue }
        } while !page.hits.isEmpty
        #expect(values == [0, 1, 2, 3, 4])
        try await client.clearScroll(id: scrollID)
        #expect(server.openContexts.scrolls == 0)
    }
}
