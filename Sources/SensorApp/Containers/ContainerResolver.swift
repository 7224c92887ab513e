import Basics
import EventModel
import Foundation
import KernelEvents
import Synchronization

/// How a `ContainerResolver` finds things and how long it trusts what it found.
public struct ContainerResolverConfiguration: Sendable {
    /// Where `/proc` is (the host's, with hostPID).
    public var procRoot: String
    /// The cgroup v2 mount point; nil finds it from `<procRoot>/self/mountinfo`.
    public var cgroupMountPoint: String?
    /// The runtimes' state roots and the host root prefix.
    public var stateReader: RuntimeStateReader
    /// A cached entry is trusted this long before its cgroup directory is stat'ed again.
    public var revalidateInterval: Duration
    /// An entry is resolved again from scratch (runtime state re-read) after this long.
    public var timeToLive: Duration
    /// After a container's cgroup disappears, its entry still answers for this long, for events still queued.
    public var exitGrace: Duration
    /// A container whose runtime state was not found yet is looked up again after this long.
    public var incompleteRetryInterval: Duration
    /// At most this many cgroups are cached.
    public var maxEntries: Int
    /// The cgroup index walks the hierarchy at most this often on misses.
    public var indexRefreshInterval: Duration
    /// The cgroup index holds at most this many directories.
    public var maxIndexedCgroups: Int
    /// When the sensor began to observe, in CLOCK_BOOTTIME nanoseconds (the clock of `/proc/<pid>/stat`'s start
    /// time): a container whose init process started earlier is marked `runningAtSensorStart`. Nil: when the
    /// resolver is created, until the capture calls `observationStarted(at:)` once its probes are attached.
    public var observationStart: UInt64?

    public init(
        procRoot: String = "/proc", cgroupMountPoint: String? = nil, stateReader: RuntimeStateReader = .init(),
        revalidateInterval: Duration = .seconds(2), timeToLive: Duration = .seconds(600),
        exitGrace: Duration = .seconds(5), incompleteRetryInterval: Duration = .milliseconds(100), maxEntries: Int = 16_384,
        indexRefreshInterval: Duration = .milliseconds(500), maxIndexedCgroups: Int = 100_000,
        observationStart: UInt64? = nil
    ) {
        self.procRoot = procRoot
        self.cgroupMountPoint = cgroupMountPoint
        self.stateReader = stateReader
        self.revalidateInterval = revalidateInterval
        self.timeToLive = timeToLive
        self.exitGrace = exitGrace
        self.incompleteRetryInterval = incompleteRetryInterval
        self.maxEntries = maxEntries
        self.indexRefreshInterval = indexRefreshInterval
        self.maxIndexedCgroups = maxIndexedCgroups
        self.observationStart = observationStart
    }
}

/// Counters of a `ContainerResolver`, for metrics and tests.
public struct ContainerResolverStats: Sendable, Hashable {
    public var hits = 0
    /// Lookups that resolved from scratch.
    public var resolutions = 0
    /// Cached entries checked against their cgroup directory.
    public var revalidations = 0
    /// Entries whose cgroup directory disappeared (container exited).
    public var exits = 0
    /// Entries dropped because their path now belongs to another cgroup id.
    public var remapped = 0
    /// Entries dropped by TTL or the size bound.
    public var evictions = 0
    /// Containers found in a cgroup path but not in any runtime's state.
    public var metadataMisses = 0
    /// Lookups answered from `/proc/<pid>/cgroup` because the cgroup id was unknown.
    public var procFallbacks = 0
    public var entries = 0
}

/// cgroup id (+ pid) → `ContainerRef`, cached per cgroup id.
///
/// A lookup goes: cache → cgroup v2 index (inode → path) → `/proc/<pid>/cgroup` → parse the path for a container
/// id and pod uid → read the runtime's state for the pod name, namespace, container name and image. Processes
/// outside containers resolve to nil (the host).
///
/// Entries are keyed by cgroup id, never by pid, so pid reuse cannot carry one container's identity to another
/// process. A container restart creates a new cgroup directory (a new id), so it gets a new entry; the old entry is
/// noticed gone at its next revalidation and dropped after `exitGrace`. An entry whose path now has a different
/// inode is dropped at once and resolved again.
public final class ContainerResolver: ContainerResolving {
    public let configuration: ContainerResolverConfiguration
    /// The v2 index; nil when no cgroup2 hierarchy is mounted (then only `/proc/<pid>/cgroup` is used).
    public let index: CgroupIndex?

