import Foundation

/// Where the sensor finds the Kubernetes API, and how often it re-lists the pods on its node.
///
/// Either explicit (`--kube-api`, `--kube-token-file`, `--kube-ca-file`) or the in-cluster defaults a pod gets:
/// `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT` and the service account's token and CA. Without either the
/// sensor runs without the API: identity then comes from the runtime's annotations only (no labels, no owner).
public struct KubernetesAPIConfiguration: Sendable, Equatable {
    /// `https://host:port` (or `http://` for tests and local proxies such as `kubectl proxy`), no trailing slash.
    public var baseURL: String
    /// A bearer token file, read again before every list because kubelets rotate projected tokens (about hourly).
    public var tokenFile: String?
    /// The CA bundle the API server's certificate must chain to; nil uses the system store.
    public var caFile: String?
    /// The node whose pods are listed (`spec.nodeName`).
    public var nodeName: String
    /// Time between full re-lists. A pod the resolver asks for but the index lacks brings the next list forward to
    /// `minimumListInterval` after the previous one.
    public var listInterval: Duration
    /// Lists never run closer together than this, however many unknown pods events name.
    public var minimumListInterval: Duration
    /// Per request (a list or an owner GET).
    public var requestTimeout: Duration

    /// The service account directory every pod gets.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"
    /// Bounds on `listInterval`, so a typo cannot hammer the API server or leave labels stale for hours.
    public static let listIntervalBounds: ClosedRange<Duration> = .seconds(1)...Duration.seconds(600)

    public init(
        baseURL: String, tokenFile: String? = nil, caFile: String? = nil, nodeName: String,
        listInterval: Duration = .seconds(30), minimumListInterval: Duration = .seconds(2),
        requestTimeout: Duration = .seconds(10)
    ) {
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
        self.tokenFile = tokenFile
        self.caFile = caFile
        self.nodeName = nodeName
        self.listInterval = min(
            max(listInterval, Self.listIntervalBounds.lowerBound), Self.listIntervalBounds.upperBound)
        self.minimumListInterval = min(minimumListInterval, self.listInterval)
        self.requestTimeout = requestTimeout
    }

    /// The configuration from explicit flags, else from the in-cluster environment; nil when neither applies.
    ///
    /// With `apiURL` the token and CA files are only those given (a local `kubectl proxy` needs neither). Without
    /// it, `KUBERNETES_SERVICE_HOST` (and `_PORT`, default 443) must be set; the service account's token and CA
    /// are used when the files exist, and `tokenFile`/`caFile` override them.
    public static func resolve(
        apiURL: String?, tokenFile: String?, caFile: String?, nodeName: String,
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
