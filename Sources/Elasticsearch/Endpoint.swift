public import OutboundHTTP

/// Where an Elasticsearch cluster is and how to authenticate to it.
public struct ElasticsearchEndpoint: Sendable, Equatable {
    /// `http(s)://host:port` with an optional path prefix (a proxy's), no trailing slash.
    public var baseURL: String
    public var auth: HTTPAuth
    public var tls: TLSOptions

    public init(baseURL: String, auth: HTTPAuth = .none, tls: TLSOptions = TLSOptions()) {
        self.baseURL = baseURL
        self.auth = auth
        self.tls = tls
    }

    /// Accepts `http://host:port[/prefix]`, `https://...` and K8sCop's bare `host:port` (plain HTTP).
    /// Credentials in the URL (`https://user:pass@host:9200`) become basic auth.
    public static func parse(_ text: String, auth: HTTPAuth = .none, tls: TLSOptions = TLSOptions())
        throws(ElasticsearchError) -> ElasticsearchEndpoint
    {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw ElasticsearchError(.configuration, "the Elasticsearch address is empty") }
        var scheme = "http"
        var rest = Substring(trimmed)
        if let range = trimmed.range(of: "://") {
            scheme = trimmed[..<range.lowerBound].lowercased()
            rest = trimmed[range.upperBound...]
            guard scheme == "http" || scheme == "https" else {
                throw ElasticsearchError(
                    .configuration, "Elasticsearch address '\(text)': scheme must be http or https")
            }
        }
        var authority = rest
        var path = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[slash...]
        }
        var resolvedAuth = auth
        if let at = authority.lastIndex(of: "@") {
            let credentials = authority[..<at]
            authority = authority[authority.index(after: at)...]
            let pieces = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let user = String(pieces[0]).removingPercentEncoding ?? String(pieces[0])
            let password = pieces.count > 1 ? (String(pieces[1]).removingPercentEncoding ?? String(pieces[1])) : ""
            if resolvedAuth == .none { resolvedAuth = .basic(username: user, password: password) }
        }
        guard !authority.isEmpty else {
            throw ElasticsearchError(.configuration, "Elasticsearch address '\(text)' has no host")
        }
        // A bare host (no port) gets Elasticsearch's default port.
        let hasPort: Bool
        if authority.hasPrefix("[") {
            hasPort = authority.contains("]:")
        } else {
            hasPort = authority.contains(":")
        }
        if hasPort, let colon = authority.lastIndex(of: ":") {
            let port = authority[authority.index(after: colon)...]
            guard let number = Int(port), (1...65535).contains(number) else {
                throw ElasticsearchError(.configuration, "Elasticsearch address '\(text)': bad port '\(port)'")
            }
        }
        let hostPort = hasPort ? String(authority) : "\(authority):9200"
        while path.hasSuffix("/") { path = path.dropLast() }
        return ElasticsearchEndpoint(baseURL: "\(scheme)://\(hostPort)\(path)", auth: resolvedAuth, tls: tls)
    }
}
