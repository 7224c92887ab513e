public import EventModel

/// One search hit.
public struct SearchHit: Sendable, Equatable {
    public var index: String
    public var id: String
    /// The document; nil when the reply had none (`_source` disabled).
    public var source: JSONValue?
    /// The hit's sort values, the `search_after` of the next page (with PIT, `_shard_doc` last).
    public var sort: [JSONValue]
}

/// One page of results.
public struct SearchPage: Sendable {
    public var hits: [SearchHit]
    /// The point in time id to use for the next request (servers may renew it with every reply).
    public var pitID: String?
    public var scrollID: String?
}

extension ElasticsearchClient {
    /// `POST /<indices>/_search` (or `POST /_search` when `indices` is nil, as a PIT search must be).
    public func search(
        indices: String?, body: JSONValue, ignoreUnavailable: Bool = true, allowNoIndices: Bool = true,
        scroll: String? = nil
    ) async throws(ElasticsearchError) -> SearchPage {
        var query: [(String, String)] = []
        if indices != nil {
            query.append(("ignore_unavailable", ignoreUnavailable ? "true" : "false"))
            query.append(("allow_no_indices", allowNoIndices ? "true" : "false"))
        }
        if let scroll { query.append(("scroll", scroll)) }
        let path = indices.map { "/\(Self.segment($0))/_search" } ?? "/_search"
        return try Self.page(try await performJSON(.post, path, query: query, json: body), request: "POST \(path)")
    }

    /// Opens a point in time over `indices` (Elasticsearch `_pit`, OpenSearch `_search/point_in_time`).
    public func openPointInTime(
        indices: String, keepAlive: String, distribution: Distribution, ignoreUnavailable: Bool = true
    ) async throws(ElasticsearchError) -> String {
        let query = [("keep_alive", keepAlive), ("ignore_unavailable", ignoreUnavailable ? "true" : "false")]
        switch distribution {
        case .elasticsearch:
            let reply = try await perform(.post, "/\(Self.segment(indices))/_pit", query: query)
            guard let id = reply["id"]?.stringValue else {
                throw ElasticsearchError(.invalidResponse, "POST /\(indices)/_pit: reply has no id")
            }
            return id
        case .opensearch:
            let reply = try await perform(.post, "/\(Self.segment(indices))/_search/point_in_time", query: query)
            guard let id = reply["pit_id"]?.stringValue else {
                throw ElasticsearchError(
                    .invalidResponse, "POST /\(indices)/_search/point_in_time: reply has no pit_id")
            }
            return id
        }
    }

    /// Closes a point in time. A context already gone (404) counts as closed.
    public func closePointInTime(id: String, distribution: Distribution) async throws(ElasticsearchError) {
        do {
            switch distribution {
            case .elasticsearch:
                _ = try await performJSON(.delete, "/_pit", json: .object(["id": .string(id)]))
            case .opensearch:
                _ = try await performJSON(
                    .delete, "/_search/point_in_time", json: .object(["pit_id": .array([.string(id)])]))
            }
        } catch  where error.status == 404 {
            return
        }
    }

    /// The next page of a scroll.
    public func scroll(id: String, keepAlive: String) async throws(ElasticsearchError) -> SearchPage {
        let body: JSONValue = .object(["scroll": .string(keepAlive), "scroll_id": .string(id)])
        return try Self.page(
            try await performJSON(.post, "/_search/scroll", json: body), request: "POST /_search/scroll")
    }

    /// Frees a scroll context. One already gone (404) counts as cleared.
    public func clearScroll(id: String) async throws(ElasticsearchError) {
        do {
            _ = try await performJSON(.delete, "/_search/scroll", json: .object(["scroll_id": .array([.string(id)])]))
        } catch  where error.status == 404 {
            return
        }
    }

    static func page(_ reply: JSONValue, request: String) throws(ElasticsearchError) -> SearchPage {
        guard let hits = reply["hits"]?["hits"]?.arrayValue else {
            throw ElasticsearchError(.invalidResponse, "\(request): reply has no hits.hits")
        }
        var parsed: [SearchHit] = []
        parsed.reserveCapacity(hits.count)
        for hit in hits {
            guard let index = hit["_index"]?.stringValue, let id = hit["_id"]?.stringValue else {
                throw ElasticsearchError(.invalidResponse, "\(request): a hit has no _index or _id")
            }
            parsed.append(
                SearchHit(index: index, id: id, source: hit["_source"], sort: hit["sort"]?.arrayValue ?? []))
        }
        return SearchPage(
            hits: parsed, pitID: reply["pit_id"]?.stringValue, scrollID: reply["_scroll_id"]?.stringValue)
    }
}
