/// What a cgroup path says about the container that owns it: pure parsing, no file system access.
///
/// Recognised forms (the last matching segment wins, so a kind node's `/docker/<node>/kubepods/...` resolves to
/// the innermost container):
/// - containerd with the systemd driver: `.../kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`
/// - CRI-O: `.../crio-<id>.scope`, cgroupfs `.../pod<uid>/crio-<id>`; its monitor `crio-conmon-<id>.scope`
/// - docker: `/system.slice/docker-<id>.scope`, cgroupfs `/docker/<id>`
/// - podman (runc or crun): `/machine.slice/libpod-<id>.scope[/container]`, `/libpod_parent/libpod-<id>`; its
///   monitor `libpod-conmon-<id>.scope`
/// - the plain kubelet cgroupfs form used by containerd and docker: `/kubepods[/<qos>]/pod<uid>/<id>`
public struct CgroupContainerPath: Sendable, Hashable {
    /// The runtime the path's naming implies: `containerd`, `cri-o`, `docker`, `podman`, or nil when the form
    /// (the plain kubelet one) does not say.
    public var runtimeHint: String?
    public var containerID: String
    /// The pod uid in its canonical dashed form, when a `pod<uid>` segment is present.
    public var podUID: String?
    /// True for a runtime monitor's cgroup (`crio-conmon-`, `libpod-conmon-`): conmon runs on the host, outside
    /// the container's namespaces, so the resolver attributes it to the host.
    public var isMonitor: Bool

    public init(runtimeHint: String?, containerID: String, podUID: String?, isMonitor: Bool = false) {
        self.runtimeHint = runtimeHint
        self.containerID = containerID
        self.podUID = podUID
        self.isMonitor = isMonitor
    }
}

public enum CgroupPathParser {
    /// Prefixes of scope (systemd) and cgroupfs container segments, most specific first.
    private static let prefixes: [(prefix: String, runtime: String, monitor: Bool)] = [
        ("cri-containerd-", "containerd", false),
        ("crio-conmon-", "cri-o", true),
        ("crio-", "cri-o", false),
        ("docker-", "docker", false),
        ("libpod-conmon-", "podman", true),
        ("libpod-", "podman", false),
    ]

    /// Parses a cgroup path such as `/kubepods/besteffort/pod<uid>/<id>`; nil for host cgroups (system services,
    /// user sessions, the root, pod-level cgroups without a container).
    public static func parse(_ path: String) -> CgroupContainerPath? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var podUID: String?
        var found: CgroupContainerPath?
        var previous: String?
        var previousWasPod = false
        for segment in segments {
            if let uid = Self.podUID(fromSegment: segment) {
                podUID = uid
                // A container found above a pod segment belongs to an outer level (a kind node).
                found = nil
                previous = segment
                previousWasPod = true
                continue
            }
            if let match = containerSegment(segment, previous: previous, afterPod: previousWasPod) {
                found = CgroupContainerPath(
                    runtimeHint: match.runtime, containerID: match.id, podUID: nil, isMonitor: match.monitor)
                // The pod uid that applies is the one seen before this container segment.
                found?.podUID = podUID
            }
            previous = segment
            previousWasPod = false
        }
        // A pod uid recorded before an outer container (docker/<node>/kubepods/pod<uid>/<id>) was reset above; one
        // recorded before the container that won stays.
        return found
    }

    /// The canonical pod uid from a `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid>.slice` (systemd) segment.
    public static func podUID(fromSegment segment: String) -> String? {
        var candidate: Substring
        if segment.hasSuffix(".slice") {
            let base = segment.dropLast(".slice".count)
            guard base.contains("kubepods"), let range = base.range(of: "-pod", options: .backwards) else {
                return nil
            }
            candidate = base[range.upperBound...]
        } else if segment.hasPrefix("pod") {
            candidate = segment.dropFirst(3)
        } else {
            return nil
        }
        guard candidate.count >= 8, candidate.allSatisfy({ $0.isHexDigit || $0 == "-" || $0 == "_" }) else {
            return nil
        }
        if candidate.hasPrefix("-") || candidate.hasPrefix("_") { candidate = candidate.dropFirst() }
        return String(candidate).replacingOccurrences(of: "_", with: "-").lowercased()
    }

    private static func containerSegment(_ segment: String, previous: String?, afterPod: Bool)
        -> (id: String, runtime: String?, monitor: Bool)?
    {
        var base = Substring(segment)
        if base.hasSuffix(".scope") { base = base.dropLast(".scope".count) }
        for entry in prefixes where base.hasPrefix(entry.prefix) {
            let id = base.dropFirst(entry.prefix.count)
            guard isContainerID(id) else { return nil }
            return (String(id), entry.runtime, entry.monitor)
        }
        if previous == "docker", isContainerID(base), base.count == 64 {
            return (String(base), "docker", false)
        }
        if afterPod, isContainerID(base) {
            return (String(base), nil, false)
        }
        return nil
    }

    /// Container ids are lowercase hex: 64 characters for containerd, CRI-O, docker and podman. Shorter ids (at
    /// least 12) are accepted for hand-made runtimes.
    public static func isContainerID<S: StringProtocol>(_ text: S) -> Bool {
        text.count >= 12 && text.count <= 128
            && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controllers:path`.
public struct ProcCgroupEntry: Sendable, Hashable {
    public var hierarchyID: Int
    public var controllers: [String]
    public var path: String

    /// The cgroup v2 (unified) line: hierarchy 0, no controllers.
    public var isUnified: Bool { hierarchyID == 0 && controllers.isEmpty }

    public init(hierarchyID: Int, controllers: [String], path: String) {
        self.hierarchyID = hierarchyID
        self.controllers = controllers
        self.path = path
    }
}

public enum ProcCgroupParser {
    /// Parses the text of `/proc/<pid>/cgroup`; malformed lines are skipped.
    public static func parse(_ text: String) -> [ProcCgroupEntry] {
        text.split(separator: "\n").compactMap { line in
            // The path may itself contain ':', so split at the first two only.
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let id = Int(parts[0]) else { return nil }
            let controllers = parts[1].isEmpty ? [] : parts[1].split(separator: ",").map(String.init)
            return ProcCgroupEntry(hierarchyID: id, controllers: controllers, path: String(parts[2]))
        }
    }

    /// The unified (v2) path, when the process has one.
    public static func unifiedPath(_ entries: [ProcCgroupEntry]) -> String? {
        entries.first(where: \.isUnified)?.path
    }

    /// The first container found, trying the unified line first, then `name=systemd`, then the v1 controllers.
    public static func container(_ entries: [ProcCgroupEntry]) -> (path: String, container: CgroupContainerPath)? {
        let ordered =
            entries.filter(\.isUnified) + entries.filter { $0.controllers.contains("name=systemd") }
            + entries.filter { !$0.isUnified && !$0.controllers.contains("name=systemd") }
        for entry in ordered {
            if let parsed = CgroupPathParser.parse(entry.path) { return (entry.path, parsed) }
        }
        return nil
    }
}
