import Basics
import Foundation

/// A volume mounted into a container: where it appears inside (`destination`) and where it comes from on the host.
public struct VolumeMount: Sendable, Hashable {
    public var destination: String
    public var source: String

    public init(destination: String, source: String = "") {
        self.destination = destination
        self.source = source
    }
}

/// A container's file system layout, learnt once per container: the overlay upper directory (writes made after
/// the container started land there) and the volume mount destinations. Answers the two questions the sensor asks
/// of an executed file: was it added or changed in the container (`isInUpperLayer`), and does it come from a
/// volume (`isFromVolume`).
public struct ContainerFilesystem: Sendable, Hashable {
    /// The overlay upperdir as the sensor can open it (host root prefix applied); nil when the root is not an
    /// overlay or is unknown.
    public var upperDir: String?
    public var lowerDirs: [String]
    public var rootfs: String?
    /// Volume mounts, longest destination first.
    public var volumes: [VolumeMount]

    public init(upperDir: String? = nil, lowerDirs: [String] = [], rootfs: String? = nil, volumes: [VolumeMount] = []) {
        self.upperDir = upperDir
        self.lowerDirs = lowerDirs
        self.rootfs = rootfs
        self.volumes = volumes.sorted { $0.destination.count > $1.destination.count }
    }

    /// Destinations the runtime or kubelet mounts into every container; they are not the pod's volumes.
    public static let runtimeProvidedDestinations: Set<String> = [
        "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/termination-log", "/dev/shm",
    ]
    /// Pseudo file systems, never volumes.
    public static let pseudoPrefixes = ["/proc", "/sys", "/dev"]

    /// The volume mounts among a container's mounts: bind mounts, less the runtime's own files and pseudo trees.
    public static func volumes(from mounts: [OCIMount]) -> [VolumeMount] {
        mounts.compactMap { mount in
            guard mount.isBind, let destination = normalize(mount.destination), destination != "/" else { return nil }
            guard !runtimeProvidedDestinations.contains(destination),
                !pseudoPrefixes.contains(where: { isUnder(destination, $0) })
            else { return nil }
            return VolumeMount(destination: destination, source: mount.source)
        }
    }

    /// Volume-like mounts seen in a container's mountinfo, used when the runtime's spec is unavailable: mounts
    /// other than the root whose file system is not a pseudo or overlay one.
    public static func volumes(fromMountInfo entries: [MountInfoEntry]) -> [VolumeMount] {
        let pseudo: Set<String> = [
            "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "overlay", "devtmpfs", "securityfs",
            "debugfs", "tracefs", "bpf", "hugetlbfs", "pstore", "configfs", "fusectl", "binfmt_misc", "nsfs",
        ]
        return entries.compactMap { entry in
            guard let destination = normalize(entry.mountPoint), destination != "/",
                !pseudo.contains(entry.fileSystemType), !runtimeProvidedDestinations.contains(destination),
                !pseudoPrefixes.contains(where: { isUnder(destination, $0) })
            else { return nil }
            return VolumeMount(destination: destination, source: entry.root)
        }
    }

    /// The volume an absolute path inside the container lies under.
    public func volume(containing path: String) -> VolumeMount? {
        // Asked for every open of a container with volumes: a path already in normal form (nearly all) is used
        // as it is, without splitting and joining it.
        guard !volumes.isEmpty, let path = Self.isNormalized(path) ? path : Self.normalize(path) else { return nil }
        return volumes.first { Self.isUnder(path, $0.destination) }
    }

    /// True when `normalize` would return `path` unchanged: absolute, no empty, `.` or `..` component, no
    /// trailing slash (except `/` itself).
    static func isNormalized(_ path: String) -> Bool {
        let bytes = path.utf8
        guard bytes.first == UInt8(ascii: "/") else { return false }
        if bytes.count == 1 { return true }
        let slash = UInt8(ascii: "/")
        let dot = UInt8(ascii: ".")
        // Length of the current component so far, and how many of its bytes are dots (a component of only one or
        // two dots is `.` or `..`).
        var length = 0
        var dots = 0
        for byte in bytes.dropFirst() {
            if byte == slash {
                if length == 0 || (length == dots && dots <= 2) { return false }
                length = 0
                dots = 0
            } else {
                length += 1
                if byte == dot { dots += 1 }
            }
        }
        return length > 0 && !(length == dots && dots <= 2)
    }

    /// True when `path` (absolute, inside the container) is under a volume mount.
    public func isFromVolume(_ path: String) -> Bool {
        volume(containing: path) != nil
    }

    /// True when `path` (absolute, inside the container) exists in the overlay upper directory: the file was
    /// written (or copied up by a change) after the container started, so it is not the image's. A whiteout (a
    /// deleted image file) does not count, nor does a path under a volume. Costs one `lstat`.
    public func isInUpperLayer(_ path: String) -> Bool {
        guard let upperDir, let path = Self.normalize(path), path != "/", !isFromVolume(path) else { return false }
        var info = stat()
        guard lstat(upperDir + path, &info) == 0 else { return false }
        let isCharacterDevice = info.st_mode & S_IFMT == S_IFCHR
        return !(isCharacterDevice && info.st_rdev == 0)
    }

    /// Lexically normalised absolute path (`//`, `.` and `..` resolved); nil for relative paths.
    static func normalize(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return nil }
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                _ = parts.popLast()
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    static func isUnder(_ path: String, _ directory: String) -> Bool {
        if directory == "/" { return true }
        // Compared as bytes, without building `directory + "/"` per call.
        let p = path.utf8
        let d = directory.utf8
        guard p.count >= d.count, p.starts(with: d) else { return false }
        return p.count == d.count || p[p.index(p.startIndex, offsetBy: d.count)] == UInt8(ascii: "/")
    }
}
