import Basics
import Logging
public import OutboundHTTP

/// Where an HTTP sink (Alertmanager, webhook) sends, and how: URL, authentication, TLS, extra headers.
public struct HTTPSinkTarget: Sendable, Equatable {
    /// An absolute `http` or `https` URL, checked by `HTTPSinkTarget.checkURL` at start-up.
    public var url: String
    public var auth: HTTPAuth
    public var tls: TLSOptions
    /// Sent with every request (e.g. a tenant or API-key header).
    public var headers: HTTPHeaders
    /// Whole-request timeout; a hung receiver then counts as a failed attempt and is retried.
    public var timeout: Duration

    public init(
        url: String, auth: HTTPAuth = .none, tls: TLSOptions = TLSOptions(), headers: HTTPHeaders = HTTPHeaders(),
        timeout: Duration = .seconds(10)
    ) {
        self.url = url
        self.auth = auth
        self.tls = tls
        self.headers = headers
        self.timeout = timeout
    }

    /// The client one sink uses: one request at a time, so batches arrive in outbox order.
    func makeClient(logger: Logger) -> HTTPClient {
        HTTPClient(
            configuration: .init(
                maxConcurrentRequests: 1, defaultTimeout: timeout, connectTimeout: min(timeout, .seconds(5)),
                auth: auth, tls: tls, defaultHeaders: headers, userAgent: "patrol/\(PatrolVersion.current)"),
            logger: logger)
    }

    /// Why `text` is not a usable `http(s)://host[:port][/path]` URL, or nil when it is. Checked at
    /// start-up so that a typo stops the collector with the setting's name instead of failing every send.
    public static func problem(withURL text: String) -> String? {
        guard let range = text.range(of: "://") else { return "'\(text)' is not a URL (expected http(s)://host:port)" }
        let scheme = text[..<range.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else {
            return "'\(text)': scheme must be http or https, not '\(scheme)'"
        }
        let rest = text[range.upperBound...]
        var authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if authority.contains(where: { $0 == " " || $0 == "\t" }) { return "'\(text)': the host contains a space" }
        var host = authority
        var port: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return "'\(text)': unclosed IPv6 address" }
            host = authority[...close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                port = after.dropFirst()
            } else if !after.isEmpty {
                return "'\(text)': unexpected text after the IPv6 address"
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            port = authority[authority.index(after: colon)...]
        }
        guard !host.isEmpty else { return "'\(text)' has no host" }
        if let port {
            guard let number = Int(port), (1...65535).contains(number) else {
                return "'\(text)': bad port '\(port)'"
            }
        }
        return nil
    }

    /// The URL without trailing slashes, so a path can be appended.
    static func trimmed(_ url: String) -> String {
        var url = Substring(url)
        while url.hasSuffix("/") { url = url.dropLast() }
        return String(url)
    }
}

extension AlertSinksError {
    /// A failed POST as a sink error: no answer (refused, timeout, TLS) is `.unavailable`, as are 429 and
    /// 5xx; other statuses are `.rejected`. The message carries the URL and curl's or the server's words.
    static func http(_ what: String, response: HTTPResponse) -> AlertSinksError {
        let retryable = response.status == 429 || response.status >= 500
        var body = response.bodyText
        if body.count > 300 { body = String(body.prefix(300)) + "…" }
        return AlertSinksError(
            retryable ? .unavailable : .rejected, "\(what) answered HTTP \(response.status): \(body)")
    }

    static func http(_ what: String, error: OutboundHTTPError) -> AlertSinksError {
        AlertSinksError(.unavailable, "\(what) failed (\(error.code.rawValue)): \(error.message)", cause: .error(error))
    }
}