    private struct Entry {
        /// The cgroup path (relative to the v2 mount); nil when learnt from v1 lines only.
        var path: String?
        var container: ContainerRef?
        /// Runtime state was found (or the entry is the host's, which needs none).
        var complete: Bool
        var resolvedAt: ContinuousClock.Instant
        var checkedAt: ContinuousClock.Instant
        var goneSince: ContinuousClock.Instant?
        /// The runtime state read for this cgroup's container, and its file system layout once asked for. Kept
        /// per cgroup, not per container id, so a container id reused by a new container is read afresh.
        var metadata: ContainerMetadata?
        var filesystem: ContainerFilesystem?
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var stats = ContainerResolverStats()
    }
    private let state = Mutex(State())

    /// Labels and owners from the Kubernetes API, by pod UID; nil when no API is configured.
    public let pods: PodIndex?

    /// CLOCK_BOOTTIME nanoseconds from which events are captured (see `observationStart`).
    private let observationStart: Atomic<UInt64>

    /// - Parameter pods: the pods on this node from the Kubernetes API (kept fresh by a `KubernetesPodWatcher`).
    public init(configuration: ContainerResolverConfiguration = .init(), pods: PodIndex? = nil) {
        self.configuration = configuration
        self.pods = pods
        observationStart = Atomic(configuration.observationStart ?? BootClock.bootNow())
        let mountPoint =
            configuration.cgroupMountPoint
            ?? CgroupHierarchy.unifiedMountPoint(
                procRoot: configuration.procRoot)
        index = mountPoint.map {
            CgroupIndex(
                mountPoint: $0, maxEntries: configuration.maxIndexedCgroups,
                minimumRefreshInterval: configuration.indexRefreshInterval)
        }
    }

    public var stats: ContainerResolverStats {
        state.withLock { state in
            var stats = state.stats
            stats.entries = state.entries.count
            return stats
        }
    }

    /// When capture began, in CLOCK_BOOTTIME nanoseconds. Containers resolved before this call but started after
    /// the resolver was created keep the answer they got (they are re-resolved only after `timeToLive`).
    public func observationStarted(at bootNanoseconds: UInt64) {
        observationStart.store(bootNanoseconds, ordering: .relaxed)
    }

    /// The observation start in effect.
    public var observationStartNanoseconds: UInt64 { observationStart.load(ordering: .relaxed) }

    // MARK: - ContainerResolving

    /// The container of a process, or nil for the host. `id` 0 means the cgroup id is unknown; then the pid's
    /// `/proc/<pid>/cgroup` decides.
    public func container(forCgroup id: UInt64, pid: Int32) -> ContainerRef? {
        withPodMetadata(runtimeContainer(forCgroup: id, pid: pid))
    }

    /// The container as the cgroup and the runtime's state describe it (no Kubernetes API data).
    private func runtimeContainer(forCgroup id: UInt64, pid: Int32) -> ContainerRef? {
        if id == 0 { return containerByPID(pid) }
        let now = ContinuousClock.now
        switch cached(id, now: now) {
        case .answer(let container): return container
        case .resolve: break
        }
        return resolve(id, pid: pid, now: now)
    }

    /// Adds the pod's labels and owner from the API's pod index. Done per lookup rather than stored in the cache,
    /// so a relabelled pod shows its new labels from the next list on, and a pod the API does not know yet (or an
    /// API outage) leaves the annotations-only identity, filled in as soon as a list brings the pod.
    private func withPodMetadata(_ container: ContainerRef?) -> ContainerRef? {
        guard var container, let pods, !container.podUID.isEmpty, let pod = pods.pod(uid: container.podUID) else {
            return container
        }
        container.labels = pod.labels
        container.ownerKind = pod.ownerKind
        container.ownerName = pod.ownerName
        // Runtimes whose state was not found yet name no pod; the API does.
        if container.podName.isEmpty { container.podName = pod.name }
        if container.namespace.isEmpty { container.namespace = pod.namespace }
        return container
    }

