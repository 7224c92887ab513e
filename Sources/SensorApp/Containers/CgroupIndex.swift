import Basics
import Foundation
import Synchronization

/// Where the cgroup v2 hierarchy is mounted, and stat helpers for it.
public enum CgroupHierarchy {
    /// The mount point of the `cgroup2` file system in `mountinfo` text (`/sys/fs/cgroup` on a unified host,
    /// `/sys/fs/cgroup/unified` on a hybrid one such as this machine).
    public static func unifiedMountPoint(mountinfo: String) -> String? {
        MountInfoParser.parse(mountinfo).first(where: { $0.fileSystemType == "cgroup2" })?.mountPoint
    }

    /// The v2 mount point of this process's mount namespace, trying the usual places when mountinfo is unreadable.
    public static func unifiedMountPoint(procRoot: String = "/proc") -> String? {
        if let text = try? String(contentsOfFile: "\(procRoot)/self/mountinfo", encoding: .utf8),
            let point = unifiedMountPoint(mountinfo: text)
        {
            return point
        }
        for candidate in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        where FileManager.default.fileExists(atPath: "\(candidate)/cgroup.controllers") {
            return candidate
        }
        return nil
    }

    /// The inode number of a directory, which for a cgroup v2 directory is its cgroup id; nil if it is gone.
    public static func inode(of path: String) -> UInt64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return UInt64(info.st_ino)
    }
}

/// Counters of a `CgroupIndex`, for metrics and tests.
public struct CgroupIndexStats: Sendable, Hashable {
    /// Full walks of the hierarchy.
    public var walks = 0
    /// Misses that wanted a walk but were inside the rate limit.
    public var rateLimited = 0
    /// Walks that stopped at `maxEntries`.
    public var truncatedWalks = 0
    public var entries = 0
}

/// cgroup id → cgroup path for the v2 hierarchy: an index of every directory's inode, built by walking the
/// hierarchy and refreshed lazily when a lookup misses (at most once per `minimumRefreshInterval`, and never more
/// than `maxEntries` directories deep into a huge tree).
///
/// Paths are relative to the hierarchy's mount point and start with `/` (`/kubepods/besteffort/pod…/…`), the form
/// `/proc/<pid>/cgroup` prints.
public final class CgroupIndex: Sendable {
    public let mountPoint: String
    public let maxEntries: Int
    public let maxDepth: Int
    public let minimumRefreshInterval: Duration

    private struct State {
        var paths: [UInt64: String] = [:]
        var lastWalk: ContinuousClock.Instant?
        var stats = CgroupIndexStats()
    }
    private let state = Mutex(State())

    public init(
        mountPoint: String, maxEntries: Int = 100_000, maxDepth: Int = 32,
        minimumRefreshInterval: Duration = .milliseconds(500)
    ) {
        self.mountPoint = mountPoint.count > 1 && mountPoint.hasSuffix("/") ? String(mountPoint.dropLast()) : mountPoint
        self.maxEntries = maxEntries
        self.maxDepth = maxDepth
        self.minimumRefreshInterval = minimumRefreshInterval
    }

    public var stats: CgroupIndexStats {
        state.withLock { state in
            var stats = state.stats
            stats.entries = state.paths.count
            return stats
        }
    }

    /// The absolute path of a path relative to the hierarchy.
    public func absolute(_ relative: String) -> String {
        relative == "/" ? mountPoint : mountPoint + relative
    }

    /// The cgroup id of a relative path, by stat; nil when the directory is gone.
    public func id(ofPath relative: String) -> UInt64? {
        CgroupHierarchy.inode(of: absolute(relative))
    }

    /// The indexed path of `id`, walking the hierarchy again on a miss unless a walk happened recently.
    public func path(for id: UInt64) -> String? {
        if let path = cachedPath(for: id) { return path }
        guard refresh(force: false) else { return nil }
        return cachedPath(for: id)
    }

    /// The indexed path without walking.
    public func cachedPath(for id: UInt64) -> String? {
        state.withLock { $0.paths[id] }
    }

    /// Records a mapping learnt elsewhere (from `/proc/<pid>/cgroup` and a stat).
    public func remember(id: UInt64, path: String) {
        state.withLock { state in
            if state.paths.count < maxEntries || state.paths[id] != nil { state.paths[id] = path }
        }
    }

    /// Drops a mapping that turned out stale.
    public func forget(id: UInt64) {
        _ = state.withLock { $0.paths.removeValue(forKey: id) }
    }

    /// Walks the hierarchy and replaces the index. Without `force`, returns false without walking when the last
    /// walk was less than `minimumRefreshInterval` ago.
    @discardableResult
    public func refresh(force: Bool = true) -> Bool {
        let now = ContinuousClock.now
        let allowed = state.withLock { state -> Bool in
            if !force, let last = state.lastWalk, now - last < minimumRefreshInterval {
                state.stats.rateLimited += 1
                return false
            }
            state.lastWalk = now
            return true
        }
        guard allowed else { return false }
        let (paths, truncated) = walk()
        state.withLock { state in
            state.paths = paths
            state.stats.walks += 1
            if truncated { state.stats.truncatedWalks += 1 }
        }
        return true
    }

    /// Every directory under the mount point, by inode. `readdir`'s `d_ino` is the kernfs id, so no stat is needed
    /// below the root.
    private func walk() -> (paths: [UInt64: String], truncated: Bool) {
        var paths: [UInt64: String] = [:]
        guard let rootID = CgroupHierarchy.inode(of: mountPoint) else { return (paths, false) }
        paths[rootID] = "/"
        var pending: [(relative: String, depth: Int)] = [("", 0)]
        while let (relative, depth) = pending.popLast() {
            guard let directory = opendir(mountPoint + relative) else { continue }
            defer { closedir(directory) }
            while let entry = readdir(directory) {
                guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
                let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                    pointer.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: pointer.pointee)) {
                        String(cString: $0)
                    }
                }
                if name == "." || name == ".." { continue }
                if paths.count >= maxEntries { return (paths, true) }
                let child = relative + "/" + name
                paths[UInt64(entry.pointee.d_ino)] = child
                if depth + 1 < maxDepth { pending.append((child, depth + 1)) }
            }
        }
        return (paths, false)
    }
}
