import Foundation

/// A real OCI container run by `runc`, shaped like a Kubernetes pod's container on a node: a busybox root file
/// system, a kubelet-style `cgroupsPath` (`/kubepods/<qos>/pod<uid>/<id>`) and the `io.kubernetes.*` annotations.
///
/// ```swift
/// if let reason = RuncContainer.unavailableReason { print("skipped: \(reason)"); return }
/// try await RuncContainer.with(.init(podName: "web", overlay: true)) { container in
///     let result = try await container.exec(["sh", "-c", "echo hi > /tmp/x"])
/// }
/// // or: let container = try await RuncContainer.start(...); ...; await container.stop()
/// ```
///
/// Every blocking step (runc, mount) runs through `offPool`, and every runc call is wrapped in `timeout -s KILL`.
/// `stop()` kills and deletes the container, unmounts the overlay, removes the pod's cgroup directories (when no
/// other container of the pod is left) and the bundle.
public final class RuncContainer: @unchecked Sendable {
    /// A host directory bind-mounted into the container.
    public struct Volume: Sendable, Hashable {
        public var hostPath: String
        public var containerPath: String
        public var readOnly: Bool

        public init(hostPath: String, containerPath: String, readOnly: Bool = false) {
            self.hostPath = hostPath
            self.containerPath = containerPath
            self.readOnly = readOnly
        }
    }

    public struct Options: Sendable {
        public var podName: String
        public var namespace: String
        /// The pod uid; a fresh lowercase UUID by default.
        public var podUID: String
        public var containerName: String
        /// The container id; 64 random hex digits (as containerd and CRI-O make them) by default.
        public var containerID: String
        /// `besteffort` or `burstable` (a `/kubepods/<qos>/pod…` path), or `guaranteed` (`/kubepods/pod…`).
        public var qos: String
        /// The container's init: `sleep 3600` by default.
        public var command: [String]
        public var environment: [String]
        public var volumes: [Volume]
        /// The root file system as an overlay: lower = the shared busybox image, upper = a directory of this
        /// container, so files written in the container land in `upperDir` and the image's files stay in the lower.
        /// Without it the container gets a writable copy of the image.
        public var overlay: Bool
        /// Written as `io.kubernetes.cri.image-name` when set.
        public var image: String?
        public var extraAnnotations: [String: String]
        /// Share the host's network namespace (otherwise the container has its own with only loopback).
        public var hostNetwork: Bool
        /// `runc --root`; nil uses runc's default `/run/runc`.
        public var runcRoot: String?
        /// Capabilities granted on top of the runtime's default set (e.g. `CAP_SYS_ADMIN` for a container that
        /// mounts or joins namespaces, as a privileged pod could).
        public var extraCapabilities: [String]
        /// With `overlay`: extra read-only image layers (host directories) stacked above busybox, top first. They
        /// stand for an image's own layers, so a test can put files "in the image" without touching the shared one.
        public var imageLayers: [String] = []

        public init(
            podName: String = "test-pod", namespace: String = "default", podUID: String = RuncContainer.newPodUID(),
            containerName: String = "main", containerID: String = RuncContainer.newContainerID(),
            qos: String = "besteffort", command: [String] = ["sleep", "3600"],
            environment: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"], volumes: [Volume] = [],
            overlay: Bool = false, image: String? = nil, extraAnnotations: [String: String] = [:],
            hostNetwork: Bool = false, runcRoot: String? = nil, extraCapabilities: [String] = []
        ) {
            self.podName = podName
            self.namespace = namespace
            self.podUID = podUID
            self.containerName = containerName
            self.containerID = containerID
            self.qos = qos
            self.command = command
            self.environment = environment
            self.volumes = volumes
            self.overlay = overlay
            self.image = image
            self.extraAnnotations = extraAnnotations
            self.hostNetwork = hostNetwork
            self.runcRoot = runcRoot
            self.extraCapabilities = extraCapabilities
        }
    }

    /// What `exec` returns.
    public struct ExecResult: Sendable {
        public var status: Int32
        public var standardOutput: String
        public var standardError: String
    }

    public struct HarnessError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public let options: Options
    public var id: String { options.containerID }
    /// The OCI bundle directory (config.json, logs, the rootfs or overlay directories).
    public let bundle: String
    /// The container's root as the host sees it (the overlay mount point, or the copy of the image).
    public let rootfs: String
    /// The overlay's upper directory (host path), when `overlay` is set.
    public let upperDir: String?
    /// The shared busybox image (the overlay's lower directory).
    public let imageDir: String
    /// The pid of the container's init process (in the host's pid namespace).
    public let initPID: Int32
    /// The cgroup path, as `/proc/<pid>/cgroup` prints it: `/kubepods/besteffort/pod<uid>/<id>`.
    public let cgroupPath: String

