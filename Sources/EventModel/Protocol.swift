import Basics

// Value types for the sensor ↔ collector and admin exchanges (proto/patrol/v1/sensor.proto, admin.proto).
// WireFormat converts them to and from protobuf; Transport and the apps only see these.

/// A numbered batch of events from one sensor boot. `(sensorID, bootID, sequence)` identifies it for
/// de-duplication; sequences start at 1 for every boot and have no gaps.
public struct EventBatch: Sendable, Hashable {
    public var sensorID: String
    public var bootID: String
    public var sequence: UInt64
    public var compressed: Bool
    public var events: [Event]

    public init(sensorID: String, bootID: String, sequence: UInt64, compressed: Bool = false, events: [Event]) {
        self.sensorID = sensorID
        self.bootID = bootID
        self.sequence = sequence
        self.compressed = compressed
        self.events = events
    }
}

/// The collector's answer to a batch: everything up to `highestContiguousSequence` is durably handed on.
public struct BatchAck: Sendable, Hashable {
    public var bootID: String
    public var highestContiguousSequence: UInt64
    /// Commands for this sensor, piggy-backed on the ack.
    public var commands: [SensorDirective]

    public init(bootID: String, highestContiguousSequence: UInt64, commands: [SensorDirective] = []) {
        self.bootID = bootID
        self.highestContiguousSequence = highestContiguousSequence
        self.commands = commands
    }
}

/// A command from the collector to a sensor.
public enum SensorDirective: Sendable, Hashable {
    /// Start a malware scan of `path` (empty: the whole host) or of one container.
    case scan(scanID: String, path: String, containerID: String)
    /// Switch event kinds on or off in the kernel.
    case setEnabledKinds([EventKind])
    /// Ignore (or stop ignoring) these cgroup ids in the kernel.
    case ignoreCgroups([UInt64])
}

/// Sent once per connection so the collector knows who is talking.
public struct SensorHello: Sendable, Hashable {
    public var sensorID: String
    public var bootID: String
    public var version: String
    public var kernel: String
    /// Hooks (BPF programs) that loaded and attached.
    public var hooksLoaded: [String]
    /// Hooks that failed, with why.
    public var hooksFailed: [String: String]
    public var nodeLabels: [String: String]
    /// The node the sensor runs on.
    public var node: String

    public init(
        sensorID: String, bootID: String, version: String, kernel: String = "", hooksLoaded: [String] = [],
        hooksFailed: [String: String] = [:], nodeLabels: [String: String] = [:], node: String = ""
    ) {
        self.node = node
        self.sensorID = sensorID
        self.bootID = bootID
        self.version = version
        self.kernel = kernel
        self.hooksLoaded = hooksLoaded
        self.hooksFailed = hooksFailed
        self.nodeLabels = nodeLabels
    }
}

/// Where a sensor drops events. Every drop is counted in exactly one stage.
public enum DropStage: String, Sendable, Hashable, CaseIterable {
    /// `bpf_ringbuf_reserve` failed in the kernel.
    case kernelRingBuffer = "kernel_ringbuf"
    /// The user-space queue from the ring-buffer thread was full.
    case userQueue = "user_queue"
    /// The disk spool was full while the collector was unreachable.
    case spool = "spool"
    /// The record could not be decoded.
    case decode = "decode"
}

/// Periodic health from a sensor.
public struct SensorStatus: Sendable, Hashable {
    public var sensorID: String
    public var bootID: String
    public var time: EpochNanoseconds
    public var drops: [DropStage: UInt64]
    public var queueDepths: [String: UInt64]
    public var hooksLoaded: [String]
    public var hooksFailed: [String: String]
    /// Cumulative counters since this boot, by name (`SensorStatus.Counter` names the ones the sensor sends).
    public var counters: [String: UInt64]
    /// Scans the collector asked for that are queued, running or recently finished, and the scan running now.
    public var scans: [ScanReport]
    /// Why the malware scanner is degraded or unhealthy; empty when healthy or without a scanner.
    public var scannerHealthReason: String

