import AlertSinks
import Basics
import EventModel
import Foundation
import Profiles
import Yams

/// Everything the collector can be told, from its YAML file (`--config`) and then from flags, which win.
/// docs/configuration.md documents each key; `patrol-collector --help` documents each flag.
public struct CollectorConfiguration: Sendable, Equatable {
    /// NNG address sensors connect to: `tcp://`, `tls+tcp://`, `ipc://` or `inproc://`.
    public var listen = "tcp://127.0.0.1:7600"
    /// The embedded SQLite store.
    public var storePath = "patrol.db"
    /// How long alerts stay in the store's outbox once every sink has delivered them (`store.alertRetention`,
    /// `store.maxAlerts`), which is the alert history `patrolctl alerts list` reads.
    public var alertRetention = AlertRetention()
    /// Rule files or directories of `*.yaml`, loaded in order (later files override earlier ones).
    public var rulePaths: [String] = ["rules"]
    /// Server certificate, key and the CA that sensor client certificates must chain to.
    public var tls: TLSFiles?
    public var sinks = Sinks()
    public var ingest = Ingest()
    /// Start a sensor inside the collector, talking over `inproc://` (the all-in-one mode).
    public var allInOne = false
    /// A replay file the embedded sensor sends instead of (or before) live capture.
    public var replayPath: String?
    /// `host:port` serving /metrics, /healthz and /readyz over HTTP; nil: not served.
    public var metricsListen: String?

    /// `store.alertRetention` and `store.maxAlerts`: which delivered alerts the outbox pruner deletes.
    public struct AlertRetention: Sendable, Equatable {
        /// Delivered alerts older than this (by alert time) are deleted; nil keeps them whatever their age.
        public var maxAgeNanoseconds: UInt64? = 7 * 24 * 3600 * 1_000_000_000
        /// At most this many alerts are kept (the newest); nil: no count limit.
        public var maxAlerts: Int?
        /// How often the pruner looks (`store.pruneInterval`); short only in tests and small setups, since a
        /// pass that finds nothing is a few reads.
        public var pruneIntervalNanoseconds: UInt64 = 30 * 1_000_000_000

        public init() {}
    }

    public struct TLSFiles: Sendable, Equatable {
        public var certificate: String
        public var key: String
        public var ca: String
    }

    public struct Sinks: Sendable, Equatable {
        public var stdout = true
        /// Rule-alert CSV file; nil disables the CSV sink.
        public var csvPath: String?
        public var csvMaxBytes: UInt64 = 100 * 1024 * 1024
        public var csvKeepFiles = 5
        /// Alerts into Elasticsearch/OpenSearch dated indices; nil disables the sink.
        public var elasticsearch: ElasticsearchSettings?
        /// Malware-alert CSV file (`sinks.csv.malwarePath`); nil: malware alerts go to the rule file.
        public var csvMalwarePath: String?
        /// RFC 5424 syslog; nil disables the sink.
        public var syslog: SyslogSettings?
        /// Alerts to one or more Alertmanagers; nil disables the sink.
        public var alertmanager: AlertmanagerSettings?
        /// Alerts as JSON to any HTTP endpoint; nil disables the sink.
        public var webhook: WebhookSettings?
        /// `sinks.delivery`: the outbox policy of every sink without its own `delivery`.
        public var delivery = OutboxDelivery.Policy()
        /// A sink's own `delivery` (keys `csv`, `elasticsearch`, `alertmanager`, `webhook`), the default's
        /// keys overridden by those it gives.
        public var deliveryOverrides: [String: OutboxDelivery.Policy] = [:]

        /// The outbox policy of the sink of kind `kind`.
        public func policy(for kind: String) -> OutboxDelivery.Policy { deliveryOverrides[kind] ?? delivery }
    }

    /// `sinks.syslog`: where and how to send RFC 5424 messages (docs/alerts.md#syslog).
    public struct SyslogSettings: Sendable, Equatable {
        /// `host:port`.
        public var address: String
        /// `udp`, `tcp` (octet counting) or `tls`.
        public var `protocol` = "udp"
        public var facility = "local0"
        /// The number in the SD-IDs `patrol@N` and `patrolFields@N`.
        public var enterpriseNumber = "32473"
        public var appName = "patrol"
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        /// The name expected in the server certificate; default: the host of `address`.
        public var serverName: String?
        /// Longer messages are shortened (MSG first); default 2048 for UDP (RFC 5426's safe size), else 8192.
        public var maxMessageBytes: Int?
        public var utf8BOM = false
        /// TCP/TLS: how long the connection must stay open after a write before its alerts count as delivered.
        public var confirmAfterMs = 2000

        public init(address: String) { self.address = address }
    }

    /// Authentication and TLS for an HTTP sink (`sinks.alertmanager`, `sinks.webhook`).
    public struct HTTPSinkSettings: Sendable, Equatable {
        public var username: String?
        public var password: String?
        public var bearerToken: String?
        /// A file holding the bearer token (e.g. a mounted secret), read at start.
        public var bearerTokenFile: String?
        /// CA bundle (PEM) to verify an `https` server with, instead of the system store.
        public var caFile: String?
        /// Client certificate and key (PEM) for mutual TLS.
        public var clientCertificate: String?
        public var clientKey: String?
        public var timeoutSeconds = 10

