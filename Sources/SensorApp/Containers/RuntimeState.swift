import EventModel
import Foundation

/// A mount from a container's OCI `config.json`.
public struct OCIMount: Sendable, Hashable {
    public var destination: String
    public var source: String
    public var type: String
    public var options: [String]

    public init(destination: String, source: String = "", type: String = "", options: [String] = []) {
        self.destination = destination
        self.source = source
        self.type = type
        self.options = options
    }

    public var isBind: Bool { type == "bind" || options.contains("bind") || options.contains("rbind") }
}

/// What the runtime's state says about one container.
public struct ContainerMetadata: Sendable, Hashable {
    /// `containerd`, `cri-o`, `docker`, `podman` or `runc`: the runtime whose state described the container.
    public var runtime: String
    public var containerID: String
    public var annotations: [String: String]
    public var mounts: [OCIMount]
    /// The OCI bundle directory, when known.
    public var bundle: String?
    /// The root file system as a host path (`root.path` resolved against the bundle).
    public var rootfs: String?
    /// The container's init process, when the state records it.
    public var initPID: Int32?

    public init(
        runtime: String, containerID: String, annotations: [String: String] = [:], mounts: [OCIMount] = [],
        bundle: String? = nil, rootfs: String? = nil, initPID: Int32? = nil
    ) {
        self.runtime = runtime
        self.containerID = containerID
        self.annotations = annotations
        self.mounts = mounts
        self.bundle = bundle
        self.rootfs = rootfs
        self.initPID = initPID
    }

    /// The annotation keys each `ContainerRef` field is read from, first present wins. CRI-O and the kubelet's
    /// docker shim write `io.kubernetes.pod.*`; containerd's CRI plugin writes `io.kubernetes.cri.*`.
    public enum Keys {
        public static let podName = ["io.kubernetes.pod.name", "io.kubernetes.cri.sandbox-name"]
        public static let namespace = ["io.kubernetes.pod.namespace", "io.kubernetes.cri.sandbox-namespace"]
        public static let podUID = ["io.kubernetes.pod.uid", "io.kubernetes.cri.sandbox-uid"]
        public static let containerName = ["io.kubernetes.container.name", "io.kubernetes.cri.container-name"]
        public static let image = [
            "io.kubernetes.cri.image-name", "io.kubernetes.container.image", "io.kubernetes.cri-o.ImageName",
        ]
    }

    public func annotation(_ keys: [String]) -> String? {
        for key in keys { if let value = annotations[key], !value.isEmpty { return value } }
        return nil
    }

    /// The reference an event carries; the pod uid falls back to the one in the cgroup path.
    public func reference(podUIDFromPath: String? = nil) -> ContainerRef {
        ContainerRef(
            runtime: runtime, containerID: containerID,
            podUID: annotation(Keys.podUID) ?? podUIDFromPath ?? "", podName: annotation(Keys.podName) ?? "",
            namespace: annotation(Keys.namespace) ?? "", containerName: annotation(Keys.containerName) ?? "",
            image: annotation(Keys.image) ?? "")
    }
}

/// Pure decoders for the state files runtimes leave on the node.
public enum RuntimeStateParser {
    /// An OCI runtime-spec `config.json`: annotations, mounts and `root.path` (resolved against `bundle`).
    public static func ociConfig(_ data: Data, runtime: String, containerID: String, bundle: String?)
        -> ContainerMetadata?
    {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
        let annotations = (object["annotations"] as? [String: Any] ?? [:]).compactMapValues { $0 as? String }
        let mounts = (object["mounts"] as? [[String: Any]] ?? []).compactMap { mount -> OCIMount? in
            guard let destination = mount["destination"] as? String else { return nil }
            return OCIMount(
                destination: destination, source: mount["source"] as? String ?? "",
                type: mount["type"] as? String ?? "",
                options: (mount["options"] as? [Any] ?? []).compactMap { $0 as? String })
        }
        var rootfs = (object["root"] as? [String: Any])?["path"] as? String
        if let path = rootfs, !path.hasPrefix("/"), let bundle { rootfs = bundle + "/" + path }
        return ContainerMetadata(
            runtime: runtime, containerID: containerID, annotations: annotations, mounts: mounts, bundle: bundle,
            rootfs: rootfs)
    }

