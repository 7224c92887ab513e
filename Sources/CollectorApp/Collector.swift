import AlertSinks
import AuditPipeline
import Basics
import Bindings
import Elasticsearch
import EventModel
import Foundation
import KubernetesAPI
import Logging
import Metrics
import OutboundHTTP
import Profiles
import RuleEngine
import SensorApp
import ServiceLifecycle
import Store
import Telemetry
import Transport
import WireFormat

/// Builds the collector's services from a configuration and runs them under one ServiceGroup.
///
/// Shutdown order (reverse of start): the embedded sensor stops, the RPC server stops taking batches, the
/// ingest loop commits what it already holds, then every sink drains the outbox. So a SIGTERM or SIGINT
/// flushes everything that was accepted.
public struct Collector: Sendable {
    public let configuration: CollectorConfiguration
    let logger: Logger
    /// The registry /metrics renders; without one (in-process tests) a private, unbootstrapped one is used.
    let telemetry: Telemetry

    public init(configuration: CollectorConfiguration, logger: Logger, telemetry: Telemetry? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.telemetry = telemetry ?? Telemetry()
    }

    public func run() async throws {
        let apiServer =
            configuration.apiServerAddresses ?? APIServerAddresses.fromEnvironment(ProcessInfo.processInfo.environment)
        let (ruleSet, apiServerApplied) = try APIServerAddresses.load(
            files: try RuleFiles.expand(configuration.rulePaths), addresses: apiServer)
        logger.info("rules loaded", metadata: ["rules": "\(ruleSet.rules.count)", "paths": "\(configuration.rulePaths)"])
        if apiServerApplied {
            logger.info("API server addresses for the anomaly rules", metadata: ["addresses": "\(apiServer)"])
        }
        // Sink settings are checked before the store opens, so a misconfigured sink stops the start with the
        // setting's name and nothing half-started.
        let sinks = try makeSinks()
        let store = try await Store.open(path: configuration.storePath)
        let signal = OutboxSignal()

        var services: [any Service] = []
        for (sink, policy) in sinks {
            services.append(OutboxDelivery(sink: sink, store: store, signal: signal, policy: policy, logger: logger))
        }
        services.append(OutboxMetricsService(store: store, sinks: sinks.map(\.0.name), logger: logger))
        let retention = configuration.alertRetention
        services.append(
            OutboxPruner(
                store: store, sinks: sinks.map(\.0.name),
                retention: .init(
                    maxAge: retention.maxAgeNanoseconds.map { .nanoseconds(Int64(clamping: $0)) },
                    maxAlerts: retention.maxAlerts),
                interval: .nanoseconds(Int64(clamping: retention.pruneIntervalNanoseconds)), logger: logger))
        // Profiles are restored before events flow, so none falls back to learning after a restart.
        let profiles = ProfileRegistry(configuration: configuration.profiles)
        let restored = try await profiles.restore(from: store)
        for problem in restored.skipped { logger.error("a stored profile cannot be read; it learns again", metadata: ["profile": "\(problem)"]) }
        logger.info("profiles restored", metadata: ["containers": "\(restored.loaded)"])
        // Before ingest in the list: graceful shutdown runs in reverse order, so the last save follows ingest's end.
        services.append(ProfileStoreService(registry: profiles, store: store, interval: .seconds(5), logger: logger))
        // Bindings are loaded before events flow, so applied bindings keep their effect across a restart.
        let bindings = try await BindingsController.load(
            ruleSet: ruleSet, seedPaths: configuration.bindingSeedPaths, rulePaths: configuration.rulePaths,
            store: store, logger: logger)
        let kube = configuration.kubernetes
        var kubeAPI: KubernetesAPIConfiguration?
        if kube.bindings || kube.resolvesOwners {
            guard
                let api = KubernetesAPIConfiguration.resolve(
                    apiURL: kube.api, tokenFile: kube.tokenFile, caFile: kube.caFile)
            else {
                throw BasicsError(
                    .invalidConfiguration,
                    "kubernetes.\(kube.bindings ? "bindings" : "owners") is on but there is no Kubernetes API: not in "
                        + "a cluster (KUBERNETES_SERVICE_HOST unset) and no kubernetes.api")
            }
            kubeAPI = api
        }
        let owners = kube.resolvesOwners ? kubeAPI.map { KubernetesOwners(configuration: $0, logger: logger) } : nil
        let ingest = IngestService(
            store: store, ruleSet: ruleSet, signal: signal, cooldownDefault: configuration.dedup, profiles: profiles,
            bindings: bindings, owners: owners, logger: logger)
        services.append(ingest)
        if kube.bindings, let api = kubeAPI {
            services.append(KubernetesBindingsWatcher(configuration: api, bindings: bindings, logger: logger))
        }
        // After ingest in the list, so it stops first; the last batches only read the cache, which needs no service.
        if let owners { services.append(owners) }
        // After ingest in the list, so graceful shutdown (in reverse order) stops reading before ingest ends.
        if let stream = try auditStream(ingest: ingest, store: store) { services.append(stream) }
        services += try auditFileAndWebhook(ingest: ingest, store: store)

        // On-demand scans: started by the admin service, delivered and followed by the sensor RPC handler.
        let scans = ScanRegistry()
        let handler = SensorRPCHandler(ingest: ingest, store: store, scans: scans, logger: logger)
        let server = try RPCServer(
            configuration: RPCServerConfiguration(
                address: configuration.listen,
                tls: configuration.tls.map {
                    TLSConfiguration(
                        certificateFile: $0.certificate, privateKeyFile: $0.key, caFile: $0.ca,
                        requireClientCertificate: true)
                },
                concurrency: configuration.ingest.parallelRequests,
                maxMessageSize: configuration.ingest.maxMessageBytes),
            logger: logger,
            handler: handler.handle)
        let serving = ReadyFlag()
        services.append(RPCServerService(server: server, serving: serving))
        logger.info("collector listening", metadata: ["address": "\(server.boundAddress)"])
        let admin = try adminServer(
            profiles: profiles, store: store, ruleSet: ruleSet, bindings: bindings, scans: scans)
        if let admin { services.append(AdminService(server: admin)) }
        if let address = configuration.metricsListen {
            Self.exportServerStats(server, into: telemetry)
            if let admin, admin.configuration.address.hasPrefix("tls+tcp://") {
                let refused = CounterMirror(label: "patrol_admin_tls_handshakes_refused_total")
                telemetry.onScrape { refused.update(to: admin.tlsRefusals) }
            }
            telemetry.addReadinessCheck("sensor_rpc") { serving.isSet }
            let status = try StatusServer(address: address, telemetry: telemetry, logger: logger)
            logger.info("status endpoint listening", metadata: ["address": "\(status.boundAddress)"])
            services.append(StatusService(server: status))
        }

        if configuration.allInOne {
            var sensorConfiguration = SensorConfiguration(
                collector: server.boundAddress, sensorID: "embedded-\(Host.localName)",
                replayPath: configuration.replayPath)
            // All-in-one is a first run on one machine: without BPF it still serves remote sensors and replays.
            sensorConfiguration.requireCapture = false
            services.append(try Sensor(configuration: sensorConfiguration, logger: logger))
        }

        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        await store.close()
    }