        static let keys: Set<String> = [
            "username", "password", "bearerToken", "bearerTokenFile", "caFile", "clientCertificate", "clientKey",
            "timeoutSeconds",
        ]

        static func parse(_ mapping: [String: Node], at node: Node, path: String, reader: ConfigReader)
            throws(BasicsError) -> HTTPSinkSettings
        {
            var settings = HTTPSinkSettings()
            func text(_ key: String) throws(BasicsError) -> String? {
                guard let n = mapping[key] else { return nil }
                return try reader.string(n, path: "\(path).\(key)")
            }
            settings.username = try text("username")
            settings.password = try text("password")
            settings.bearerToken = try text("bearerToken")
            settings.bearerTokenFile = try text("bearerTokenFile")
            settings.caFile = try text("caFile")
            settings.clientCertificate = try text("clientCertificate")
            settings.clientKey = try text("clientKey")
            if let n = mapping["timeoutSeconds"] {
                settings.timeoutSeconds = max(1, try reader.int(n, path: "\(path).timeoutSeconds"))
            }
            let schemes = [settings.username != nil, settings.bearerToken != nil, settings.bearerTokenFile != nil]
            if schemes.filter({ $0 }).count > 1 {
                throw reader.fail(node, path, "give only one of username/password, bearerToken, bearerTokenFile")
            }
            if (settings.clientCertificate == nil) != (settings.clientKey == nil) {
                throw reader.fail(node, path, "clientCertificate and clientKey go together")
            }
            return settings
        }

        /// The files this sink reads, with the setting that names each, for the start-up check.
        func files(path: String) -> [(setting: String, file: String, kind: ConfiguredFile.Kind)] {
            var files: [(String, String, ConfiguredFile.Kind)] = []
            if let file = caFile { files.append(("\(path).caFile", file, .certificate)) }
            if let file = clientCertificate { files.append(("\(path).clientCertificate", file, .certificate)) }
            if let file = clientKey { files.append(("\(path).clientKey", file, .privateKey)) }
            if let file = bearerTokenFile { files.append(("\(path).bearerTokenFile", file, .secret)) }
            return files
        }
    }

    /// `sinks.alertmanager`: every endpoint receives every alert (an HA pair is two endpoints).
    public struct AlertmanagerSettings: Sendable, Equatable {
        /// Base URLs (`http(s)://host:9093`); `/api/v2/alerts` is appended.
        public var endpoints: [String]
        public var http = HTTPSinkSettings()
        public var generatorURL: String?
        /// Alertmanager resolves an alert this long after its delivery unless it comes again.
        public var resolveAfterSeconds = 3600
    }

    /// `sinks.webhook`: JSON arrays of alert documents POSTed to `url`.
    public struct WebhookSettings: Sendable, Equatable {
        public var url: String
        public var http = HTTPSinkSettings()
        /// Extra request headers.
        public var headers: [String: String] = [:]
    }

    /// An Elasticsearch connection and index prefix: `sinks.elasticsearch` (alerts go to
    /// `<indexPrefix>-YYYY.MM.DD`) and `audit.elasticsearch` (audit logs are read from there).
    public struct ElasticsearchSettings: Sendable, Equatable {
        /// `http(s)://host:port` or a bare `host:port` (plain HTTP, as K8sCop's `-E`).
        public var url: String
        public var indexPrefix = "alerts"
        public var username: String?
        public var password: String?
        /// Elasticsearch API key: base64 of `id:api_key`, sent as `Authorization: ApiKey ...`.
        public var apiKey: String?
        public var bearerToken: String?
        /// CA bundle (PEM) to verify an `https` server with.
        public var caFile: String?

        public init(url: String) { self.url = url }

        static let keys: Set<String> = ["url", "indexPrefix", "username", "password", "apiKey", "bearerToken", "caFile"]

        static func parse(_ node: Node, path: String, reader: ConfigReader, extraKeys: Set<String>)
            throws(BasicsError) -> (settings: ElasticsearchSettings, mapping: [String: Node])
        {
            let es = try reader.mapping(node, path: path, allowed: keys.union(extraKeys))
            var settings = ElasticsearchSettings(
                url: try reader.string(try reader.required(es, "url", in: path, at: node), path: "\(path).url"))
            if let n = es["indexPrefix"] { settings.indexPrefix = try reader.string(n, path: "\(path).indexPrefix") }
            if let n = es["username"] { settings.username = try reader.string(n, path: "\(path).username") }
            if let n = es["password"] { settings.password = try reader.string(n, path: "\(path).password") }
            if let n = es["apiKey"] { settings.apiKey = try reader.string(n, path: "\(path).apiKey") }
            if let n = es["bearerToken"] { settings.bearerToken = try reader.string(n, path: "\(path).bearerToken") }
            if let n = es["caFile"] { settings.caFile = try reader.string(n, path: "\(path).caFile") }
            let schemes = [settings.username != nil, settings.apiKey != nil, settings.bearerToken != nil].filter { $0 }
            if schemes.count > 1 {
                throw BasicsError(
                    .invalidConfiguration,
                    "\(reader.source): \(path): give only one of username/password, apiKey, bearerToken")
            }
            return (settings, es)
        }
    }