    private let stopped = LockedFlag()
    /// Host pids whose parent is this process (the init, detached execs): reaped on stop.
    private let children = LockedPIDs()

    // MARK: - Availability

    /// Why containers cannot run here (not root, no runc, no static busybox, no cgroup v2 mount), or nil.
    public static var unavailableReason: String? {
        if geteuid() != 0 { return "runc containers need root" }
        if runcPath == nil { return "runc is not installed (apt-get install runc)" }
        if busyboxPath == nil { return "a static busybox is missing (apt-get install busybox-static)" }
        if unifiedCgroupMount == nil { return "no cgroup2 hierarchy is mounted" }
        return nil
    }

    static let runcPath: String? = ["/usr/sbin/runc", "/usr/bin/runc", "/sbin/runc", "/usr/local/sbin/runc"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    static let busyboxPath: String? = ["/bin/busybox", "/usr/bin/busybox"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Where cgroup2 is mounted (`/sys/fs/cgroup/unified` on this hybrid host, `/sys/fs/cgroup` on unified ones).
    public static let unifiedCgroupMount: String? = cgroupMounts().first { $0.v2 }?.path

    /// Every cgroup mount point (v1 controllers and v2) of this mount namespace.
    static func cgroupMounts() -> [(path: String, v2: Bool)] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count, fields.count > 4 else { return nil }
            let type = fields[dash + 1]
            guard type == "cgroup" || type == "cgroup2" else { return nil }
            return (String(fields[4]), type == "cgroup2")
        }
    }

    public static func newPodUID() -> String { UUID().uuidString.lowercased() }

    public static func newContainerID() -> String {
        (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
    }

    // MARK: - Image

    static let live = LiveCount()
    private static let imageLock = NSLock()
    nonisolated(unsafe) private static var builtImage: String?
    /// Read by the atexit handler, which cannot capture.
    nonisolated(unsafe) static var builtImageForExit: String?

    /// The busybox root file system, built once per test run into the temp directory and shared (read-only) by
    /// every container: `/bin/busybox` plus a symlink per applet, and a minimal `/etc`.
    public static func busyboxImage() throws -> String {
        imageLock.lock()
        defer { imageLock.unlock() }
        if let builtImage { return builtImage }
        guard let busybox = busyboxPath else { throw HarnessError(description: "busybox is not installed") }
        let base = FileManager.default.temporaryDirectory.path
        let image = "\(base)/patrol-busybox-image-\(getpid())"
        let fm = FileManager.default
        try? fm.removeItem(atPath: image)
        for directory in [
            "bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "proc", "sys", "dev", "var/tmp", "home", "opt",
            "data",
        ] {
            try fm.createDirectory(atPath: "\(image)/\(directory)", withIntermediateDirectories: true)
        }
        chmod("\(image)/tmp", 0o1777)
        try fm.copyItem(atPath: busybox, toPath: "\(image)/bin/busybox")
        let list = try run([busybox, "--list-full"], timeout: 10)
        for applet in list.standardOutput.split(separator: "\n") where !applet.isEmpty && applet != "bin/busybox" {
            let link = "\(image)/\(applet)"
            if !fm.fileExists(atPath: link) {
                try? fm.createSymbolicLink(atPath: link, withDestinationPath: "/bin/busybox")
            }
        }
        try "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
            .write(toFile: "\(image)/etc/passwd", atomically: true, encoding: .utf8)
        try "root:x:0:\nnogroup:x:65534:\n".write(toFile: "\(image)/etc/group", atomically: true, encoding: .utf8)
        try "127.0.0.1 localhost\n::1 localhost\n".write(
            toFile: "\(image)/etc/hosts", atomically: true, encoding: .utf8)
        builtImage = image
        atexit {
            if let image = RuncContainer.builtImageForExit { try? FileManager.default.removeItem(atPath: image) }
        }
        builtImageForExit = image
        return image
    }

    // MARK: - Lifecycle

    /// Creates and starts the container (`runc run -d`); returns once its init is running.
    public static func start(_ options: Options = Options()) async throws -> RuncContainer {
        if let reason = unavailableReason { throw HarnessError(description: reason) }
        _ = isSubreaper
        return try await offPool { try RuncContainer(starting: options) }
    }

    /// Starts a container, runs `body` with it, and stops it afterwards (also when `body` throws), without
    /// blocking the cooperative pool.
    public static func with<T: Sendable>(
        _ options: Options = Options(), _ body: (RuncContainer) async throws -> T
    ) async throws -> T {
        let container = try await start(options)
        do {
            let result = try await body(container)
            await container.stop()
            return result
        } catch {
            await container.stop()
            throw error
        }
    }

    /// The test process becomes a child subreaper, so a detached container's init and `runc exec -d` processes
    /// (orphaned when runc exits) become its children and are reaped the moment the container stops. Otherwise
    /// they wait as zombies for this sandbox's pid 1, which reaps slowly, and their pids are not reused.
    static let isSubreaper: Bool = {
        // prctl is variadic, which Swift cannot call; its integer arguments pass the same way without the ellipsis.
        typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "prctl") else { return false }
        let prctl = unsafeBitCast(symbol, to: Prctl.self)
        let PR_SET_CHILD_SUBREAPER: Int32 = 36
        return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    }()