    /// runc's `state.json` (`/run/runc/<id>/state.json`, docker's `/run/docker/runtime-runc/moby/<id>/state.json`):
    /// the init pid, the bundle (label `bundle=<dir>`), the OCI annotations (runc copies them into `labels` as
    /// `key=value`), the rootfs and the mounts (`device: bind` with MS_BIND).
    public static func runcState(_ data: Data, runtime: String, containerID: String) -> ContainerMetadata? {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
        let config = object["config"] as? [String: Any] ?? [:]
        var annotations: [String: String] = [:]
        var bundle: String?
        for label in (config["labels"] as? [Any] ?? []).compactMap({ $0 as? String }) {
            guard let equals = label.firstIndex(of: "=") else { continue }
            let key = String(label[..<equals])
            let value = String(label[label.index(after: equals)...])
            if key == "bundle" { bundle = value } else { annotations[key] = value }
        }
        let msBind = 4096
        let mounts = (config["mounts"] as? [[String: Any]] ?? []).compactMap { mount -> OCIMount? in
            guard let destination = mount["destination"] as? String else { return nil }
            let device = mount["device"] as? String ?? ""
            let flags = (mount["flags"] as? NSNumber)?.intValue ?? 0
            let bind = device == "bind" || flags & msBind != 0
            return OCIMount(
                destination: destination, source: mount["source"] as? String ?? "", type: bind ? "bind" : device,
                options: bind ? ["rbind"] : [])
        }
        let pid = (object["init_process_pid"] as? NSNumber).map { Int32(truncatingIfNeeded: $0.intValue) }
        return ContainerMetadata(
            runtime: runtime, containerID: containerID, annotations: annotations, mounts: mounts, bundle: bundle,
            rootfs: config["rootfs"] as? String, initPID: pid.flatMap { $0 > 0 ? $0 : nil })
    }

    /// A pid file (`init.pid`, CRI-O's `pidfile`): a decimal number, maybe with a newline.
    public static func pidFile(_ text: String) -> Int32? {
        Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)).flatMap { $0 > 0 ? $0 : nil }
    }
}

/// One place a runtime keeps per-container state.
public struct RuntimeStateSource: Sendable, Hashable {
    public enum Layout: String, Sendable, Hashable {
        /// `<root>/<id>/state.json` written by runc (bundle from its `bundle=` label, then `<bundle>/config.json`).
        case runcState
        /// containerd's shim v2 tasks: `<root>/<namespace>/<id>/config.json` and `init.pid`.
        case containerdTask
        /// CRI-O and podman storage: `<root>/<id>/userdata/config.json` and `pidfile`.
        case storageUserdata
    }

    public var runtime: String
    public var layout: Layout
    public var root: String

    public init(runtime: String, layout: Layout, root: String) {
        self.runtime = runtime
        self.layout = layout
        self.root = root
    }

    /// The usual state roots of containerd, CRI-O, docker, podman and plain runc.
    public static let defaults: [RuntimeStateSource] = [
        RuntimeStateSource(
            runtime: "containerd", layout: .containerdTask, root: "/run/containerd/io.containerd.runtime.v2.task"),
        RuntimeStateSource(
            runtime: "cri-o", layout: .storageUserdata, root: "/run/containers/storage/overlay-containers"),
        RuntimeStateSource(runtime: "docker", layout: .runcState, root: "/run/docker/runtime-runc/moby"),
        RuntimeStateSource(runtime: "containerd", layout: .runcState, root: "/run/containerd/runc/k8s.io"),
        RuntimeStateSource(runtime: "runc", layout: .runcState, root: "/run/runc"),
    ]
}

/// Reads a container's metadata from the runtimes' state directories.
public struct RuntimeStateReader: Sendable {
    public var sources: [RuntimeStateSource]
    /// Prefix for host paths when the sensor sees the host's file system under a directory (`/host`); empty when
    /// it runs in the host's mount namespace.
    public var hostRoot: String

    public init(sources: [RuntimeStateSource] = RuntimeStateSource.defaults, hostRoot: String = "") {
        self.sources = sources
        self.hostRoot = hostRoot.hasSuffix("/") ? String(hostRoot.dropLast()) : hostRoot
    }