    /// The admin service's server (docs/patrolctl.md#security), or nil when `admin.listen` is empty. The built-in
    /// default address is best effort: when it cannot be used (another collector holds it, /run is not writable)
    /// the collector runs without an admin service and says so; an address that was configured must work.
    func adminServer(
        profiles: ProfileRegistry, store: Store, ruleSet: RuleSet, bindings: BindingsController,
        scans: ScanRegistry = ScanRegistry()
    ) throws -> RPCServer? {
        let settings = configuration.admin
        guard !settings.listen.isEmpty else { return nil }
        let handler = AdminRPCHandler(
            profiles: profiles, store: store, ruleSet: ruleSet, bindings: bindings, scans: scans,
            authorizer: AdminAuthorizer(address: settings.listen, allowedUIDs: settings.allowedUIDs), logger: logger)
        do {
            let server = try AdminService.listen(settings, handler: handler, logger: logger)
            logger.info("admin service listening", metadata: ["address": "\(server.boundAddress)"])
            return server
        } catch where !settings.explicit {
            logger.error(
                "admin service not started: its default address is not available; set admin.listen",
                metadata: ["address": "\(settings.listen)", "error": "\(error)"])
            return nil
        }
    }

    /// Every configured sink with its outbox policy. Throws, naming the setting, when one is misconfigured.
    func makeSinks() throws -> [(any AlertSink, OutboxDelivery.Policy)] {
        let settings = configuration.sinks
        try configuration.checkSinkFiles()
        var sinks: [(any AlertSink, OutboxDelivery.Policy)] = []
        if settings.stdout { sinks.append((StdoutSink(), settings.policy(for: "stdout"))) }
        if let path = settings.csvPath {
            sinks.append(
                (CSVSink(
                    path: path, malwarePath: settings.csvMalwarePath, maxBytes: settings.csvMaxBytes,
                    keepFiles: settings.csvKeepFiles),
                 settings.policy(for: "csv")))
        }
        if let es = settings.elasticsearch {
            let endpoint: ElasticsearchEndpoint
            do {
                endpoint = try Self.endpoint(es)
            } catch {
                throw BasicsError(.invalidConfiguration, "sinks.elasticsearch.url: \(error)")
            }
            let client = ElasticsearchClient(endpoint: endpoint, logger: logger)
            sinks.append(
                (ElasticsearchSink(client: client, configuration: .init(indexPrefix: es.indexPrefix), logger: logger),
                 settings.policy(for: "elasticsearch")))
        }
        if let am = settings.alertmanager {
            let http = try Self.httpOptions(am.http, path: "sinks.alertmanager")
            let sinkConfiguration = AlertmanagerSink.Configuration(
                generatorURL: am.generatorURL, resolveAfter: .seconds(am.resolveAfterSeconds))
            // One sink, cursor and metrics series per endpoint: each gets every alert, at its own pace.
            for (index, url) in am.endpoints.enumerated() {
                let target = HTTPSinkTarget(
                    url: url, auth: http.auth, tls: http.tls, timeout: .seconds(am.http.timeoutSeconds))
                sinks.append(
                    (AlertmanagerSink(
                        name: "alertmanager[\(index)]", target: target, configuration: sinkConfiguration,
                        logger: logger),
                     settings.policy(for: "alertmanager")))
            }
        }
        if let hook = settings.webhook {
            let http = try Self.httpOptions(hook.http, path: "sinks.webhook")
            let target = HTTPSinkTarget(
                url: hook.url, auth: http.auth, tls: http.tls,
                headers: HTTPHeaders(hook.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }),
                timeout: .seconds(hook.http.timeoutSeconds))
            sinks.append((WebhookSink(target: target, logger: logger), settings.policy(for: "webhook")))
        }
        if let syslog = settings.syslog {
            sinks.append((try Self.syslogSink(syslog, logger: logger), settings.policy(for: "syslog")))
        }
        return sinks
    }

    static func syslogSink(_ settings: CollectorConfiguration.SyslogSettings, logger: Logger) throws -> SyslogSink {
        let transport = SyslogSink.Transport(rawValue: settings.protocol) ?? .udp
        let facility = SyslogFormat.facilities[settings.facility] ?? Int(settings.facility) ?? 16
        let format = SyslogFormat(
            facility: facility, enterpriseNumber: settings.enterpriseNumber, appName: settings.appName,
            procID: String(getpid()), utf8BOM: settings.utf8BOM,
            maxMessageBytes: settings.maxMessageBytes ?? (transport == .udp ? 2048 : 8192))
        return try SyslogSink(
            configuration: .init(
                address: settings.address, transport: transport, format: format, caFile: settings.caFile,
                certificateFile: settings.certFile, keyFile: settings.keyFile, serverName: settings.serverName,
                confirmAfter: .milliseconds(settings.confirmAfterMs)),
            logger: logger)
    }

    /// Authentication and TLS of an HTTP sink; reads the bearer token file.
    static func httpOptions(_ settings: CollectorConfiguration.HTTPSinkSettings, path: String) throws(BasicsError)
        -> (auth: HTTPAuth, tls: TLSOptions)
    {
        var auth = HTTPAuth.none
        if let username = settings.username { auth = .basic(username: username, password: settings.password ?? "") }
        if let token = settings.bearerToken { auth = .bearer(token: token) }
        if let file = settings.bearerTokenFile {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw BasicsError(.invalidConfiguration, "\(path).bearerTokenFile: cannot read \(file)")
            }
            auth = .bearer(token: String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let tls = TLSOptions(
            caFile: settings.caFile, clientCertificateFile: settings.clientCertificate,
            clientKeyFile: settings.clientKey)
        return (auth, tls)
    }
}

