public import Basics

/// A failed Kubernetes API request: the code is the reason (a metrics label), the message names what was asked,
/// the URL and what the server said.
public struct KubernetesAPIError: PatrolError {
    public enum Code: String, Sendable {
        /// No answer: connection refused, timeout, TLS failure, a connection closed mid-stream.
        case transport
        /// 401: the token is missing, expired or not accepted.
        case unauthorized
        /// 403: the service account lacks the RBAC permission.
        case forbidden
        /// 404: the object or resource does not exist (for a custom resource: the CRD is not installed).
        case notFound = "not_found"
        /// 410 (HTTP or a watch `ERROR` event): the resource version is too old; the client must list again.
        case gone
        case http4xx = "http_4xx"
        case http5xx = "http_5xx"
        /// The answer is not the JSON expected.
        case badJSON = "bad_json"
        /// The token file cannot be read.
        case token
    }
    public let code: Code
    public let message: String
    public let cause: Cause?
    /// What was being done (`list pods`, `watch runtimerulealertbindings`), for logs.
    public let what: String
    public let url: String

    public init(_ code: Code, what: String, url: String, _ message: String, cause: Cause? = nil) {
        self.code = code
        self.what = what
        self.url = url
        self.message = "\(what): \(message)"
        self.cause = cause
    }
}
