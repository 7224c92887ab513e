import ArgumentParser
import Basics
import Logging
import Telemetry

/// `patrol-collector`: receives sensor batches, evaluates rules and fans alerts out to sinks.
public struct CollectorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "patrol-collector",
        abstract: "Patrol's central collector: ingest sensor events, evaluate rules, deliver alerts.",
        discussion: """
            Settings come from the YAML file given with --config (see docs/configuration.md); any flag given \
            on the command line overrides the file. Without --config, built-in defaults apply.

            Examples:
              patrol-collector --all-in-one                    # collector + in-process sensor, alerts on stdout
              patrol-collector --listen tcp://0.0.0.0:7600 --store /var/lib/patrol/patrol.db --csv /var/log/patrol/alerts.csv
            """,
        version: PatrolVersion.current,
        subcommands: [AuditCommand.self])

    @Option(name: .long, help: ArgumentHelp("YAML configuration file.", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("NNG address sensors connect to (tcp://, tls+tcp://, ipc://, inproc://). Default tcp://127.0.0.1:7600.", valueName: "address"))
    var listen: String?

    @Option(name: .long, help: ArgumentHelp("Path of the embedded SQLite store. Default ./patrol.db.", valueName: "path"))
    var store: String?

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("Rule file or directory; repeat for several, later ones override earlier. Default ./rules.", valueName: "path"))
    var rules: [String] = []

    @Flag(inversion: .prefixedNo, help: "Print alerts as JSON lines on stdout. Default on.")
    var stdout: Bool?

    @Option(name: .long, help: ArgumentHelp("Append rule alerts to this CSV file (RFC 4180, rotated by size).", valueName: "path"))
    var csv: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Send alerts to Elasticsearch/OpenSearch at this http(s)://host:port (or host:port).", valueName: "url"))
    var elasticsearch: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Alert index prefix for --elasticsearch: <prefix>-YYYY.MM.DD. Default alerts.", valueName: "prefix"))
    var elasticsearchAlerts: String?

    @Option(name: .long, help: ArgumentHelp("CA bundle (PEM) to verify an https Elasticsearch.", valueName: "file"))
    var elasticsearchCA: String?

    @Option(name: .long, help: ArgumentHelp("TLS server certificate (PEM) for tls+tcp://.", valueName: "file"))
    var tlsCert: String?

    @Option(name: .long, help: ArgumentHelp("TLS private key (PEM).", valueName: "file"))
    var tlsKey: String?

    @Option(name: .long, help: ArgumentHelp("CA (PEM) that sensor client certificates must chain to.", valueName: "file"))
    var tlsCA: String?

    @Flag(name: .long, help: "Run a sensor inside the collector over inproc:// (all-in-one mode).")
    var allInOne = false

    @Option(name: .long, help: ArgumentHelp("With --all-in-one: replay this JSON-lines capture (docs/replay.md).", valueName: "file"))
    var replay: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Serve /metrics, /healthz and /readyz over HTTP on this host:port (e.g. 127.0.0.1:9464); default off.",
            valueName: "host:port"))
    var metricsListen: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Admin service for patrolctl: ipc:///path or tls+tcp://host:port (with admin.tls); \"\" turns it off. "
                + "Default ipc:///run/patrol/admin.sock.",
            valueName: "address"))
    var adminListen: String?

    @Option(name: .long, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "level"))
    var logLevel: Logger.Level = .info

    public init() {}

    /// The file's settings with the flags applied on top.
    func resolvedConfiguration() throws -> CollectorConfiguration {
        var result = try config.map { try CollectorConfiguration.load(path: $0) } ?? CollectorConfiguration()
        if let listen { result.listen = listen }
        if let store { result.storePath = store }
        if !rules.isEmpty { result.rulePaths = rules }
        if let stdout { result.sinks.stdout = stdout }
        if let csv { result.sinks.csvPath = csv }
        if let elasticsearch {
            var settings = result.sinks.elasticsearch ?? .init(url: elasticsearch)
            settings.url = elasticsearch
            result.sinks.elasticsearch = settings
        }
        if elasticsearchAlerts != nil || elasticsearchCA != nil {
            guard var settings = result.sinks.elasticsearch else {
                throw ValidationError("--elasticsearch-alerts and --elasticsearch-ca need --elasticsearch (or sinks.elasticsearch)")
            }
            if let elasticsearchAlerts { settings.indexPrefix = elasticsearchAlerts }
            if let elasticsearchCA { settings.caFile = elasticsearchCA }
            result.sinks.elasticsearch = settings
        }
        if allInOne { result.allInOne = true }
        if let replay { result.replayPath = replay }
        if let metricsListen { result.metricsListen = metricsListen }
        if let adminListen {
            guard adminListen.isEmpty || adminListen.hasPrefix("ipc://") || adminListen.hasPrefix("tls+tcp://") else {
                throw ValidationError(
                    "--admin-listen must be ipc:///path or tls+tcp://host:port, or empty to turn it off")
            }
            if adminListen.hasPrefix("tls+tcp://"), result.admin.tls == nil {
                throw ValidationError(
                    "--admin-listen tls+tcp:// needs admin.tls (certificate, key, ca) in the configuration file")
            }
            result.admin.listen = adminListen
            result.admin.explicit = true
        }
        switch (tlsCert, tlsKey, tlsCA) {
        case (nil, nil, nil): break
        case (let cert?, let key?, let ca?): result.tls = .init(certificate: cert, key: key, ca: ca)
        default: throw ValidationError("--tls-cert, --tls-key and --tls-ca must be given together")
        }
        return result
    }

    public func run() async throws {
        let configuration = try resolvedConfiguration()
        PatrolLogging.bootstrap(level: logLevel)
        // swift-metrics takes one backend per process: the executable chooses it, never a library.
        let telemetry = Telemetry.bootstrap()
        try await Collector(configuration: configuration, logger: Logger(label: "patrol.collector"), telemetry: telemetry)
            .run()
    }
}

