import Basics
import Foundation
public import Logging
import OutboundHTTP

/// GETs and watches against the Kubernetes API with a bearer token (re-read each request) and the API's CA.
///
/// Requests run on the HTTP client's own threads; a watch's bytes are handed from that thread to the caller's task
/// through an `AsyncStream`, so nothing blocks the cooperative pool.
public final class KubernetesAPIClient: Sendable {
    public let configuration: KubernetesAPIConfiguration
    private let http: HTTPClient

    /// `concurrentRequests`: each open watch holds one for as long as it lasts, so one more than the watches the
    /// caller keeps open at once (for GETs meanwhile).
    public init(
        configuration: KubernetesAPIConfiguration, concurrentRequests: Int = 2, userAgent: String, logger: Logger
    ) {
        self.configuration = configuration
        http = HTTPClient(
            configuration: .init(
                maxConcurrentRequests: max(1, concurrentRequests), defaultTimeout: configuration.requestTimeout,
                connectTimeout: min(configuration.requestTimeout, .seconds(5)),
                tls: TLSOptions(caFile: configuration.caFile), maxResponseBodySize: 64 << 20, userAgent: userAgent),
            logger: logger)
    }

    /// Closes connections and stops the client's threads; later requests fail as `transport`.
    public func shutdown() { http.shutdown() }

    /// GETs `path` (query included) and decodes the JSON answer.
    public func get<T: Decodable>(_ type: T.Type, path: String, what: String) async -> Result<T, KubernetesAPIError> {
        let url = configuration.baseURL + path
        let request: HTTPRequest
        switch makeRequest(url: url, what: what, timeout: nil) {
        case .success(let value): request = value
        case .failure(let error): return .failure(error)
        }
        let response: HTTPResponse
        do {
            response = try await http.send(request)
        } catch {
            return .failure(KubernetesAPIError(.transport, what: what, url: url, "\(error)", cause: .error(error)))
        }
        if let error = Self.statusError(response, what: what, url: url) { return .failure(error) }
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(response.body)))
        } catch {
            return .failure(
                KubernetesAPIError(
                    .badJSON, what: what, url: url,
                    "response is not the expected JSON (\(Self.snippet("\(error)"))): "
                        + Self.snippet(response.bodyText)))
        }
    }

    /// Opens a watch on `path` (query included) and calls `onLine` with each complete line of the body, in
    /// order, on the calling task, until the server ends the watch, the transfer fails, or `onLine` returns
    /// false. Returns nil when the watch ended (by the server or by `onLine`), else why it failed.
    public func watchLines(
        path: String, what: String, timeout: Duration, onLine: ([UInt8]) async -> Bool
    ) async -> KubernetesAPIError? {
        let url = configuration.baseURL + path
        let request: HTTPRequest
        switch makeRequest(url: url, what: what, timeout: timeout + configuration.requestTimeout) {
        case .success(let value): request = value
        case .failure(let error): return error
        }
        let (chunks, continuation) = AsyncStream<[UInt8]>.makeStream()
        let http = self.http
        // The transfer runs in a child task; leaving this scope early (onLine said stop) cancels it, and curl
        // aborts within about a second.
        async let outcome: Result<HTTPResponse, OutboundHTTPError> = {
            defer { continuation.finish() }
            do throws(OutboundHTTPError) {
                return .success(try await http.stream(request) { continuation.yield($0) })
            } catch {
                return .failure(error)
            }
        }()
        var buffer: [UInt8] = []
        for await chunk in chunks {
            buffer += chunk
            var start = 0
            while let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { continue }
                if !(await onLine(line)) { return nil }
            }
            buffer.removeFirst(start)
            // One event is one object: a line this long is not an event but a broken or hostile stream.
            if buffer.count > Self.maxLineBytes {
                return KubernetesAPIError(
                    .badJSON, what: what, url: url, "a watch line exceeds \(Self.maxLineBytes) bytes without a newline")
            }
        }
        switch await outcome {
        case .failure(let error):
            return KubernetesAPIError(.transport, what: what, url: url, "\(error)", cause: .error(error))
        case .success(let response):
            if let error = Self.statusError(response, what: what, url: url) { return error }
            // A last event without a trailing newline.
            if !buffer.isEmpty { _ = await onLine(buffer) }
            return nil
        }
    }

    /// The longest watch line accepted (the same bound as a whole list's body).
    static let maxLineBytes = 64 << 20

    private func makeRequest(url: String, what: String, timeout: Duration?) -> Result<HTTPRequest, KubernetesAPIError>
    {
        var request = HTTPRequest(method: .get, url: url, headers: ["Accept": "application/json"], timeout: timeout)
        if let tokenFile = configuration.tokenFile {
            // Read each time: the kubelet rotates projected service account tokens.
            guard let raw = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                return .failure(
                    KubernetesAPIError(.token, what: what, url: url, "cannot read token file \(tokenFile)"))
            }
            request.auth = .bearer(token: raw.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return .success(request)
    }

    private static func statusError(_ response: HTTPResponse, what: String, url: String) -> KubernetesAPIError? {
        guard !response.isSuccess else { return nil }
        let code: KubernetesAPIError.Code
        var hint = ""
        switch response.status {
        case 401:
            code = .unauthorized
            hint = " (token missing, expired or not accepted)"
        case 403:
            code = .forbidden
            hint = " (the service account lacks this permission; see docs/kubernetes.md for the RBAC rules)"
        case 404: code = .notFound
        case 410: code = .gone
        case 500...: code = .http5xx
        default: code = .http4xx
        }
        return KubernetesAPIError(
            code, what: what, url: url, "HTTP \(response.status)\(hint): \(snippet(response.bodyText))")
    }

    static func snippet(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count <= 200 ? flat : String(flat.prefix(200)) + "…"
    }

    /// Characters a query value may hold unescaped.
    public static let queryValueAllowed: CharacterSet = {
        var set = CharacterSet.urlQueryAllowed
        set.remove(charactersIn: "&=+#")
        return set
    }()

    /// `value` escaped for a query string.
    public static func queryValue(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: queryValueAllowed) ?? value
    }
}