extension Collector {
    static func endpoint(_ settings: CollectorConfiguration.ElasticsearchSettings) throws -> ElasticsearchEndpoint {
        var auth = HTTPAuth.none
        if let username = settings.username { auth = .basic(username: username, password: settings.password ?? "") }
        if let key = settings.apiKey { auth = .apiKey(key) }
        if let token = settings.bearerToken { auth = .bearer(token: token) }
        return try ElasticsearchEndpoint.parse(settings.url, auth: auth, tls: TLSOptions(caFile: settings.caFile))
    }

    /// The `audit.elasticsearch` stream: audit documents enter the ingest loop like a sensor's batches.
    func auditStream(ingest: IngestService, store: Store) throws -> ElasticsearchAuditStream? {
        guard let audit = configuration.audit else { return nil }
        let settings = audit.elasticsearch
        let start = try audit.start.map(AuditCommand.parseTime) ?? WallClock.now()
        let feed = AuditFeed(ingest: ingest, sourceName: settings.indexPrefix, timestampField: audit.timestampField)
        let statistics = AuditSourceStatistics()
        Self.exportAuditStatistics(statistics, source: "elasticsearch", into: telemetry)
        return ElasticsearchAuditStream(
            client: ElasticsearchClient(endpoint: try Self.endpoint(settings), logger: logger), store: store,
            configuration: .init(
                indexPrefix: settings.indexPrefix, timestampField: audit.timestampField, start: start,
                lag: .seconds(max(1, audit.lagSeconds)), mapping: AuditMapping(preset: audit.layout)),
            logger: logger, statistics: statistics
        ) { records in try await feed.submit(records) }
    }