    /// The container's metadata from the first source that knows it; sources of the runtime the cgroup path named
    /// are tried first. Nil when no runtime has state for it (yet).
    public func metadata(containerID: String, runtimeHint: String? = nil) -> ContainerMetadata? {
        let ordered = sources.filter { $0.runtime == runtimeHint } + sources.filter { $0.runtime != runtimeHint }
        for source in ordered {
            if let found = metadata(containerID: containerID, in: source) { return found }
        }
        return nil
    }

    public func metadata(containerID: String, in source: RuntimeStateSource) -> ContainerMetadata? {
        // Ids come from cgroup paths: never let one walk out of the state root.
        guard !containerID.isEmpty, !containerID.contains("/"), !containerID.hasPrefix(".") else { return nil }
        let root = hostRoot + source.root
        switch source.layout {
        case .runcState:
            guard let data = read("\(root)/\(containerID)/state.json"),
                var state = RuntimeStateParser.runcState(data, runtime: source.runtime, containerID: containerID)
            else { return nil }
            // The bundle's config.json is the full OCI spec (typed mounts with options); the state's copy is
            // runc's internal form. Prefer the spec and keep the state's pid.
            if let bundle = state.bundle, let data = read(hostRoot + bundle + "/config.json"),
                var spec = RuntimeStateParser.ociConfig(
                    data, runtime: source.runtime, containerID: containerID, bundle: bundle)
            {
                spec.initPID = state.initPID
                spec.annotations.merge(state.annotations) { spec, _ in spec }
                if spec.rootfs == nil { spec.rootfs = state.rootfs }
                state = spec
            }
            return state
        case .containerdTask:
            let namespaces = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            for namespace in namespaces.sorted() {
                let bundle = "\(source.root)/\(namespace)/\(containerID)"
                guard let data = read(hostRoot + bundle + "/config.json"),
                    var found = RuntimeStateParser.ociConfig(
                        data, runtime: source.runtime, containerID: containerID, bundle: bundle)
                else { continue }
                found.initPID = readText(hostRoot + bundle + "/init.pid").flatMap(RuntimeStateParser.pidFile)
                // dockerd runs its containers as containerd tasks in the "moby" namespace.
                if namespace == "moby" { found.runtime = "docker" }
                return found
            }
            return nil
        case .storageUserdata:
            let userdata = "\(source.root)/\(containerID)/userdata"
            guard let data = read(hostRoot + userdata + "/config.json"),
                var found = RuntimeStateParser.ociConfig(
                    data, runtime: source.runtime, containerID: containerID, bundle: userdata)
            else { return nil }
            // Podman shares this storage with CRI-O; podman's spec carries no CRI-O annotations.
            if source.runtime == "cri-o", found.annotations["io.kubernetes.cri-o.ContainerID"] == nil,
                found.annotations["io.container.manager"] == "libpod"
            {
                found.runtime = "podman"
            }
            found.initPID = readText(hostRoot + userdata + "/pidfile").flatMap(RuntimeStateParser.pidFile)
            return found
        }
    }

    private func read(_ path: String) -> Data? {
        FileManager.default.contents(atPath: path)
    }

    private func readText(_ path: String) -> String? {
        read(path).map { String(decoding: $0, as: UTF8.self) }
    }
}

extension RuntimeStateReader {
    /// Every container the runtimes' state directories know now. Used by the malware scanner to map an overlay
    /// mount point back to its container (rootfs ↔ mount point); a few directory reads per runtime.
    public func allContainers() -> [ContainerMetadata] {
        var found: [ContainerMetadata] = []
        var seen = Set<String>()
        for source in sources {
            let root = hostRoot + source.root
            var ids: [String] = []
            switch source.layout {
            case .runcState, .storageUserdata:
                ids = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            case .containerdTask:
                for namespace in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
                    ids += (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + namespace)) ?? []
                }
            }
            for id in ids.sorted() where !seen.contains(id) {
                guard let metadata = metadata(containerID: id, in: source) else { continue }
                seen.insert(id)
                found.append(metadata)
            }
        }
        return found
    }
}