    /// `audit.elasticsearch`: follow Kubernetes audit documents in `<indexPrefix>-YYYY.MM.DD` (streaming).
    public struct AuditSettings: Sendable, Equatable {
        public var elasticsearch: ElasticsearchSettings
        /// Where to begin when the store has no checkpoint yet (ISO 8601 or K8sCop's Y-M-D-h-m-s); nil: now.
        public var start: String?
        /// Stay this far behind now: the margin for refresh and shipping latency.
        public var lagSeconds = 10
        public var timestampField = "@timestamp"
        /// How the shipper stored the events (`fluentd`, `elastic-agent`, `raw`; the CLI's `--layout`).
        public var layout: AuditMapping.Preset = .fluentd
    }

    /// Audit sources; nil: none.
    public var audit: AuditSettings?

    /// `audit.file`: tail kube-apiserver's `--audit-log-path` (JSON lines), following rotation.
    public struct AuditFileSettings: Sendable, Equatable {
        public var path: String
        /// `beginning` or `end`: where to start when the store holds no checkpoint for this path yet.
        public var startAt = "end"
    }

    /// `audit.webhook`: receive kube-apiserver's audit webhook POSTs (`--audit-webhook-config-file`).
    public struct AuditWebhookSettings: Sendable, Equatable {
        /// `host:port`.
        public var listen: String
        /// The path of the kubeconfig's `server:` URL.
        public var path = "/audit"
        /// HTTPS when both are set.
        public var tlsCertFile: String?
        public var tlsKeyFile: String?
        /// Require client certificates signed by this CA (the kubeconfig's `client-certificate`).
        public var clientCAFile: String?
        public var maxBodyBytes = 16 * 1024 * 1024
    }

    public var auditFile: AuditFileSettings?
    public var auditWebhook: AuditWebhookSettings?

    /// `dedup`: the collector-wide alert cooldown, for rules without their own `dedup:`. Off by default.
    public var dedup = AlertCooldown.Policy.off

    /// `profiles`: how application profiles learn (docs/profiles.md).
    public var profiles = ProfileConfiguration()

    /// `admin`: the admin service patrolctl talks to (docs/patrolctl.md#security).
    public var admin = AdminSettings()

    public struct AdminSettings: Sendable, Equatable {
        public static let defaultListen = "ipc:///run/patrol/admin.sock"
        /// `ipc:///path` (authorised by the peer's uid) or `tls+tcp://host:port` (by a verified client
        /// certificate); empty: no admin service.
        public var listen = defaultListen
        /// Besides root and the collector's own user, these uids may use an ipc socket.
        public var allowedUIDs: [UInt32] = []
        /// The ipc socket file's mode.
        public var socketMode = 0o600
        /// Server certificate, key and the CA client certificates must chain to, for `tls+tcp://`.
        public var tls: TLSFiles?
        /// True when `listen` was set (file or flag): then a listen failure stops the start. The built-in default
        /// is best effort, so a second collector on one machine (or a test) still runs without an admin service.
        public var explicit = false
    }
    /// `bindings.files`: the default bindings, in force while no binding is applied (docs/bindings.md). nil:
    /// `bindings/default.yaml` inside each rule directory that has one.
    public var bindingSeedPaths: [String]?

    /// `kubernetes:`: what the collector takes from the Kubernetes API (docs/kubernetes.md).
    public var kubernetes = KubernetesSettings()

    public struct KubernetesSettings: Sendable, Equatable {
        /// `bindings`: watch the `RuntimeRuleAlertBinding` custom resources and apply them with patrolctl's.
        public var bindings = false
        /// `owners`: events whose owner is a ReplicaSet or Job get its Deployment or CronJob from the API. nil:
        /// as `bindings`, since a collector given the API for bindings has the RBAC for this too (deploy/).
        public var owners: Bool?
        /// Whether owners are resolved.
        public var resolvesOwners: Bool { owners ?? bindings }
        /// `api`: the API's URL; nil: in-cluster (`KUBERNETES_SERVICE_HOST` and the service account).
        public var api: String?
        /// `tokenFile`, `caFile`: override the service account's.
        public var tokenFile: String?
        public var caFile: String?
    }

    /// The Kubernetes API server's addresses for the anomaly rules (R0007's `apiserver_addresses`); nil: taken
    /// once at start-up from `KUBERNETES_SERVICE_HOST` (`APIServerAddresses`), never looked up per event.
    public var apiServerAddresses: [String]?

    public struct Ingest: Sendable, Equatable {
        /// Batches larger than this are refused before decoding.
        public var maxMessageBytes = 16 * 1024 * 1024
        /// How many batches may be in flight at once (NNG contexts).
        public var parallelRequests = 8
    }

    public init() {}
}