    /// The container's file system layout (overlay upper directory, volumes), learnt once per container.
    public func filesystem(forCgroup id: UInt64, pid: Int32) -> ContainerFilesystem? {
        guard let container = container(forCgroup: id, pid: pid) else { return nil }
        let key = id != 0 ? id : unifiedID(pid: pid)
        let cached = key.flatMap { key in
            state.withLock { state in state.entries[key].map { ($0.filesystem, $0.metadata) } }
        }
        if let known = cached?.0 { return known }
        var metadata = cached?.1
        if cached == nil {
            // Not cached (a v1-only answer): read the runtime state directly.
            metadata = configuration.stateReader.metadata(containerID: container.containerID)
        }
        let (filesystem, cacheable) = learnFilesystem(metadata: metadata, pid: pid)
        if cacheable, let key {
            state.withLock { state in
                if state.entries[key]?.container?.containerID == container.containerID {
                    state.entries[key]?.filesystem = filesystem
                }
            }
        }
        return filesystem
    }

    private func unifiedID(pid: Int32) -> UInt64? {
        guard let index, let unified = procCgroups(pid).flatMap(ProcCgroupParser.unifiedPath) else { return nil }
        return index.id(ofPath: unified)
    }

    /// Whether the executed file at `path` (inside the container) lives in the container's overlay upper layer.
    /// False for the host and for containers whose root is not an overlay.
    public func isInUpperLayer(_ path: String, cgroup id: UInt64, pid: Int32) -> Bool {
        filesystem(forCgroup: id, pid: pid)?.isInUpperLayer(path) ?? false
    }

    /// Whether `path` (inside the container) is under one of the container's volume mounts.
    public func isFromVolume(_ path: String, cgroup id: UInt64, pid: Int32) -> Bool {
        filesystem(forCgroup: id, pid: pid)?.isFromVolume(path) ?? false
    }

    /// Both exec checks with one layout lookup: what `Exec.upperLayer` and `Exec.fromVolume` carry.
    public func execOrigin(_ path: String, cgroup id: UInt64, pid: Int32) -> (upperLayer: Bool, fromVolume: Bool) {
        guard let filesystem = filesystem(forCgroup: id, pid: pid) else { return (false, false) }
        return (filesystem.isInUpperLayer(path), filesystem.isFromVolume(path))
    }

    /// Revalidates every entry now: drops those whose cgroup is gone past the grace period, whose path maps to
    /// another id, or that outlived the TTL. A sensor calls this periodically so exited containers leave the cache
    /// even when no more events name them.
    public func sweep() {
        let now = ContinuousClock.now
        let snapshot = state.withLock { $0.entries }
        var drop: [UInt64] = []
        var gone: [UInt64] = []
        for (id, entry) in snapshot {
            if now - entry.resolvedAt >= configuration.timeToLive {
                drop.append(id)
            } else if let since = entry.goneSince {
                if now - since >= configuration.exitGrace { drop.append(id) }
            } else if let path = entry.path {
                switch pathState(id: id, path: path) {
                case .same: break
                case .gone: gone.append(id)
                case .remapped: drop.append(id)
                }
            }
        }
        state.withLock { state in
            for id in gone where state.entries[id] != nil {
                state.entries[id]?.goneSince = now
                state.stats.exits += 1
            }
            for id in drop { Self.remove(id, from: &state) }
            state.stats.evictions += drop.count
        }
        for id in gone + drop { index?.forget(id: id) }
    }

    // MARK: - Cache

    private enum CacheAnswer {
        case answer(ContainerRef?)
        case resolve
    }

    private func cached(_ id: UInt64, now: ContinuousClock.Instant) -> CacheAnswer {
        let entry: Entry? = state.withLock { state in
            guard let entry = state.entries[id] else { return nil }
            let fresh =
                now - entry.checkedAt < configuration.revalidateInterval
                && (entry.complete || now - entry.checkedAt < configuration.incompleteRetryInterval)
            if entry.goneSince == nil && fresh && now - entry.resolvedAt < configuration.timeToLive {
                state.stats.hits += 1
            }
            return entry
        }
        guard let entry else { return .resolve }
        if let since = entry.goneSince {
            if now - since < configuration.exitGrace { return .answer(entry.container) }
            drop(id)
            return .resolve
        }
        if now - entry.resolvedAt >= configuration.timeToLive {
            drop(id)
            return .resolve
        }
        let interval = entry.complete ? configuration.revalidateInterval : configuration.incompleteRetryInterval
        if now - entry.checkedAt < interval { return .answer(entry.container) }
        guard let path = entry.path else {
            // Learnt from v1 lines only: nothing to stat, resolve again.
            drop(id)
            return .resolve
        }
        switch pathState(id: id, path: path) {
        case .same:
            if !entry.complete { return .resolve }
            state.withLock { state in
                state.entries[id]?.checkedAt = now
                state.stats.revalidations += 1
            }
            return .answer(entry.container)
        case .gone:
            state.withLock { state in
                state.entries[id]?.goneSince = now
                state.stats.exits += 1
                state.stats.revalidations += 1
            }
            index?.forget(id: id)
            return .answer(entry.container)
        case .remapped:
            state.withLock { $0.stats.remapped += 1 }
            drop(id)
            return .resolve
        }
    }

