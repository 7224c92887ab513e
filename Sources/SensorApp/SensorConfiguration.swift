import Foundation

/// How a sensor runs: where its collector is, who it is, and how it batches and spools.
public struct SensorConfiguration: Sendable {
    /// The collector's NNG address.
    public var collector: String
    /// Stable identity of this sensor, normally the node name.
    public var sensorID: String
    /// The node name events are stamped with.
    public var node: String
    /// Unique per start; the collector de-duplicates by (sensor id, boot id, sequence).
    public var bootID: String
    /// Replay this JSON-lines capture instead of live capture.
    public var replayPath: String?
    public var replayRepeat: Int
    /// Events per batch.
    public var batchSize: Int
    /// Unacked batches kept in memory before spilling to `spoolDirectory`.
    public var memoryQueueBatches: Int
    public var spoolDirectory: String?
    public var spoolMaxBytes: Int
    /// Client certificate, key and CA for `tls+tcp://`.
    public var tls: (certificate: String, key: String, ca: String)?
    /// With a replay: exit once everything is acked.
    public var exitWhenDone: Bool
    /// Without a replay: capture live from the kernel (false: `--no-capture`).
    public var liveCapture: Bool
    /// Live capture settings (kinds, ignored cgroups, de-duplication window, syscall-set window).
    public var capture: LiveCaptureConfiguration
    /// Stop with `SensorError.captureUnavailable` when live capture cannot load any hook (false: run on
    /// without capture, reporting the failure).
    public var requireCapture: Bool = true
    /// How often a `SensorStatus` goes to the collector.
    public var statusInterval: Duration = .seconds(10)
    /// Malware scanning (docs/malware.md); nil: off.
    public var malwareScan: MalwareScanConfiguration?

    public init(
        collector: String, sensorID: String = ProcessInfo.processInfo.hostName, node: String? = nil,
        bootID: String = UUID().uuidString.lowercased(), replayPath: String? = nil, replayRepeat: Int = 1,
        batchSize: Int = 1000, memoryQueueBatches: Int = 64, spoolDirectory: String? = nil,
        spoolMaxBytes: Int = 256 << 20, tls: (certificate: String, key: String, ca: String)? = nil,
        exitWhenDone: Bool = false, liveCapture: Bool = true, capture: LiveCaptureConfiguration = .init()
    ) {
        self.liveCapture = liveCapture
        self.capture = capture
        self.collector = collector
        self.sensorID = sensorID
        self.node = node ?? ProcessInfo.processInfo.hostName
        self.bootID = bootID
        self.replayPath = replayPath
        self.replayRepeat = replayRepeat
        self.batchSize = batchSize
        self.memoryQueueBatches = memoryQueueBatches
        self.spoolDirectory = spoolDirectory
        self.spoolMaxBytes = spoolMaxBytes
        self.tls = tls
        self.exitWhenDone = exitWhenDone
    }
}