    /// `audit.file` and `audit.webhook`: raw audit events from kube-apiserver itself, into the same ingest loop.
    /// The webhook listens here, so a port in use or an unreadable certificate stops the start-up.
    func auditFileAndWebhook(ingest: IngestService, store: Store) throws -> [any Service] {
        var services: [any Service] = []
        if let file = configuration.auditFile {
            let feed = AuditFeed(ingest: ingest, sourceName: "file:\(file.path)", timestampField: "stageTimestamp")
            let statistics = AuditSourceStatistics()
            Self.exportAuditStatistics(statistics, source: "file", into: telemetry)
            let startAt = FileAuditSource.StartPosition(rawValue: file.startAt) ?? .end
            services.append(
                FileAuditSource(
                    store: store, configuration: .init(path: file.path, startAt: startAt), logger: logger,
                    statistics: statistics
                ) { records in try await feed.submit(records) })
        }
        if let hook = configuration.auditWebhook {
            let feed = AuditFeed(ingest: ingest, sourceName: "webhook", timestampField: "stageTimestamp")
            let statistics = AuditSourceStatistics()
            Self.exportAuditStatistics(statistics, source: "webhook", into: telemetry)
            let source = try WebhookAuditSource(
                configuration: .init(
                    listen: hook.listen, path: hook.path, tlsCertificateFile: hook.tlsCertFile,
                    tlsKeyFile: hook.tlsKeyFile, clientCAFile: hook.clientCAFile, maxBodyBytes: hook.maxBodyBytes),
                logger: logger, statistics: statistics
            ) { records in try await feed.submit(records) }
            services.append(source)
        }
        return services
    }

    /// `patrol_audit_documents_total` and `patrol_audit_malformed_total` for one source, copied at each scrape.
    static func exportAuditStatistics(_ statistics: AuditSourceStatistics, source: String, into telemetry: Telemetry) {
        let documents = CounterMirror(label: "patrol_audit_documents_total", dimensions: [("source", source)])
        let malformed = CounterMirror(label: "patrol_audit_malformed_total", dimensions: [("source", source)])
        telemetry.onScrape {
            documents.update(to: statistics.documents)
            malformed.update(to: statistics.malformed)
        }
    }

    /// Copies the RPC server's counters (kept by nng and the server) into metrics at each scrape.
    static func exportServerStats(_ server: RPCServer, into telemetry: Telemetry) {
        let refused = CounterMirror(label: "patrol_rpc_tls_handshakes_refused_total")
        let undecodable = CounterMirror(label: "patrol_rpc_undecodable_messages_total")
        let accepted = CounterMirror(label: "patrol_rpc_connections_accepted_total")
        let acceptFailures = CounterMirror(label: "patrol_rpc_accept_failures_total")
        let served = CounterMirror(label: "patrol_rpc_requests_total")
        let open = Gauge(label: "patrol_rpc_connections_open")
        telemetry.onScrape {
            let stats = server.stats
            refused.update(to: stats.tlsRefusals)
            undecodable.update(to: stats.decodeFailures)
            accepted.update(to: stats.connectionsAccepted)
            acceptFailures.update(to: stats.acceptFailures)
            served.update(to: stats.requestsServed)
            open.record(Double(stats.openConnections))
        }
    }
}

/// Runs an RPC server as a Service: stops accepting on graceful shutdown. `serving` is set while it serves
/// (the collector's `/readyz`).
struct RPCServerService: Service {
    let server: RPCServer
    let serving: ReadyFlag

    func run() async throws {
        serving.set(true)
        await withGracefulShutdownHandler {
            await server.run()
        } onGracefulShutdown: {
            serving.set(false)
            server.close()
        }
        serving.set(false)
    }
}

enum Host {
    static var localName: String { ProcessInfo.processInfo.hostName }
}

/// Expands rule paths: files as given, directories to their `*.yaml`/`*.yml` files in name order.
enum RuleFiles {
    static func expand(_ paths: [String]) throws -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw BasicsError(.invalidConfiguration, "rule path \(path) does not exist")
            }
            if isDirectory.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: path)
                    .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
                files += names.map { "\(path)/\($0)" }
            } else {
                files.append(path)
            }
        }
        return files
    }
}