    private enum PathState { case same, gone, remapped }

    private func pathState(id: UInt64, path: String) -> PathState {
        guard let index else { return .same }
        guard let inode = index.id(ofPath: path) else { return .gone }
        return inode == id ? .same : .remapped
    }

    private func drop(_ id: UInt64) {
        state.withLock { state in
            Self.remove(id, from: &state)
            state.stats.evictions += 1
        }
        index?.forget(id: id)
    }

    private static func remove(_ id: UInt64, from state: inout State) {
        state.entries.removeValue(forKey: id)
    }

    // MARK: - Resolution

    private func resolve(_ id: UInt64, pid: Int32, now: ContinuousClock.Instant) -> ContainerRef? {
        state.withLock { $0.stats.resolutions += 1 }
        var path = verifiedIndexPath(id)
        var procLines: [ProcCgroupEntry]?
        if path == nil, let index {
            // The pid's own v2 line is one file read and a stat, cheaper than a walk; trust it only when its
            // directory really is this cgroup id (the pid may have moved or been reused).
            procLines = procCgroups(pid)
            if let unified = procLines.flatMap(ProcCgroupParser.unifiedPath), index.id(ofPath: unified) == id {
                index.remember(id: id, path: unified)
                path = unified
            } else if index.refresh(force: false) {
                path = verifiedIndexPath(id)
            }
        }
        guard let path else {
            if index != nil {
                // The id is not (or no longer) in the v2 hierarchy. Fall back to the pid's v1 lines only when it
                // has no v2 line to contradict them; never cache a pid-derived answer under the id.
                guard let lines = procLines, ProcCgroupParser.unifiedPath(lines) == nil else { return nil }
                state.withLock { $0.stats.procFallbacks += 1 }
                return ProcCgroupParser.container(lines).flatMap { identify(path: $0.container).0 }
            }
            // No v2 hierarchy: the id says nothing; the pid's lines are all there is.
            return containerFromProcLines(pid)
        }
        let (container, metadata) = identify(path: CgroupPathParser.parse(path))
        store(
            id,
            Entry(
                path: path, container: container, complete: container == nil || metadata != nil, resolvedAt: now,
                checkedAt: now, metadata: metadata))
        return container
    }

    private func verifiedIndexPath(_ id: UInt64) -> String? {
        guard let index, let path = index.cachedPath(for: id) else { return nil }
        if index.id(ofPath: path) == id { return path }
        index.forget(id: id)
        return nil
    }

    /// Resolution when the event carries no cgroup id: the pid's v2 line gives the id (then the cache is used),
    /// else its v1 lines are parsed directly.
    private func containerByPID(_ pid: Int32) -> ContainerRef? {
        guard pid > 0, let lines = procCgroups(pid) else { return nil }
        if let index, let unified = ProcCgroupParser.unifiedPath(lines), let id = index.id(ofPath: unified), id != 0 {
            index.remember(id: id, path: unified)
            return container(forCgroup: id, pid: pid)
        }
        state.withLock { $0.stats.procFallbacks += 1 }
        return ProcCgroupParser.container(lines).flatMap { identify(path: $0.container).0 }
    }

    private func containerFromProcLines(_ pid: Int32) -> ContainerRef? {
        guard let lines = procCgroups(pid) else { return nil }
        state.withLock { $0.stats.procFallbacks += 1 }
        return ProcCgroupParser.container(lines).flatMap { identify(path: $0.container).0 }
    }

    private func procCgroups(_ pid: Int32) -> [ProcCgroupEntry]? {
        guard pid > 0,
            let text = try? String(contentsOfFile: "\(configuration.procRoot)/\(pid)/cgroup", encoding: .utf8)
        else { return nil }
        return ProcCgroupParser.parse(text)
    }

