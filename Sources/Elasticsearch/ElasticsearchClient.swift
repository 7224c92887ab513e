public import EventModel
public import Logging
public import OutboundHTTP

/// A client for the parts of the Elasticsearch (and OpenSearch) REST API that Patrol uses.
///
/// Requests go through `OutboundHTTP.HTTPClient`, whose transfers run on its own threads, never on
/// the cooperative pool. Any error status becomes an `ElasticsearchError` carrying the server's
/// error type and reason; whether to retry is the caller's decision (`isRetryable`).
public final class ElasticsearchClient: Sendable {
    public enum Distribution: String, Sendable {
        case elasticsearch
        case opensearch
    }

    public struct ClusterInfo: Sendable, Equatable {
        public var distribution: Distribution
        public var version: String
        /// Point in time exists on Elasticsearch 7.10+ and OpenSearch 2.4+; older servers need scroll.
        public var supportsPointInTime: Bool
    }

    public let endpoint: ElasticsearchEndpoint
    private let http: HTTPClient
    private let logger: Logger

    public init(
        endpoint: ElasticsearchEndpoint, timeout: Duration = .seconds(30), maxConcurrentRequests: Int = 2,
        logger: Logger = Logger(label: "patrol.elasticsearch")
    ) {
        self.endpoint = endpoint
        self.logger = logger
        self.http = HTTPClient(
            configuration: HTTPClient.Configuration(
                maxConcurrentRequests: maxConcurrentRequests, defaultTimeout: timeout, auth: endpoint.auth,
                tls: endpoint.tls, defaultHeaders: ["Accept": "application/json"]),
            logger: logger)
    }

    deinit { http.shutdown() }

    public func shutdown() { http.shutdown() }

    // MARK: - raw requests

    /// Sends one request and returns the parsed JSON reply; an error status throws with the envelope's
    /// type and reason. `path` starts with `/`; query values are percent-encoded here.
    public func perform(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: [UInt8]? = nil,
        contentType: String = "application/json"
    ) async throws(ElasticsearchError) -> JSONValue {
        var url = endpoint.baseURL + path
        if !query.isEmpty {
            url += "?" + query.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
        }
        var request = HTTPRequest(method: method, url: url)
        if let body {
            request.body = body
            request.headers["Content-Type"] = contentType
        }
        let label = "\(method) \(path)"
        let response: HTTPResponse
        do {
            response = try await http.send(request)
        } catch {
            let code: ElasticsearchError.Code = error.code == .invalidRequest ? .configuration : .transport
            throw ElasticsearchError(code, "\(label): \(error.message)", cause: .error(error))
        }
        guard response.isSuccess else {
            throw ElasticsearchError.fromReply(status: response.status, body: response.body, request: label)
        }
        if response.body.isEmpty || method == .head { return .object([:]) }
        guard let value = JSONValue.parse(response.body) else {
            throw ElasticsearchError(.invalidResponse, "\(label): reply is not JSON", status: response.status)
        }
        return value
    }

    func performJSON(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], json: JSONValue)
        async throws(ElasticsearchError) -> JSONValue
    {
        try await perform(method, path, query: query, body: Array(json.jsonText.utf8))
    }

    static func encode(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: "*"), UInt8(ascii: ","):
                output.unicodeScalars.append(UnicodeScalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                output += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return output
    }

    /// An index name or expression as a path segment.
    static func segment(_ index: String) -> String { encode(index) }

    // MARK: - cluster

    /// `GET /`: which distribution and version answers.
    public func info() async throws(ElasticsearchError) -> ClusterInfo {
        let reply = try await perform(.get, "/")
        guard let number = reply["version"]?["number"]?.stringValue else {
            throw ElasticsearchError(.invalidResponse, "GET /: reply has no version.number")
        }
        let distribution: Distribution =
            reply["version"]?["distribution"]?.stringValue == "opensearch" ? .opensearch : .elasticsearch
        let parts = number.split(separator: ".").compactMap { Int($0.prefix { $0.isNumber }) }
        let major = parts.first ?? 0
        let minor = parts.count > 1 ? parts[1] : 0
        let pit: Bool
        switch distribution {
        case .elasticsearch: pit = major > 7 || (major == 7 && minor >= 10)
        case .opensearch: pit = major > 2 || (major == 2 && minor >= 4)
        }
        return ClusterInfo(distribution: distribution, version: number, supportsPointInTime: pit)
    }

    /// `PUT /_index_template/<name>`.
    public func putIndexTemplate(name: String, body: JSONValue) async throws(ElasticsearchError) {
        _ = try await performJSON(.put, "/_index_template/\(Self.encode(name))", json: body)
    }

    /// Whether a concrete index exists (`HEAD /<index>`).
    public func indexExists(_ index: String) async throws(ElasticsearchError) -> Bool {
        do {
            _ = try await perform(.head, "/\(Self.segment(index))")
            return true
        } catch  where error.status == 404 {
            return false
        }
    }
}
