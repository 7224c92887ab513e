public import KernelEvents

/// How live capture runs: which kinds the kernel reports, what it ignores, edge de-duplication and the
/// syscall-set window.
public struct LiveCaptureConfiguration: Sendable {
    /// Kinds switched on in the kernel (`sensor_config.enabled_kinds`); the rest cost one map lookup.
    public var enabledKinds: Set<KernelRecordKind>
    /// Cgroup ids the kernel ignores (`ignored_cgroups`).
    public var ignoredCgroups: [UInt64]
    /// Never report the sensor's own process (its tgid), so its own file and socket work does not feed back.
    public var ignoreOwnProcess: Bool
    /// Identical events inside this window become one event with a count; zero disables it.
    public var dedupWindow: Duration
    /// How often the per-cgroup syscall bitmaps are read, cleared and sent as `SyscallSet` events.
    public var syscallSetInterval: Duration
    /// Records held between the ring-buffer thread and the decoder. When it is full the ring-buffer thread
    /// waits and the kernel ring buffer holds the rest, so this bounds user-space memory (about 0.4 KiB per
    /// record) without adding loss; records still queued at shutdown are `user_queue` drops.
    public var queueCapacity: Int
    /// Longest an event waits for its batch to fill before the partial batch is handed on.
    public var batchLinger: Duration
    /// Where tracefs is (mounted there when missing).
    public var tracefsPath: String
    /// The BPF object to load; nil = the one embedded in this binary.
    public var objectBytes: [UInt8]?

    public init(
        enabledKinds: Set<KernelRecordKind> = Set(KernelRecordKind.allCases), ignoredCgroups: [UInt64] = [],
        ignoreOwnProcess: Bool = true, dedupWindow: Duration = .milliseconds(250),
        syscallSetInterval: Duration = .seconds(10), queueCapacity: Int = 8_192, batchLinger: Duration = .milliseconds(20),
        tracefsPath: String = "/sys/kernel/tracing", objectBytes: [UInt8]? = nil
    ) {
        self.enabledKinds = enabledKinds
        self.ignoredCgroups = ignoredCgroups
        self.ignoreOwnProcess = ignoreOwnProcess
        self.dedupWindow = dedupWindow
        self.syscallSetInterval = syscallSetInterval
        self.queueCapacity = queueCapacity
        self.batchLinger = batchLinger
        self.tracefsPath = tracefsPath
        self.objectBytes = objectBytes
    }
}