    /// The reference for a parsed cgroup path: nil for the host and runtime monitors; with the runtime's
    /// metadata when a runtime has state for the container (nil metadata: not found yet).
    private func identify(path parsed: CgroupContainerPath?) -> (ContainerRef?, ContainerMetadata?) {
        guard let parsed, !parsed.isMonitor else { return (nil, nil) }
        guard
            let metadata = configuration.stateReader.metadata(
                containerID: parsed.containerID, runtimeHint: parsed.runtimeHint)
        else {
            state.withLock { $0.stats.metadataMisses += 1 }
            let bare = ContainerRef(
                runtime: parsed.runtimeHint ?? "", containerID: parsed.containerID, podUID: parsed.podUID ?? "")
            return (bare, nil)
        }
        var container = metadata.reference(podUIDFromPath: parsed.podUID)
        container.runningAtSensorStart = startedBeforeObservation(initPID: metadata.initPID)
        return (container, metadata)
    }

    /// Whether the container's init process started before the sensor began to observe. The init's start time
    /// is read from `/proc/<pid>/stat` because every runtime's state gives the init pid, while a creation time is
    /// only in some (runc's `state.json` has one, containerd's task directory has none), and it is on the same
    /// boot clock as the observation start, so wall-clock changes do not matter. False when the init pid or its
    /// start time is unknown: such a container is new (its state is not written yet) or already gone.
    private func startedBeforeObservation(initPID: Int32?) -> Bool {
        guard let initPID, initPID > 0,
            let text = try? String(contentsOfFile: "\(configuration.procRoot)/\(initPID)/stat", encoding: .utf8),
            let started = ProcStat.startTimeNanoseconds(text)
        else { return false }
        return started < observationStart.load(ordering: .relaxed)
    }

    private func store(_ id: UInt64, _ entry: Entry) {
        state.withLock { state in
            if state.entries[id] == nil && state.entries.count >= configuration.maxEntries {
                // Make room: exited containers first, then the least recently checked entry.
                let gone = state.entries.filter { $0.value.goneSince != nil }.map(\.key)
                for victim in gone { Self.remove(victim, from: &state) }
                if state.entries.count >= configuration.maxEntries,
                    let oldest = state.entries.min(by: { $0.value.checkedAt < $1.value.checkedAt })?.key
                {
                    Self.remove(oldest, from: &state)
                    state.stats.evictions += 1
                }
                state.stats.evictions += gone.count
            }
            state.entries[id] = entry
        }
    }

    // MARK: - File system layout

    /// Reads the layout from the runtime's mounts and the root mount of the container's init (or of `pid`).
    /// Cacheable when a mountinfo was read.
    private func learnFilesystem(metadata: ContainerMetadata?, pid: Int32) -> (ContainerFilesystem, Bool) {
        let hostRoot = configuration.stateReader.hostRoot
        var mountinfo: [MountInfoEntry]?
        for candidate in [metadata?.initPID, pid].compactMap({ $0 }) where candidate > 0 {
            if let text = try? String(
                contentsOfFile: "\(configuration.procRoot)/\(candidate)/mountinfo", encoding: .utf8)
            {
                mountinfo = MountInfoParser.parse(text)
                break
            }
        }
        let layers = mountinfo.flatMap(MountInfoParser.rootMount).flatMap(MountInfoParser.overlayLayers)
        let volumes =
            metadata.map { ContainerFilesystem.volumes(from: $0.mounts) }
            ?? mountinfo.map { ContainerFilesystem.volumes(fromMountInfo: $0) } ?? []
        let filesystem = ContainerFilesystem(
            upperDir: layers?.upper.map { hostRoot + $0 }, lowerDirs: layers?.lower.map { hostRoot + $0 } ?? [],
            rootfs: metadata?.rootfs, volumes: volumes)
        return (filesystem, mountinfo != nil)
    }
}

/// `/proc/<pid>/stat`, the one field the resolver needs.
public enum ProcStat {
    /// Clock ticks per second of `starttime` (USER_HZ).
    static let ticksPerSecond: UInt64 = {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? UInt64(ticks) : 100
    }()

    /// The process's start time (field 22, `starttime`) in CLOCK_BOOTTIME nanoseconds. The command name (field
    /// 2) is in parentheses and may itself hold spaces and parentheses, so fields are counted after the last `)`.
    public static func startTimeNanoseconds(_ text: String) -> UInt64? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        // After the name: field 3 (state) onwards; starttime is field 22, the 20th of these.
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 20, let ticks = UInt64(fields[19]) else { return nil }
        let (nanoseconds, overflow) = ticks.multipliedReportingOverflow(by: 1_000_000_000 / ticksPerSecond)
        return overflow ? nil : nanoseconds
    }
}