extension CollectorConfiguration {
    /// Reads a YAML configuration file. Unknown keys are errors, so a typo never silently does nothing.
    public static func load(path: String) throws(BasicsError) -> CollectorConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw BasicsError(.invalidConfiguration, "cannot read configuration file \(path)", cause: .error(error))
        }
        return try parse(yaml: text, source: path)
    }

    public static func parse(yaml text: String, source: String) throws(BasicsError) -> CollectorConfiguration {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { return CollectorConfiguration() }
            root = node
        } catch {
            throw BasicsError(.invalidConfiguration, "\(source) is not valid YAML", cause: .error(error))
        }
        var config = CollectorConfiguration()
        let reader = ConfigReader(source: source)
        let top = try reader.mapping(
            root, path: "",
            allowed: [
                "listen", "store", "rules", "tls", "sinks", "ingest", "allInOne", "replay", "metrics", "audit", "dedup",
                "profiles", "admin", "bindings", "kubernetes",
            ])
        if let node = top["kubernetes"] {
            let kubernetes = try reader.mapping(
                node, path: "kubernetes", allowed: ["bindings", "owners", "api", "tokenFile", "caFile"])
            if let n = kubernetes["bindings"] { config.kubernetes.bindings = try reader.bool(n, path: "kubernetes.bindings") }
            if let n = kubernetes["owners"] { config.kubernetes.owners = try reader.bool(n, path: "kubernetes.owners") }
            if let n = kubernetes["api"] { config.kubernetes.api = try reader.string(n, path: "kubernetes.api") }
            if let n = kubernetes["tokenFile"] {
                config.kubernetes.tokenFile = try reader.string(n, path: "kubernetes.tokenFile")
            }
            if let n = kubernetes["caFile"] { config.kubernetes.caFile = try reader.string(n, path: "kubernetes.caFile") }
        }
        if let node = top["admin"] { config.admin = try AdminSettings.parse(node, reader: reader) }
        if let node = top["bindings"] {
            let bindings = try reader.mapping(node, path: "bindings", allowed: ["files"])
            if let n = bindings["files"] { config.bindingSeedPaths = try reader.strings(n, path: "bindings.files") }
        }
        if let node = top["dedup"] {
            let dedup = try reader.mapping(node, path: "dedup", allowed: ["window", "key"])
            let windowNode = try reader.required(dedup, "window", in: "dedup", at: node)
            config.dedup.windowNanoseconds = try reader.duration(windowNode, path: "dedup.window")
            if let n = dedup["key"] { config.dedup.key = try reader.strings(n, path: "dedup.key") }
        }
        if let node = top["profiles"] {
            let profiles = try reader.mapping(
                node, path: "profiles", allowed: ["learningPeriod", "namespaceLearningPeriods", "jitter", "compareExecArgs"])
            if let n = profiles["learningPeriod"] {
                config.profiles.learningPeriod = try reader.duration(n, path: "profiles.learningPeriod")
            }
            if let n = profiles["namespaceLearningPeriods"] {
                guard case .mapping(let pairs) = n else {
                    throw reader.fail(n, "profiles.namespaceLearningPeriods", "expected a mapping of namespace to duration")
                }
                for (key, value) in pairs {
                    let namespace = try reader.string(key, path: "profiles.namespaceLearningPeriods")
                    config.profiles.namespaceLearningPeriods[namespace] = try reader.duration(
                        value, path: "profiles.namespaceLearningPeriods.\(namespace)")
                }
            }
            if let n = profiles["jitter"] {
                let text = try reader.string(n, path: "profiles.jitter")
                guard let jitter = Double(text), (0...1).contains(jitter) else {
                    throw reader.fail(n, "profiles.jitter", "expected a fraction from 0 to 1, found '\(text)'")
                }
                config.profiles.jitter = jitter
            }
            if let n = profiles["compareExecArgs"] {
                config.profiles.compareExecArgs = try reader.bool(n, path: "profiles.compareExecArgs")
            }
        }
        if let node = top["listen"] { config.listen = try reader.string(node, path: "listen") }
        if let node = top["store"] {
            // A plain string is the path; a mapping adds the alert retention.
            if case .scalar = node {
                config.storePath = try reader.string(node, path: "store")
            } else {
                let store = try reader.mapping(node, path: "store", allowed: ["path", "alertRetention", "maxAlerts", "pruneInterval"])
                if let n = store["path"] { config.storePath = try reader.string(n, path: "store.path") }
                if let n = store["alertRetention"] {
                    let age = try reader.duration(n, path: "store.alertRetention")
                    config.alertRetention.maxAgeNanoseconds = age == 0 ? nil : age
                }
                if let n = store["maxAlerts"] {
                    let count = try reader.int(n, path: "store.maxAlerts")
                    config.alertRetention.maxAlerts = count == 0 ? nil : count
                }
                if let n = store["pruneInterval"] {
                    let interval = try reader.duration(n, path: "store.pruneInterval")
                    guard interval > 0 else { throw reader.fail(n, "store.pruneInterval", "expected more than 0") }
                    config.alertRetention.pruneIntervalNanoseconds = interval
                }
            }
        }
        if let node = top["rules"] { config.rulePaths = try reader.strings(node, path: "rules") }
        if let node = top["allInOne"] { config.allInOne = try reader.bool(node, path: "allInOne") }
        if let node = top["replay"] { config.replayPath = try reader.string(node, path: "replay") }
        if let node = top["metrics"] {
            let metrics = try reader.mapping(node, path: "metrics", allowed: ["listen"])
            if let listen = metrics["listen"] { config.metricsListen = try reader.string(listen, path: "metrics.listen") }
        }
        if let node = top["tls"] {
            let tls = try reader.mapping(node, path: "tls", allowed: ["certificate", "key", "ca"])
            config.tls = TLSFiles(
                certificate: try reader.string(try reader.required(tls, "certificate", in: "tls", at: node), path: "tls.certificate"),
                key: try reader.string(try reader.required(tls, "key", in: "tls", at: node), path: "tls.key"),
                ca: try reader.string(try reader.required(tls, "ca", in: "tls", at: node), path: "tls.ca"))
        }
        if let node = top["sinks"] {
            let sinks = try reader.mapping(
                node, path: "sinks",
                allowed: ["stdout", "csv", "elasticsearch", "syslog", "alertmanager", "webhook", "delivery"])
            if let syslogNode = sinks["syslog"] { config.sinks.syslog = try Self.parseSyslog(syslogNode, reader: reader) }
            if let n = sinks["delivery"] {
                config.sinks.delivery = try reader.delivery(n, path: "sinks.delivery", base: config.sinks.delivery)
            }
            let base = config.sinks.delivery
            if let esNode = sinks["elasticsearch"] {
                let (settings, es) = try ElasticsearchSettings.parse(
                    esNode, path: "sinks.elasticsearch", reader: reader, extraKeys: ["delivery"])
                config.sinks.elasticsearch = settings
                if let n = es["delivery"] {
                    config.sinks.deliveryOverrides["elasticsearch"] = try reader.delivery(
                        n, path: "sinks.elasticsearch.delivery", base: base)
                }
            }
            if let amNode = sinks["alertmanager"] {
                let path = "sinks.alertmanager"
                let am = try reader.mapping(
                    amNode, path: path,
                    allowed: HTTPSinkSettings.keys.union([
                        "endpoints", "generatorURL", "resolveAfterSeconds", "delivery",
                    ]))
                let endpointsNode = try reader.required(am, "endpoints", in: path, at: amNode)
                let endpoints = try reader.strings(endpointsNode, path: "\(path).endpoints")
                guard !endpoints.isEmpty else {
                    throw reader.fail(endpointsNode, "\(path).endpoints", "give at least one URL")
                }
                for (index, url) in endpoints.enumerated() {
                    if let problem = HTTPSinkTarget.problem(withURL: url) {
                        var at = endpointsNode
                        if case .sequence(let items) = endpointsNode, index < items.count { at = items[index] }
                        throw reader.fail(at, "\(path).endpoints[\(index)]", problem)
                    }
                }
                if Set(endpoints).count != endpoints.count {
                    throw reader.fail(endpointsNode, "\(path).endpoints", "an endpoint is listed twice")
                }
                var settings = AlertmanagerSettings(
                    endpoints: endpoints, http: try HTTPSinkSettings.parse(am, at: amNode, path: path, reader: reader))
                if let n = am["generatorURL"] {
                    let url = try reader.string(n, path: "\(path).generatorURL")
                    if let problem = HTTPSinkTarget.problem(withURL: url) {
                        throw reader.fail(n, "\(path).generatorURL", problem)
                    }
                    settings.generatorURL = url
                }
                if let n = am["resolveAfterSeconds"] {
                    settings.resolveAfterSeconds = max(1, try reader.int(n, path: "\(path).resolveAfterSeconds"))
                }
                if let n = am["delivery"] {
                    config.sinks.deliveryOverrides["alertmanager"] = try reader.delivery(
                        n, path: "\(path).delivery", base: base)
                }
                config.sinks.alertmanager = settings
            }
            if let hookNode = sinks["webhook"] {
                let path = "sinks.webhook"
                let hook = try reader.mapping(
                    hookNode, path: path, allowed: HTTPSinkSettings.keys.union(["url", "headers", "delivery"]))
                let urlNode = try reader.required(hook, "url", in: path, at: hookNode)
                let url = try reader.string(urlNode, path: "\(path).url")
                if let problem = HTTPSinkTarget.problem(withURL: url) {
                    throw reader.fail(urlNode, "\(path).url", problem)
                }
                var settings = WebhookSettings(
                    url: url, http: try HTTPSinkSettings.parse(hook, at: hookNode, path: path, reader: reader))
                if let n = hook["headers"] {
                    guard case .mapping(let pairs) = n else {
                        throw reader.fail(n, "\(path).headers", "expected a mapping")
                    }
                    for (keyNode, valueNode) in pairs {
                        guard let key = keyNode.string, !key.isEmpty,
                            key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
                        else { throw reader.fail(keyNode, "\(path).headers", "a header name must be a token") }
                        let value = try reader.string(valueNode, path: "\(path).headers.\(key)")
                        if value.contains("\r") || value.contains("\n") {
                            throw reader.fail(
                                valueNode, "\(path).headers.\(key)", "a header value cannot hold a line break")
                        }
                        settings.headers[key] = value
                    }
                }
                if let n = hook["delivery"] {
                    config.sinks.deliveryOverrides["webhook"] = try reader.delivery(
                        n, path: "\(path).delivery", base: base)
                }
                config.sinks.webhook = settings
            }
            if let stdout = sinks["stdout"] { config.sinks.stdout = try reader.bool(stdout, path: "sinks.stdout") }
            if let csvNode = sinks["csv"] {
                let csv = try reader.mapping(
                    csvNode, path: "sinks.csv", allowed: ["path", "malwarePath", "maxBytes", "keepFiles", "delivery"])
                if let n = csv["delivery"] {
                    config.sinks.deliveryOverrides["csv"] = try reader.delivery(
                        n, path: "sinks.csv.delivery", base: config.sinks.delivery)
                }
                config.sinks.csvPath = try reader.string(try reader.required(csv, "path", in: "sinks.csv", at: csvNode), path: "sinks.csv.path")
                if let n = csv["malwarePath"] { config.sinks.csvMalwarePath = try reader.string(n, path: "sinks.csv.malwarePath") }
                if let n = csv["maxBytes"] { config.sinks.csvMaxBytes = UInt64(try reader.int(n, path: "sinks.csv.maxBytes")) }
                if let n = csv["keepFiles"] { config.sinks.csvKeepFiles = try reader.int(n, path: "sinks.csv.keepFiles") }
            }
        }
        if let node = top["audit"] {
            let audit = try reader.mapping(node, path: "audit", allowed: ["elasticsearch", "file", "webhook"])
            if let fileNode = audit["file"] {
                let file = try reader.mapping(fileNode, path: "audit.file", allowed: ["path", "startAt"])
                var settings = AuditFileSettings(
                    path: try reader.string(try reader.required(file, "path", in: "audit.file", at: fileNode), path: "audit.file.path"))
                if let n = file["startAt"] {
                    settings.startAt = try reader.string(n, path: "audit.file.startAt")
                    guard ["beginning", "end"].contains(settings.startAt) else {
                        throw reader.fail(n, "audit.file.startAt", "expected beginning or end, found '\(settings.startAt)'")
                    }
                }
                config.auditFile = settings
            }
            if let hookNode = audit["webhook"] {
                let hook = try reader.mapping(
                    hookNode, path: "audit.webhook",
                    allowed: ["listen", "path", "tlsCertFile", "tlsKeyFile", "clientCAFile", "maxBodyBytes"])
                var settings = AuditWebhookSettings(
                    listen: try reader.string(
                        try reader.required(hook, "listen", in: "audit.webhook", at: hookNode), path: "audit.webhook.listen"))
                if let n = hook["path"] { settings.path = try reader.string(n, path: "audit.webhook.path") }
                if let n = hook["tlsCertFile"] { settings.tlsCertFile = try reader.string(n, path: "audit.webhook.tlsCertFile") }
                if let n = hook["tlsKeyFile"] { settings.tlsKeyFile = try reader.string(n, path: "audit.webhook.tlsKeyFile") }
                if let n = hook["clientCAFile"] { settings.clientCAFile = try reader.string(n, path: "audit.webhook.clientCAFile") }
                if let n = hook["maxBodyBytes"] { settings.maxBodyBytes = try reader.int(n, path: "audit.webhook.maxBodyBytes") }
                if (settings.tlsCertFile == nil) != (settings.tlsKeyFile == nil) {
                    throw reader.fail(hookNode, "audit.webhook", "give both tlsCertFile and tlsKeyFile, or neither")
                }
                if settings.clientCAFile != nil, settings.tlsCertFile == nil {
                    throw reader.fail(hookNode, "audit.webhook", "clientCAFile needs tlsCertFile and tlsKeyFile (HTTPS)")
                }
                config.auditWebhook = settings
            }
            if let esNode = audit["elasticsearch"] {
                let (settings, es) = try ElasticsearchSettings.parse(
                    esNode, path: "audit.elasticsearch", reader: reader,
                    extraKeys: ["start", "lagSeconds", "timestampField", "layout"])
                guard es["indexPrefix"] != nil else {
                    throw BasicsError(
                        .invalidConfiguration,
                        "\(source): audit.elasticsearch: missing required key 'indexPrefix' (the log index prefix)")
                }
                var result = AuditSettings(elasticsearch: settings)
                if let n = es["start"] { result.start = try reader.string(n, path: "audit.elasticsearch.start") }
                if let n = es["lagSeconds"] { result.lagSeconds = try reader.int(n, path: "audit.elasticsearch.lagSeconds") }
                if let n = es["timestampField"] {
                    result.timestampField = try reader.string(n, path: "audit.elasticsearch.timestampField")
                }
                if let n = es["layout"] {
                    let name = try reader.string(n, path: "audit.elasticsearch.layout")
                    guard let layout = AuditMapping.Preset(rawValue: name) else {
                        throw reader.fail(
                            n, "audit.elasticsearch.layout",
                            "unknown layout '\(name)' (expected one of: "
                                + AuditMapping.Preset.allCases.map(\.rawValue).joined(separator: ", ") + ")")
                    }
                    result.layout = layout
                }
                config.audit = result
            }
        }
        if let node = top["ingest"] {
            let ingest = try reader.mapping(node, path: "ingest", allowed: ["maxMessageBytes", "parallelRequests"])
            if let n = ingest["maxMessageBytes"] { config.ingest.maxMessageBytes = try reader.int(n, path: "ingest.maxMessageBytes") }
            if let n = ingest["parallelRequests"] { config.ingest.parallelRequests = try reader.int(n, path: "ingest.parallelRequests") }
        }
        return config
    }
}

