import Foundation

/// Where a Patrol component finds the Kubernetes API, and how it keeps its lists and watches.
///
/// Either explicit (`--kube-api`, `--kube-token-file`, `--kube-ca-file`) or the in-cluster defaults a pod gets:
/// `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT` and the service account's token and CA. Without either the
/// component runs without the API (the sensor: identity from the runtime's annotations only; the collector:
/// bindings from patrolctl and files only).
public struct KubernetesAPIConfiguration: Sendable, Equatable {
    /// `https://host:port` (or `http://` for tests and local proxies such as `kubectl proxy`), no trailing slash.
    public var baseURL: String
    /// A bearer token file, read again before every request because kubelets rotate projected tokens (about
    /// hourly).
    public var tokenFile: String?
    /// The CA bundle the API server's certificate must chain to; nil uses the system store.
    public var caFile: String?
    /// The node whose pods the sensor watches (`spec.nodeName`); empty for the collector.
    public var nodeName: String
    /// Time between full re-lists even while the watch is healthy: a safety net against a watch that silently
    /// missed something (an API server bug, a proxy dropping a message). Changes arrive through the watch within
    /// moments; this only bounds how long a missed one could stay wrong.
    public var listInterval: Duration
    /// How long the API server keeps one watch open (`timeoutSeconds`) before the client re-watches from the last
    /// resource version it saw. Kubernetes' own clients use five to ten minutes.
    public var watchTimeout: Duration
    /// Per request (a list or a GET); a watch gets `watchTimeout` plus this.
    public var requestTimeout: Duration
    /// First wait after a failed list or watch, doubled on each further failure up to `maxRetryDelay`.
    public var retryDelay: Duration
    public var maxRetryDelay: Duration

    /// The service account directory every pod gets.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"
    /// Bounds on `listInterval`, so a typo can neither hammer the API server nor turn the safety net off.
    public static let listIntervalBounds: ClosedRange<Duration> = .seconds(1)...Duration.seconds(3600)

    public init(
        baseURL: String, tokenFile: String? = nil, caFile: String? = nil, nodeName: String = "",
        listInterval: Duration = .seconds(600), watchTimeout: Duration = .seconds(300),
        requestTimeout: Duration = .seconds(10), retryDelay: Duration = .seconds(1),
        maxRetryDelay: Duration = .seconds(30)
    ) {
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
        self.tokenFile = tokenFile
        self.caFile = caFile
        self.nodeName = nodeName
        self.listInterval = min(
            max(listInterval, Self.listIntervalBounds.lowerBound), Self.listIntervalBounds.upperBound)
        self.watchTimeout = max(watchTimeout, .seconds(1))
        self.requestTimeout = requestTimeout
        self.retryDelay = max(retryDelay, .milliseconds(10))
        self.maxRetryDelay = max(maxRetryDelay, self.retryDelay)
    }

    /// The configuration from explicit flags, else from the in-cluster environment; nil when neither applies.
    ///
    /// With `apiURL` the token and CA files are only those given (a local `kubectl proxy` needs neither). Without
    /// it, `KUBERNETES_SERVICE_HOST` (and `_PORT`, default 443) must be set; the service account's token and CA
    /// are used when the files exist, and `tokenFile`/`caFile` override them.
    public static func resolve(
        apiURL: String?, tokenFile: String?, caFile: String?, nodeName: String = "",
        environment: [String: String] = Foundation.ProcessInfo.processInfo.environment,
        serviceAccountDirectory: String = serviceAccountDirectory
    ) -> KubernetesAPIConfiguration? {
        if let apiURL, !apiURL.isEmpty {
            return KubernetesAPIConfiguration(baseURL: apiURL, tokenFile: tokenFile, caFile: caFile, nodeName: nodeName)
        }
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else { return nil }
        let port = environment["KUBERNETES_SERVICE_PORT"].flatMap { $0.isEmpty ? nil : $0 } ?? "443"
        // An IPv6 service address needs brackets in a URL.
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        func existing(_ name: String) -> String? {
            let path = "\(serviceAccountDirectory)/\(name)"
            return FileManager.default.fileExists(atPath: path) ? path : nil
        }
        return KubernetesAPIConfiguration(
            baseURL: "https://\(hostPart):\(port)", tokenFile: tokenFile ?? existing("token"),
            caFile: caFile ?? existing("ca.crt"), nodeName: nodeName)
    }
}