    /// Reaps `pids` that are (or become, within a few seconds) zombie children of this process.
    static func reap(_ pids: [Int32]) {
        for pid in pids {
            var status: Int32 = 0
            for _ in 0..<200 {
                let result = waitpid(pid, &status, WNOHANG)
                if result == pid || (result < 0 && errno == ECHILD) { break }
                usleep(10_000)
            }
        }
    }

    private init(starting options: Options) throws {
        self.options = options
        let fm = FileManager.default
        imageDir = try Self.busyboxImage()
        bundle = try TemporaryDirectory(prefix: "patrol-runc-\(options.containerID.prefix(12))").path
        rootfs = "\(bundle)/rootfs"
        try fm.createDirectory(atPath: rootfs, withIntermediateDirectories: true)
        if options.overlay {
            let upper = "\(bundle)/upper"
            try fm.createDirectory(atPath: upper, withIntermediateDirectories: true)
            try fm.createDirectory(atPath: "\(bundle)/work", withIntermediateDirectories: true)
            let lower = (options.imageLayers + [imageDir]).joined(separator: ":")
            let data = "lowerdir=\(lower),upperdir=\(upper),workdir=\(bundle)/work"
            guard mount("overlay", rootfs, "overlay", 0, data) == 0 else {
                let reason = String(cString: strerror(errno))
                try? fm.removeItem(atPath: bundle)
                throw HarnessError(description: "overlay mount of \(rootfs) failed: \(reason)")
            }
            upperDir = upper
        } else {
            try? fm.removeItem(atPath: rootfs)
            try fm.copyItem(atPath: imageDir, toPath: rootfs)
            upperDir = nil
        }
        let podSegment = "pod\(options.podUID)"
        cgroupPath =
            options.qos == "guaranteed"
            ? "/kubepods/\(podSegment)/\(options.containerID)"
            : "/kubepods/\(options.qos)/\(podSegment)/\(options.containerID)"
        Self.live.add()
        do {
            try Self.writeConfig(options: options, bundle: bundle, cgroupPath: cgroupPath)
            let result = try Self.run(
                Self.runcArguments(options) + [
                    "run", "-d", "--bundle", bundle, "--pid-file", "\(bundle)/init.pid", options.containerID,
                ], timeout: 30, stdout: "\(bundle)/container.out", stderr: "\(bundle)/container.err")
            guard result.status == 0 else {
                let log = (try? String(contentsOfFile: "\(bundle)/container.err", encoding: .utf8)) ?? ""
                throw HarnessError(description: "runc run failed (\(result.status)): \(log)")
            }
            guard let text = try? String(contentsOfFile: "\(bundle)/init.pid", encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else { throw HarnessError(description: "runc wrote no pid file") }
            initPID = pid
            children.add(pid)
        } catch {
            Self.cleanUp(options: options, bundle: bundle, rootfs: rootfs, overlay: options.overlay)
            throw error
        }
    }

    /// The container's stdout and stderr (runc's detached mode writes them to files in the bundle).
    public var output: String { (try? String(contentsOfFile: "\(bundle)/container.out", encoding: .utf8)) ?? "" }
    public var errorOutput: String { (try? String(contentsOfFile: "\(bundle)/container.err", encoding: .utf8)) ?? "" }

    /// The cgroup v2 directory of the container (host path).
    public var cgroupDirectory: String? { Self.unifiedCgroupMount.map { $0 + cgroupPath } }

    /// The cgroup id (v2 directory inode) that `bpf_get_current_cgroup_id()` reports for the container's processes.
    public var cgroupID: UInt64? {
        guard let directory = cgroupDirectory else { return nil }
        var info = stat()
        return stat(directory, &info) == 0 ? UInt64(info.st_ino) : nil
    }

    /// Runs a command in the container (`runc exec`) and waits for it.
    public func exec(_ arguments: [String], timeout: Int = 30) async throws -> ExecResult {
        try await offPool { try self.execBlocking(arguments, timeout: timeout) }
    }

    public func execBlocking(_ arguments: [String], timeout: Int = 30) throws -> ExecResult {
        let tag = UUID().uuidString.prefix(8)
        let out = "\(bundle)/exec-\(tag).out"
        let err = "\(bundle)/exec-\(tag).err"
        let result = try Self.run(
            Self.runcArguments(options) + ["exec", options.containerID] + arguments, timeout: timeout, stdout: out,
            stderr: err)
        defer {
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: err)
        }
        return ExecResult(
            status: result.status, standardOutput: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            standardError: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// Starts a command in the container without waiting (`runc exec -d`); returns its host pid.
    public func execDetached(_ arguments: [String]) async throws -> Int32 {
        try await offPool {
            let pidFile = "\(self.bundle)/exec-\(UUID().uuidString.prefix(8)).pid"
            let result = try Self.run(
                Self.runcArguments(self.options) + ["exec", "-d", "--pid-file", pidFile, self.options.containerID]
                    + arguments, timeout: 30, stdout: "\(self.bundle)/container.out",
                stderr: "\(self.bundle)/container.err")
            defer { try? FileManager.default.removeItem(atPath: pidFile) }
            guard result.status == 0, let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else { throw HarnessError(description: "runc exec -d failed (\(result.status)): \(self.errorOutput)") }
            self.children.add(pid)
            return pid
        }
    }

    /// A host path for a path inside the container's root (the merged view).
    public func hostPath(_ containerPath: String) -> String { rootfs + containerPath }

    /// Kills and deletes the container and everything the harness made for it. Safe to call twice.
    public func stop() async {
        _ = try? await offPool { self.stopBlocking() }
    }

    /// `stop()` for `defer` blocks and other synchronous places.
    public func stopBlocking() {
        guard stopped.set() else { return }
        Self.cleanUp(
            options: options, bundle: bundle, rootfs: rootfs, overlay: options.overlay, children: children.all)
    }

    deinit {
        stopBlocking()
    }

    private static func cleanUp(
        options: Options, bundle: String, rootfs: String, overlay: Bool, children: [Int32] = []
    ) {
        // Kill and reap our own children first: runc delete waits for the init to disappear, and as this
        // process's child it stays a zombie until reaped here. Killing the pid namespace's init kills the rest.
        if let initPID = children.first { kill(initPID, SIGKILL) }
        reap(children)
        _ = try? run(runcArguments(options) + ["delete", "-f", options.containerID], timeout: 30)
        if overlay { umount2(rootfs, Int32(MNT_DETACH)) }
        // runc removes the container's cgroups; the pod and QoS levels above it are the kubelet's, made by runc's
        // mkdir -p here. Remove the pod level once it is empty (another container of the pod may still run).
        let podPath =
            options.qos == "guaranteed"
            ? "/kubepods/pod\(options.podUID)" : "/kubepods/\(options.qos)/pod\(options.podUID)"
        let lastContainer = live.remove()
        for mount in cgroupMounts() {
            // The container's own directory normally went with runc delete; try it first for a failed start.
            rmdir(mount.path + podPath + "/" + options.containerID)
            rmdir(mount.path + podPath)
            // The QoS and kubepods levels, once no container of this process may be creating cgroups under them
            // (rmdir fails harmlessly while anything is left inside).
            if lastContainer {
                for level in ["/kubepods/besteffort", "/kubepods/burstable", "/kubepods"] { rmdir(mount.path + level) }
            }
        }
        try? FileManager.default.removeItem(atPath: bundle)
    }

    // MARK: - Processes

    static func runcArguments(_ options: Options) -> [String] {
        var arguments = [runcPath ?? "runc"]
        if let root = options.runcRoot { arguments += ["--root", root] }
        return arguments
    }

    /// Runs a command under `timeout -s KILL`, with stdout and stderr in files (or discarded), and waits for it.
    @discardableResult
    static func run(_ arguments: [String], timeout: Int, stdout: String? = nil, stderr: String? = nil) throws
        -> ExecResult
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["-s", "KILL", "\(timeout)"] + arguments
        let capture =
            stdout == nil
            ? FileManager.default.temporaryDirectory.path
                + "/patrol-run-\(UUID().uuidString.prefix(8)).out" : nil
        let outPath = stdout ?? capture!
        if !FileManager.default.fileExists(atPath: outPath) {
            _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        }
        let outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        outHandle.seekToEndOfFile()
        process.standardOutput = outHandle
        if let stderr {
            if !FileManager.default.fileExists(atPath: stderr) {
                _ = FileManager.default.createFile(atPath: stderr, contents: nil)
            }
            let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
            errHandle.seekToEndOfFile()
            process.standardError = errHandle
        } else {
            process.standardError = FileHandle.nullDevice
        }
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try? outHandle.close()
        var output = ""
        if let capture {
            output = (try? String(contentsOfFile: capture, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: capture)
        }
        return ExecResult(status: process.terminationStatus, standardOutput: output, standardError: "")
    }

    private static func writeConfig(options: Options, bundle: String, cgroupPath: String) throws {
        var annotations = [
            "io.kubernetes.pod.name": options.podName,
            "io.kubernetes.pod.namespace": options.namespace,
            "io.kubernetes.pod.uid": options.podUID,
            "io.kubernetes.container.name": options.containerName,
        ]
        if let image = options.image { annotations["io.kubernetes.cri.image-name"] = image }
        annotations.merge(options.extraAnnotations) { _, extra in extra }
        var namespaces: [[String: Any]] = [["type": "pid"], ["type": "ipc"], ["type": "uts"], ["type": "mount"]]
        if !options.hostNetwork { namespaces.append(["type": "network"]) }
        var mounts: [[String: Any]] = [
            ["destination": "/proc", "type": "proc", "source": "proc"],
            [
                "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            ],
            [
                "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            ],
            [
                "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                "options": ["nosuid", "nodev", "mode=1777", "size=65536k"],
            ],
            [
                "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            ],
            [
                "destination": "/sys", "type": "sysfs", "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            ],
        ]
        for volume in options.volumes {
            mounts.append([
                "destination": volume.containerPath, "type": "bind", "source": volume.hostPath,
                "options": ["rbind", volume.readOnly ? "ro" : "rw"],
            ])
        }
        let defaultCapabilities = [
            "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
            "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ]
        let capabilities = defaultCapabilities + options.extraCapabilities.filter { !defaultCapabilities.contains($0) }
        let config: [String: Any] = [
            "ociVersion": "1.0.2",
            "process": [
                "terminal": false, "user": ["uid": 0, "gid": 0], "args": options.command, "env": options.environment,
                "cwd": "/",
                "capabilities": [
                    "bounding": capabilities, "effective": capabilities, "permitted": capabilities,
                    "ambient": capabilities,
                ],
                "rlimits": [["type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024]], "noNewPrivileges": true,
            ] as [String: Any],
            "root": ["path": "rootfs", "readonly": false],
            "hostname": String(options.podName.prefix(63)),
            "mounts": mounts,
            "annotations": annotations,
            "linux": [
                "cgroupsPath": cgroupPath,
                "resources": ["devices": [["allow": false, "access": "rwm"]]],
                "namespaces": namespaces,
                "maskedPaths": [
                    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                    "/proc/timer_list",
                    "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
                ],
                "readonlyPaths": [
                    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
                ],
            ] as [String: Any],
        ]
        let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: "\(bundle)/config.json"))
    }
}

/// How many harness containers of this process are starting or running.
final class LiveCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func add() {
        lock.lock()
        count += 1
        lock.unlock()
    }

    /// Counts one down; true when none is left.
    func remove() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        count -= 1
        return count == 0
    }
}

/// Pids collected from several threads.
final class LockedPIDs: @unchecked Sendable {
    private let lock = NSLock()
    private var pids: [Int32] = []

    func add(_ pid: Int32) {
        lock.lock()
        pids.append(pid)
        lock.unlock()
    }

    var all: [Int32] {
        lock.lock()
        defer { lock.unlock() }
        return pids
    }
}

/// A flag that is set once; `set()` tells the first caller.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func set() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if value { return false }
        value = true
        return true
    }
}
