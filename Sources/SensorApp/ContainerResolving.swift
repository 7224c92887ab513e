public import EventModel

/// Maps a kernel cgroup id (and the pid, for runtimes whose cgroup alone is ambiguous) to the container
/// it belongs to. Called once per captured event on the capture task, so implementations must be cheap
/// (cache) and must not block. nil means the host.
public protocol ContainerResolving: Sendable {
    func container(forCgroup id: UInt64, pid: Int32) -> ContainerRef?
    /// Where an executable of a container lives: its writable (upper) layer, and/or a volume mount.
    func execOrigin(_ path: String, cgroup id: UInt64, pid: Int32) -> (upperLayer: Bool, fromVolume: Bool)
}

extension ContainerResolving {
    public func execOrigin(_ path: String, cgroup id: UInt64, pid: Int32) -> (upperLayer: Bool, fromVolume: Bool) {
        (false, false)
    }
}

/// The default resolver: everything is the host.
public struct HostOnlyResolver: ContainerResolving {
    public init() {}
    public func container(forCgroup id: UInt64, pid: Int32) -> ContainerRef? { nil }
}