extension CollectorConfiguration {
    static func parseSyslog(_ node: Node, reader: ConfigReader) throws(BasicsError) -> SyslogSettings {
        let path = "sinks.syslog"
        let map = try reader.mapping(
            node, path: path,
            allowed: [
                "address", "protocol", "facility", "enterpriseNumber", "appName", "caFile", "certFile", "keyFile",
                "serverName", "maxMessageBytes", "utf8BOM", "confirmAfterMs",
            ])
        var settings = SyslogSettings(
            address: try reader.string(try reader.required(map, "address", in: path, at: node), path: "\(path).address"))
        if let n = map["protocol"] {
            settings.protocol = try reader.string(n, path: "\(path).protocol")
            guard ["udp", "tcp", "tls"].contains(settings.protocol) else {
                throw reader.fail(n, "\(path).protocol", "expected udp, tcp or tls, found '\(settings.protocol)'")
            }
        }
        if let n = map["facility"] {
            settings.facility = try reader.string(n, path: "\(path).facility")
            guard SyslogFormat.facilities[settings.facility] != nil || Int(settings.facility).map({ (0...23).contains($0) }) == true
            else {
                throw reader.fail(
                    n, "\(path).facility",
                    "unknown facility '\(settings.facility)' (a name such as local0 or daemon, or 0...23)")
            }
        }
        if let n = map["enterpriseNumber"] {
            settings.enterpriseNumber = try reader.string(n, path: "\(path).enterpriseNumber")
            guard !settings.enterpriseNumber.isEmpty,
                settings.enterpriseNumber.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") })
            else {
                throw reader.fail(n, "\(path).enterpriseNumber", "expected digits such as 32473 (dots allowed)")
            }
        }
        if let n = map["appName"] { settings.appName = try reader.string(n, path: "\(path).appName") }
        if let n = map["caFile"] { settings.caFile = try reader.string(n, path: "\(path).caFile") }
        if let n = map["certFile"] { settings.certFile = try reader.string(n, path: "\(path).certFile") }
        if let n = map["keyFile"] { settings.keyFile = try reader.string(n, path: "\(path).keyFile") }
        if let n = map["serverName"] { settings.serverName = try reader.string(n, path: "\(path).serverName") }
        if let n = map["maxMessageBytes"] {
            let value = try reader.int(n, path: "\(path).maxMessageBytes")
            // Below RFC 5426's 480 bytes not even the header and the alert's identity would fit.
            guard value >= 480 else {
                throw reader.fail(n, "\(path).maxMessageBytes", "must be at least 480 (RFC 5426), found \(value)")
            }
            settings.maxMessageBytes = value
        }
        if let n = map["utf8BOM"] { settings.utf8BOM = try reader.bool(n, path: "\(path).utf8BOM") }
        if let n = map["confirmAfterMs"] { settings.confirmAfterMs = try reader.int(n, path: "\(path).confirmAfterMs") }
        return settings
    }
}

