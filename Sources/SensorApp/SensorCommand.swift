import ArgumentParser
import Basics
import EventModel
import Foundation
import KernelEvents
import KubernetesAPI
import Logging
import ServiceLifecycle
import Telemetry

/// `patrol-sensor`: captures events on a node and streams them to the collector.
public struct SensorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "patrol-sensor",
        abstract: "Patrol's node sensor: capture events and stream them to the collector.",
        discussion: """
            Without --replay, captures live with eBPF (needs root or CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN); \
            hooks that cannot attach are logged by name with the kernel's reason, reported to the collector, \
            and the rest keep running. When no hook can load at all (no privilege, no tracefs), the sensor \
            names the failing step and reason and exits with status 77 (permission refused) or 69 (other), \
            unless --allow-no-capture is given. With --replay, sends a recorded JSON-lines capture (docs/replay.md) through the real transport \
            instead of capturing live. Unacked batches are kept in memory and spilled to --spool-dir while \
            the collector is unreachable; every drop is counted.
            """,
        version: PatrolVersion.current)

    @Option(name: .long, help: ArgumentHelp("Collector NNG address.", valueName: "address"))
    var collector = "tcp://127.0.0.1:7600"

    @Option(name: .long, help: ArgumentHelp("Sensor identity; defaults to the host name.", valueName: "id"))
    var sensorID: String?

    @Option(name: .long, help: ArgumentHelp("Node name stamped on events; defaults to the host name.", valueName: "name"))
    var node: String?

    @Option(name: .long, help: ArgumentHelp("Replay a JSON-lines capture instead of capturing live.", valueName: "file"))
    var replay: String?

    @Option(name: .long, help: ArgumentHelp("Send the replay file this many times.", valueName: "n"))
    var `repeat` = 1

    @Flag(name: .long, help: "With --replay: exit once the collector has acked everything.")
    var exitWhenDone = false

    @Option(name: .long, help: ArgumentHelp("Events per batch.", valueName: "n"))
    var batchSize = 1000

    @Option(name: .long, help: ArgumentHelp("Unacked batches kept in memory before spilling to the spool.", valueName: "n"))
    var memoryBatches = 64

    @Option(name: .long, help: ArgumentHelp("Directory for batches spilled while the collector is unreachable.", valueName: "dir"))
    var spoolDir: String?

    @Option(name: .long, help: ArgumentHelp("Bound on the spool's size in bytes; overflow is counted.", valueName: "bytes"))
    var spoolMaxBytes = 256 << 20

    @Option(name: .long, help: ArgumentHelp("Client certificate (PEM) for tls+tcp://.", valueName: "file"))
    var tlsCert: String?

    @Option(name: .long, help: ArgumentHelp("Client private key (PEM).", valueName: "file"))
    var tlsKey: String?

    @Option(name: .long, help: ArgumentHelp("CA (PEM) the collector's certificate must chain to.", valueName: "file"))
    var tlsCA: String?

    @Flag(name: .long, help: "Without --replay: do not capture live from the kernel.")
    var noCapture = false

    @Option(name: .long, help: ArgumentHelp("Identical events inside this window become one with a count (0: off).", valueName: "ms"))
    var dedupWindowMs = 250

    @Option(name: .long, help: ArgumentHelp("Seconds per syscall-set window.", valueName: "s"))
    var syscallWindow = 10

    @Option(
        name: .long,
        help: ArgumentHelp("Comma-separated event kinds to capture (exec,open,connect,...); default all.", valueName: "kinds"))
    var kinds: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Records held between the ring-buffer thread and the decoder (about 0.4 KiB each); "
                + "when full, the kernel ring buffer holds the rest.",
            valueName: "n"))
    var queueCapacity = LiveCaptureConfiguration().queueCapacity

    @Option(name: .long, help: ArgumentHelp("A cgroup id the kernel ignores (repeatable).", valueName: "id"))
    var ignoreCgroup: [UInt64] = []

    @Flag(name: .long, help: "Keep running (connected, reporting, delivering the spool) when no BPF hook can load.")
    var allowNoCapture = false

    @Option(name: .long, help: ArgumentHelp("Seconds between status reports to the collector.", valueName: "s"))
    var statusInterval = 10

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Serve /metrics, /healthz and /readyz over HTTP on this host:port (e.g. 127.0.0.1:9465); default off.",
            valueName: "host:port"))
    var metricsListen: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Kubernetes API URL for pod labels and owners; default: in-cluster (KUBERNETES_SERVICE_HOST), else off.",
            valueName: "url"))
    var kubeAPI: String?

    @Option(name: .long, help: ArgumentHelp("Bearer token file for the Kubernetes API.", valueName: "file"))
    var kubeTokenFile: String?

    @Option(
        name: .long, help: ArgumentHelp("CA (PEM) the Kubernetes API's certificate must chain to.", valueName: "file"))
    var kubeCAFile: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Seconds between full re-lists of this node's pods, a safety net: changes arrive through a watch "
                + "(1-3600).",
            valueName: "s"))
    var kubeListInterval = 600

    @Option(
        name: .long,
        help: ArgumentHelp(
            "ClamAV database directory for malware scanning; default rules/malware when it exists in the working "
                + "directory, else scanning is off. 'off' turns it off.",
            valueName: "dir"))
    var scanDatabase: String?

    @Option(name: .long, help: ArgumentHelp("Seconds between scheduled full host scans (0: none).", valueName: "s"))
    var scanInterval = 0

    @Option(name: .long, help: ArgumentHelp("Host paths a scheduled scan walks (repeatable).", valueName: "path"))
    var scanRoot: [String] = []

    @Option(name: .long, help: ArgumentHelp("Scanner threads (each uses at most one core).", valueName: "n"))
    var scanThreads = 1

    @Option(name: .long, help: ArgumentHelp("Most files scanned per second (0: unlimited).", valueName: "n"))
    var scanFilesPerSecond: Double = 0

    @Option(name: .long, help: ArgumentHelp("Nice value of the scanner threads (0-19).", valueName: "n"))
    var scanNice: Int32 = 10

    @Option(
        name: .long,
        help: ArgumentHelp(
            "File keeping the incremental scan cache across restarts; default: in memory only.", valueName: "file"))
    var scanCache: String?

    @Option(name: .long, help: ArgumentHelp("Log level.", valueName: "level"))
    var logLevel: Logger.Level = .info

    public init() {}

    public func run() async throws {
        PatrolLogging.bootstrap(level: logLevel)
        let logger = Logger(label: "patrol.sensor")
        var tls: (certificate: String, key: String, ca: String)?
        switch (tlsCert, tlsKey, tlsCA) {
        case (nil, nil, nil): break
        case (let cert?, let key?, let ca?): tls = (cert, key, ca)
        default: throw ValidationError("--tls-cert, --tls-key and --tls-ca must be given together")
        }
        var configuration = SensorConfiguration(
            collector: collector, replayPath: replay, replayRepeat: `repeat`, batchSize: batchSize,
            memoryQueueBatches: memoryBatches, spoolDirectory: spoolDir, spoolMaxBytes: spoolMaxBytes, tls: tls,
            exitWhenDone: exitWhenDone)
        configuration.liveCapture = !noCapture
        configuration.capture.dedupWindow = .milliseconds(max(0, dedupWindowMs))
        configuration.capture.syscallSetInterval = .seconds(max(1, syscallWindow))
        configuration.capture.ignoredCgroups = ignoreCgroup
        configuration.capture.queueCapacity = max(1, queueCapacity)
        if let kinds {
            var enabled = Set<KernelRecordKind>()
            for name in kinds.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                guard let kind = EventKind(rawValue: name), !KernelRecordKind.kinds(for: kind).isEmpty else {
                    throw ValidationError("--kinds: \(name) is not a kind the sensor captures")
                }
                enabled.formUnion(KernelRecordKind.kinds(for: kind))
            }
            configuration.capture.enabledKinds = enabled
        }
        if let sensorID { configuration.sensorID = sensorID }
        if let node { configuration.node = node }
        configuration.requireCapture = !allowNoCapture
        configuration.statusInterval = .seconds(max(1, statusInterval))
        configuration.malwareScan = try malwareScanConfiguration(logger: logger)
        // Labels and owners from the Kubernetes API when one is configured or the sensor runs in a cluster.
        var kubernetes: KubernetesPodWatcher?
        if var api = KubernetesAPIConfiguration.resolve(
            apiURL: kubeAPI, tokenFile: kubeTokenFile, caFile: kubeCAFile, nodeName: configuration.node)
        {
            api = KubernetesAPIConfiguration(
                baseURL: api.baseURL, tokenFile: api.tokenFile, caFile: api.caFile, nodeName: api.nodeName,
                listInterval: .seconds(kubeListInterval))
            kubernetes = KubernetesPodWatcher(configuration: api, index: PodIndex(), logger: logger)
        } else {
            logger.info("no Kubernetes API configured: pod labels and owners are not known (annotations only)")
        }
        let sensor = try Sensor(
            configuration: configuration, logger: logger, containerResolver: ContainerResolver(pods: kubernetes?.index),
            kubernetes: kubernetes)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: sensor, successTerminationBehavior: .gracefullyShutdownGroup)
        ]
        // It returns at graceful shutdown; the sensor decides when the group ends.
        if let kubernetes { services.append(.init(service: kubernetes, successTerminationBehavior: .ignore)) }
        if let metricsListen {
            let telemetry = Telemetry.bootstrap()
            let metrics = SensorStatusMetrics()
            telemetry.onScrape { metrics.record(sensor.status) }
            // Ready once live capture has settled and the collector accepted the hello.
            telemetry.addReadinessCheck("sensor") { sensor.isReady }
            let server = try StatusServer(address: metricsListen, telemetry: telemetry, logger: logger)
            logger.info("status endpoint listening", metadata: ["address": "\(server.boundAddress)"])
            services.append(.init(service: StatusService(server: server)))
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as SensorError {
            // Say it plainly on stderr as well as in the log: this is what an operator reads in `kubectl logs`.
            var text = "patrol-sensor: \(error)\n"
            if error.isPermissionDenied {
                text += "patrol-sensor: EPERM: the kernel refused BPF; run as root or with CAP_BPF, CAP_PERFMON and "
                    + "CAP_SYS_ADMIN (exit status 77)\n"
            }
            FileHandle.standardError.write(Data(text.utf8))
            throw ExitCode(error.isPermissionDenied ? 77 : 69)
        }
    }
}

extension SensorCommand {
    /// Scanning is on when a database is given, or when `rules/malware` (Patrol's shipped signatures) is in the
    /// working directory, as in the container image.
    func malwareScanConfiguration(logger: Logger) throws -> MalwareScanConfiguration? {
        var directory = scanDatabase
        if directory == nil {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: "rules/malware", isDirectory: &isDirectory),
                isDirectory.boolValue
            {
                directory = FileManager.default.currentDirectoryPath + "/rules/malware"
            }
        }
        guard let directory, directory != "off" else {
            logger.info("malware scanning off: no --scan-database and no rules/malware in the working directory")
            return nil
        }
        guard scanThreads >= 1, scanFilesPerSecond >= 0, (0...19).contains(scanNice), scanInterval >= 0 else {
            throw ValidationError("--scan-threads must be at least 1, --scan-files-per-second and --scan-interval "
                + "at least 0, --scan-nice 0-19")
        }
        return MalwareScanConfiguration(
            databaseDirectory: directory, interval: scanInterval > 0 ? .seconds(scanInterval) : nil,
            roots: scanRoot.isEmpty ? ["/"] : scanRoot, threads: scanThreads, filesPerSecond: scanFilesPerSecond,
            niceness: scanNice, cacheFile: scanCache)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
