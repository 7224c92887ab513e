import EventModel

/// Maps a kernel event's cgroup id (`bpf_get_current_cgroup_id()`, the inode number of the cgroup v2 directory)
/// and pid to the container the process runs in.
///
/// `nil` means the host: a process outside any container. Implementations must be cheap on a hit, because the
/// sensor asks once per event.
public protocol ContainerResolving: Sendable {
    func container(forCgroup id: UInt64, pid: Int32) -> ContainerRef?
}