/// Typed access to a YAML node tree with errors that name the file, line and key.
struct ConfigReader {
    let source: String

    func fail(_ node: Node, _ path: String, _ reason: String) -> BasicsError {
        let line = node.mark.map { ":\($0.line)" } ?? ""
        return BasicsError(.invalidConfiguration, "\(source)\(line): \(path.isEmpty ? "top level" : path): \(reason)")
    }

    func mapping(_ node: Node, path: String, allowed: Set<String>) throws(BasicsError) -> [String: Node] {
        guard case .mapping(let mapping) = node else { throw fail(node, path, "expected a mapping") }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { throw fail(keyNode, path, "keys must be strings") }
            guard allowed.contains(key) else {
                throw fail(keyNode, path, "unknown key '\(key)'; expected one of \(allowed.sorted().joined(separator: ", "))")
            }
            result[key] = value
        }
        return result
    }

    /// A `delivery` mapping (docs/configuration.md#delivery): `base` with the keys it gives replaced.
    func delivery(_ node: Node, path: String, base: OutboxDelivery.Policy) throws(BasicsError)
        -> OutboxDelivery.Policy
    {
        let keys: Set<String> = [
            "batchSize", "maxBacklog", "overflow", "ratePerSecond", "burst", "initialBackoffMs", "maxBackoffMs",
            "shutdownGraceSeconds",
        ]
        let mapping = try self.mapping(node, path: path, allowed: keys)
        var policy = base
        if let n = mapping["batchSize"] {
            let size = try int(n, path: "\(path).batchSize")
            guard size >= 1 else { throw fail(n, "\(path).batchSize", "must be at least 1") }
            policy.batchSize = size
        }
        if let n = mapping["maxBacklog"] { policy.maxBacklog = try int(n, path: "\(path).maxBacklog") }
        if let n = mapping["overflow"] {
            let name = try string(n, path: "\(path).overflow")
            guard let overflow = OutboxDelivery.Overflow(rawValue: name) else {
                throw fail(
                    n, "\(path).overflow",
                    "unknown policy '\(name)' (expected one of: "
                        + OutboxDelivery.Overflow.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            policy.overflow = overflow
        }
        if let n = mapping["initialBackoffMs"] {
            policy.initialBackoff = .milliseconds(max(1, try int(n, path: "\(path).initialBackoffMs")))
        }
        if let n = mapping["maxBackoffMs"] {
            policy.maxBackoff = .milliseconds(max(1, try int(n, path: "\(path).maxBackoffMs")))
        }
        if policy.maxBackoff < policy.initialBackoff {
            throw fail(node, path, "maxBackoffMs is below initialBackoffMs")
        }
        if let n = mapping["shutdownGraceSeconds"] {
            policy.shutdownGrace = .seconds(try int(n, path: "\(path).shutdownGraceSeconds"))
        }
        if let n = mapping["ratePerSecond"] {
            guard let rate = n.float, rate >= 0, rate.isFinite else {
                throw fail(n, "\(path).ratePerSecond", "expected a non-negative number, found '\(n.string ?? "?")'")
            }
            // 0 turns an inherited limit off.
            policy.rateLimit =
                rate > 0 ? OutboxDelivery.RateLimit(perSecond: rate, burst: policy.rateLimit?.burst) : nil
        }
        if let n = mapping["burst"] {
            let burst = try int(n, path: "\(path).burst")
            guard let limit = policy.rateLimit, burst >= 1 else {
                throw fail(n, "\(path).burst", "needs ratePerSecond and a value of at least 1")
            }
            policy.rateLimit = OutboxDelivery.RateLimit(perSecond: limit.perSecond, burst: burst)
        }
        return policy
    }

    func required(_ mapping: [String: Node], _ key: String, in path: String, at node: Node) throws(BasicsError) -> Node {
        guard let value = mapping[key] else { throw fail(node, path, "missing required key '\(key)'") }
        return value
    }

    func string(_ node: Node, path: String) throws(BasicsError) -> String {
        guard case .scalar(let scalar) = node else { throw fail(node, path, "expected a string") }
        return scalar.string
    }

    func strings(_ node: Node, path: String) throws(BasicsError) -> [String] {
        if case .scalar = node { return [try string(node, path: path)] }
        guard case .sequence(let items) = node else { throw fail(node, path, "expected a list of strings") }
        var result: [String] = []
        for item in items { result.append(try string(item, path: path)) }
        return result
    }

    /// `60s`, `500ms`, `5m`, `1h`, `7d`, or a bare number of seconds, in nanoseconds.
    func duration(_ node: Node, path: String) throws(BasicsError) -> UInt64 {
        let text = try string(node, path: path)
        let units: [(String, Double)] = [("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9), ("d", 86400e9)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let number = Double(text.dropLast(suffix.count)), number >= 0 { return UInt64(number * scale) }
        }
        if let number = Double(text), number >= 0 { return UInt64(number * 1e9) }
        throw fail(node, path, "expected a duration such as 60s, 500ms or 5m, found '\(text)'")
    }

    func bool(_ node: Node, path: String) throws(BasicsError) -> Bool {
        guard let value = node.bool else { throw fail(node, path, "expected true or false, found '\(node.string ?? "?")'") }
        return value
    }

    func int(_ node: Node, path: String) throws(BasicsError) -> Int {
        guard let value = node.int, value >= 0 else {
            throw fail(node, path, "expected a non-negative integer, found '\(node.string ?? "?")'")
        }
        return value
    }
}

/// A file a setting names, checked at start-up so that a missing or wrong file stops the collector with the
/// setting's name, instead of surfacing later as a TLS failure on every send.
enum ConfiguredFile {
    enum Kind { case certificate, privateKey, secret }

    /// Throws naming `setting` when `file` is unreadable or does not hold what `kind` needs.
    static func check(setting: String, file: String, kind: Kind) throws(BasicsError) {
        guard let data = FileManager.default.contents(atPath: file) else {
            let reason = FileManager.default.fileExists(atPath: file) ? "cannot be read" : "does not exist"
            throw BasicsError(.invalidConfiguration, "\(setting): file \(file) \(reason)")
        }
        let text = String(decoding: data, as: UTF8.self)
        switch kind {
        case .certificate:
            guard text.contains("-----BEGIN CERTIFICATE-----") else {
                throw BasicsError(.invalidConfiguration, "\(setting): \(file) holds no PEM certificate")
            }
        case .privateKey:
            guard text.contains("PRIVATE KEY-----") else {
                throw BasicsError(.invalidConfiguration, "\(setting): \(file) holds no PEM private key")
            }
        case .secret:
            guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw BasicsError(.invalidConfiguration, "\(setting): \(file) is empty")
            }
        }
    }
}

extension CollectorConfiguration {
    /// Checks every certificate, key and token file the sinks name (start-up, before anything runs).
    public func checkSinkFiles() throws(BasicsError) {
        var files: [(setting: String, file: String, kind: ConfiguredFile.Kind)] = []
        if let ca = sinks.elasticsearch?.caFile { files.append(("sinks.elasticsearch.caFile", ca, .certificate)) }
        if let am = sinks.alertmanager { files += am.http.files(path: "sinks.alertmanager") }
        if let hook = sinks.webhook { files += hook.http.files(path: "sinks.webhook") }
        for entry in files { try ConfiguredFile.check(setting: entry.setting, file: entry.file, kind: entry.kind) }
    }
}
