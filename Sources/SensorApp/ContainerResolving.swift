public import EventModel

/// Maps a kernel cgroup id (and the pid, for runtimes whose cgroup alone is ambiguous) to the container
/// it belongs to. Called once per captured event on the capture task, so implementations must be cheap
/// (cache) and must not block. nil means the host.
public protocol ContainerResolving: Sendable {
    func container(forCgroup id: UInt64, pid: Int32) -> ContainerRef?
    /// Where an executable of a container lives: its writable (upper) layer, and/or a volume mount.
    func execOrigin(_ path: String, cgroup id: UInt64, pid: Int32) -> (upperLayer: Bool, fromVolume: Bool)
    /// The container's file system layout (its volume mounts mark opens `fromVolume`); nil for the host.
    func filesystem(forCgroup id: UInt64, pid: Int32) -> ContainerFilesystem?
    /// Told once the capture's probes are attached (CLOCK_BOOTTIME nanoseconds): containers started before it
    /// are marked `runningAtSensorStart`, since their earlier behaviour was not seen.
    func observationStarted(at bootNanoseconds: UInt64)
}

extension ContainerResolving {
    public func execOrigin(_ path: String, cgroup id: UInt64, pid: Int32) -> (upperLayer: Bool, fromVolume: Bool) {
        (false, false)
    }
    public func filesystem(forCgroup id: UInt64, pid: Int32) -> ContainerFilesystem? { nil }
    public func observationStarted(at bootNanoseconds: UInt64) {}
}

/// The default resolver: everything is the host.
public struct HostOnlyResolver: ContainerResolving {
    public init() {}
    public func container(forCgroup id: UInt64, pid: Int32) -> ContainerRef? { nil }
}