    public init(
        sensorID: String, bootID: String, time: EpochNanoseconds, drops: [DropStage: UInt64] = [:],
        queueDepths: [String: UInt64] = [:], hooksLoaded: [String] = [], hooksFailed: [String: String] = [:],
        counters: [String: UInt64] = [:], scans: [ScanReport] = [], scannerHealthReason: String = ""
    ) {
        self.counters = counters
        self.scans = scans
        self.scannerHealthReason = scannerHealthReason
        self.sensorID = sensorID
        self.bootID = bootID
        self.time = time
        self.drops = drops
        self.queueDepths = queueDepths
        self.hooksLoaded = hooksLoaded
        self.hooksFailed = hooksFailed
    }
}

extension SensorStatus {
    /// Names of the counters a sensor reports in `counters`.
    public enum Counter {
        /// Records read from the kernel's ring buffer.
        public static let eventsCaptured = "events_captured"
        /// Events handed to the batcher (a folded run counts once).
        public static let eventsDelivered = "events_delivered"
        /// Events folded into an earlier identical one by edge de-duplication.
        public static let eventsFolded = "events_folded"
        /// Events the collector acknowledged.
        public static let eventsAcked = "events_acked"
        /// Pod lists from the Kubernetes API applied to the sensor's pod index (labels, owners).
        public static let kubeAPILists = "kube_api_lists"
        /// Kubernetes API requests that failed (no answer, 401/403/5xx, bad JSON); capture goes on without them.
        public static let kubeAPIErrors = "kube_api_errors"
        public static let batchesAcked = "batches_acked"
        /// Batches written to the disk spool while the collector was unreachable.
        public static let batchesSpilled = "batches_spilled"
        /// Batches the collector refused as invalid.
        public static let batchesRejected = "batches_rejected"
    }
}

/// One malware scan as a sensor reports it (`ScanProgress` in sensor.proto). Findings travel apart, as
/// `scan_result` events with the same scan id.
public struct ScanReport: Sendable, Hashable, Codable {
    public enum State: String, Sendable, Hashable, Codable, CaseIterable {
        case queued, running, finished, failed, cancelled

        /// The scan will not change any more.
        public var isFinal: Bool { self == .finished || self == .failed || self == .cancelled }
    }

    public var scanID: String
    public var state: State
    public var filesSeen: UInt64
    public var filesScanned: UInt64
    /// Not read: unchanged since a clean scan.
    public var filesUnchanged: UInt64
    /// Not read: over the size limit.
    public var filesSkipped: UInt64
    public var filesFailed: UInt64
    public var bytesScanned: UInt64
    /// Infected files found.
    public var findings: UInt64
    /// Nanoseconds since the epoch; 0: not yet.
    public var startedAt: EpochNanoseconds
    public var finishedAt: EpochNanoseconds
    /// Why it failed.
    public var error: String

    public init(
        scanID: String, state: State, filesSeen: UInt64 = 0, filesScanned: UInt64 = 0, filesUnchanged: UInt64 = 0,
        filesSkipped: UInt64 = 0, filesFailed: UInt64 = 0, bytesScanned: UInt64 = 0, findings: UInt64 = 0,
        startedAt: EpochNanoseconds = 0, finishedAt: EpochNanoseconds = 0, error: String = ""
    ) {
        self.scanID = scanID
        self.state = state
        self.filesSeen = filesSeen
        self.filesScanned = filesScanned
        self.filesUnchanged = filesUnchanged
        self.filesSkipped = filesSkipped
        self.filesFailed = filesFailed
        self.bytesScanned = bytesScanned
        self.findings = findings
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.error = error
    }
}

/// gRPC's status codes, used for every RPC reply over NNG.
public enum RPCStatus: Int32, Sendable, Hashable, CaseIterable {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16
}

/// One RPC call: the fully qualified method (`patrol.v1.SensorService/SendBatch`) and the encoded request.
public struct RPCRequest: Sendable, Hashable {
    public var method: String
    public var payload: [UInt8]
    public init(method: String, payload: [UInt8]) {
        self.method = method
        self.payload = payload
    }
}

/// One RPC reply: a status, a message for people when not OK, and the encoded reply.
public struct RPCReply: Sendable, Hashable {
    public var status: RPCStatus
    public var message: String
    public var payload: [UInt8]
    public init(status: RPCStatus, message: String = "", payload: [UInt8] = []) {
        self.status = status
        self.message = message
        self.payload = payload
    }
}
