import Basics
import Foundation
import TestSupport
import Testing

@testable import SensorApp

private let id64 = "4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899"

@Suite("mountinfo")
struct MountInfoTests {
    // Real lines: a containerd container's root overlay, a bind-mounted volume, /proc, an escaped space.
    static let text = """
        1245 1001 0:312 / / rw,relatime master:512 - overlay overlay rw,lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/41/fs:/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/40/fs,upperdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/57/fs,workdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/57/work
        1246 1245 0:315 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
        1260 1245 254:1 /var/lib/kubelet/pods/7c0e/volumes/kubernetes.io~empty-dir/cache /cache rw,relatime - ext4 /dev/vda1 rw
        1261 1245 254:1 /srv/my\\040data /my\\040data rw,relatime shared:1 master:2 - ext4 /dev/vda1 rw,errors=remount-ro
        1262 1245 0:40 / /odd rw - overlay overlay rw,lowerdir=/a\\054b:/c,upperdir=/u\\054v,workdir=/w
        broken line
        """

    @Test("fields, optional fields and escapes")
    func fields() {
        let entries = MountInfoParser.parse(Self.text)
        #expect(entries.count == 5)
        #expect(entries[0].mountPoint == "/")
        #expect(entries[0].fileSystemType == "overlay")
        #expect(entries[2].root == "/var/lib/kubelet/pods/7c0e/volumes/kubernetes.io~empty-dir/cache")
        #expect(entries[3].mountPoint == "/my data")
        #expect(entries[3].root == "/srv/my data")
        #expect(entries[3].fileSystemType == "ext4")
        #expect(entries[3].superOption("errors") == "remount-ro")
    }

    @Test("the root overlay's upper and lower directories")
    func overlay() throws {
        let entries = MountInfoParser.parse(Self.text)
        let root = try #require(MountInfoParser.rootMount(entries))
        let layers = try #require(MountInfoParser.overlayLayers(root))
        #expect(layers.upper == "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/57/fs")
        #expect(layers.lower.count == 2)
        #expect(layers.lower.last == "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/40/fs")
        // A comma inside a path is printed as \054 and must not split the option.
        let odd = try #require(MountInfoParser.overlayLayers(entries[4]))
        #expect(odd.upper == "/u,v")
        #expect(odd.lower == ["/a,b", "/c"])
        #expect(MountInfoParser.overlayLayers(entries[1]) == nil)
    }

    @Test("volume-like mounts from mountinfo")
    func volumesFromMountInfo() {
        let volumes = ContainerFilesystem.volumes(fromMountInfo: MountInfoParser.parse(Self.text))
        #expect(Set(volumes.map(\.destination)) == ["/cache", "/my data"])
    }

    @Test("cgroup2 mount point on hybrid and unified hosts")
    func cgroup2() {
        let hybrid = """
            30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
            31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
            32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,name=systemd
            """
        #expect(CgroupHierarchy.unifiedMountPoint(mountinfo: hybrid) == "/sys/fs/cgroup/unified")
        let unified = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n"
        #expect(CgroupHierarchy.unifiedMountPoint(mountinfo: unified) == "/sys/fs/cgroup")
        #expect(CgroupHierarchy.unifiedMountPoint(mountinfo: "") == nil)
    }
}

@Suite("runtime state")
struct RuntimeStateTests {
    static func ociConfig(annotations: [String: String], mounts: [[String: Any]] = [], root: String = "rootfs")
        throws -> Data
    {
        try JSONSerialization.data(withJSONObject: [
            "ociVersion": "1.0.2", "root": ["path": root], "annotations": annotations, "mounts": mounts,
        ])
    }

    static let criOAnnotations = [
        "io.kubernetes.pod.name": "web-7d9c", "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.pod.uid": "7c0ea2d1-1b3c-4d5e-8f90-123456789abc", "io.kubernetes.container.name": "nginx",
        "io.kubernetes.container.image": "docker.io/library/nginx:1.27", "io.kubernetes.cri-o.ContainerID": id64,
    ]

    static let containerdAnnotations = [
        "io.kubernetes.cri.sandbox-name": "api-0", "io.kubernetes.cri.sandbox-namespace": "payments",
        "io.kubernetes.cri.sandbox-uid": "11111111-2222-3333-4444-555555555555",
        "io.kubernetes.cri.container-name": "server", "io.kubernetes.cri.image-name": "ghcr.io/acme/api:v3",
        "io.kubernetes.cri.container-type": "container",
    ]

    @Test("OCI config: annotations, typed mounts, relative root")
    func oci() throws {
        let data = try Self.ociConfig(
            annotations: Self.criOAnnotations,
            mounts: [
                ["destination": "/proc", "type": "proc", "source": "proc"],
                ["destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "rw"]],
                ["destination": "/etc/hosts", "type": "bind", "source": "/var/lib/kubelet/pods/x/etc-hosts"],
                ["destination": "/logs", "source": "/var/log/app", "options": ["rbind", "ro"]],
            ])
        let metadata = try #require(
            RuntimeStateParser.ociConfig(data, runtime: "cri-o", containerID: id64, bundle: "/b"))
        #expect(metadata.rootfs == "/b/rootfs")
        let reference = metadata.reference()
        #expect(reference.podName == "web-7d9c")
        #expect(reference.namespace == "shop")
        #expect(reference.containerName == "nginx")
        #expect(reference.image == "docker.io/library/nginx:1.27")
        #expect(reference.runtime == "cri-o")
        let volumes = ContainerFilesystem.volumes(from: metadata.mounts)
        #expect(Set(volumes.map(\.destination)) == ["/data", "/logs"])
        #expect(RuntimeStateParser.ociConfig(Data("{".utf8), runtime: "x", containerID: id64, bundle: nil) == nil)
    }

    @Test("containerd's CRI annotations, and the pod uid from the path when annotations lack it")
    func containerdKeys() throws {
        var annotations = Self.containerdAnnotations
        let metadata = try #require(
            RuntimeStateParser.ociConfig(
                try Self.ociConfig(annotations: annotations), runtime: "containerd", containerID: id64, bundle: nil))
        let reference = metadata.reference(podUIDFromPath: "ignored")
        #expect(reference.podName == "api-0")
        #expect(reference.namespace == "payments")
        #expect(reference.podUID == "11111111-2222-3333-4444-555555555555")
        #expect(reference.containerName == "server")
        #expect(reference.image == "ghcr.io/acme/api:v3")
        annotations["io.kubernetes.cri.sandbox-uid"] = nil
        let older = try #require(
            RuntimeStateParser.ociConfig(
                try Self.ociConfig(annotations: annotations), runtime: "containerd", containerID: id64, bundle: nil))
        #expect(older.reference(podUIDFromPath: "from-path").podUID == "from-path")
    }

    @Test("runc state.json: labels, bundle, pid, bind mounts by flag")
    func runcState() throws {
        let state: [String: Any] = [
            "id": id64, "init_process_pid": 4242,
            "config": [
                "rootfs": "/b/rootfs",
                "labels": [
                    "io.kubernetes.pod.name=p", "io.kubernetes.pod.namespace=ns", "io.kubernetes.container.name=c",
                    "weird=a=b", "bundle=/b",
                ],
                "mounts": [
                    ["destination": "/proc", "device": "proc", "source": "proc", "flags": 0],
                    ["destination": "/vol", "device": "bind", "source": "/srv/vol", "flags": 20480],
                    ["destination": "/x", "device": "", "source": "/srv/x", "flags": 4096],
                ],
            ] as [String: Any],
        ]
        let metadata = try #require(
            RuntimeStateParser.runcState(
                try JSONSerialization.data(withJSONObject: state), runtime: "runc", containerID: id64))
        #expect(metadata.initPID == 4242)
        #expect(metadata.bundle == "/b")
        #expect(metadata.annotations["weird"] == "a=b")
        #expect(metadata.annotations["bundle"] == nil)
        #expect(metadata.reference().podName == "p")
        #expect(Set(ContainerFilesystem.volumes(from: metadata.mounts).map(\.destination)) == ["/vol", "/x"])
        #expect(RuntimeStateParser.pidFile("123\n") == 123)
        #expect(RuntimeStateParser.pidFile("0") == nil)
        #expect(RuntimeStateParser.pidFile("x") == nil)
    }

    /// Fake state roots laid out exactly as each runtime writes them.
    @Test("the reader finds containerd, CRI-O, docker and runc state, runtime hint first")
    func reader() throws {
        let directory = try TemporaryDirectory(prefix: "patrol-state")
        defer { directory.remove() }
        let root = directory.path
        let fm = FileManager.default
        func write(_ path: String, _ data: Data) throws {
            try fm.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: path))
        }
        let containerdID = String(repeating: "a", count: 64)
        let crioID = String(repeating: "b", count: 64)
        let dockerID = String(repeating: "c", count: 64)
        let runcID = String(repeating: "d", count: 64)
        // containerd: <root>/<namespace>/<id>/config.json + init.pid
        let task = "\(root)/run/containerd/io.containerd.runtime.v2.task"
        try write(
            "\(task)/k8s.io/\(containerdID)/config.json", try Self.ociConfig(annotations: Self.containerdAnnotations))
        try write("\(task)/k8s.io/\(containerdID)/init.pid", Data("777".utf8))
        try fm.createDirectory(atPath: "\(task)/moby", withIntermediateDirectories: true)
        // CRI-O: <root>/<id>/userdata/config.json + pidfile; absolute root path.
        let storage = "\(root)/run/containers/storage/overlay-containers"
        try write(
            "\(storage)/\(crioID)/userdata/config.json",
            try Self.ociConfig(annotations: Self.criOAnnotations, root: "/var/lib/containers/storage/overlay/x/merged"))
        try write("\(storage)/\(crioID)/userdata/pidfile", Data("888\n".utf8))
        // docker: runc state whose bundle is containerd's moby task directory.
        let dockerBundle = "/run/containerd/io.containerd.runtime.v2.task/moby/\(dockerID)"
        try write(
            "\(root)\(dockerBundle)/config.json",
            try Self.ociConfig(
                annotations: [:],
                mounts: [["destination": "/v", "type": "bind", "source": "/srv/v", "options": ["rbind"]]]))
        try write("\(root)\(dockerBundle)/init.pid", Data("999".utf8))
        try write(
            "\(root)/run/docker/runtime-runc/moby/\(dockerID)/state.json",
            try JSONSerialization.data(withJSONObject: [
                "init_process_pid": 999, "config": ["labels": ["bundle=\(dockerBundle)"]],
            ]))
        // plain runc whose bundle is gone: annotations from the labels.
        try write(
            "\(root)/run/runc/\(runcID)/state.json",
            try JSONSerialization.data(withJSONObject: [
                "init_process_pid": 1000,
                "config": ["labels": ["io.kubernetes.pod.name=lonely", "bundle=/nonexistent"], "rootfs": "/r"],
            ]))

        let reader = RuntimeStateReader(hostRoot: root)
        let containerd = try #require(reader.metadata(containerID: containerdID, runtimeHint: "containerd"))
        #expect(containerd.runtime == "containerd")
        #expect(containerd.initPID == 777)
        #expect(containerd.reference().podName == "api-0")
        #expect(containerd.rootfs == "/run/containerd/io.containerd.runtime.v2.task/k8s.io/\(containerdID)/rootfs")

        let crio = try #require(reader.metadata(containerID: crioID, runtimeHint: "cri-o"))
        #expect(crio.runtime == "cri-o")
        #expect(crio.initPID == 888)
        #expect(crio.rootfs == "/var/lib/containers/storage/overlay/x/merged")
        #expect(crio.reference().containerName == "nginx")

        // Docker's id found from the plain kubelet form (no hint): the docker source answers.
        let docker = try #require(reader.metadata(containerID: dockerID))
        #expect(docker.runtime == "docker")
        #expect(docker.initPID == 999)
        #expect(docker.mounts.map(\.destination) == ["/v"])

        let runc = try #require(reader.metadata(containerID: runcID))
        #expect(runc.runtime == "runc")
        #expect(runc.reference().podName == "lonely")
        #expect(runc.rootfs == "/r")

        #expect(reader.metadata(containerID: String(repeating: "e", count: 64)) == nil)
        #expect(reader.metadata(containerID: "../../etc") == nil)
    }
}

@Suite("container file system checks")
struct ContainerFilesystemTests {
    @Test("volumes: longest destination wins, runtime files and pseudo trees are not volumes")
    func volumes() {
        let filesystem = ContainerFilesystem(
            volumes: ContainerFilesystem.volumes(from: [
                OCIMount(destination: "/data", source: "/srv/data", type: "bind"),
                OCIMount(destination: "/data/cache/", source: "/srv/cache", type: "bind"),
                OCIMount(destination: "/etc/resolv.conf", source: "/r", type: "bind"),
                OCIMount(destination: "/dev/shm", source: "/s", type: "bind"),
                OCIMount(destination: "/proc/x", source: "/p", type: "bind"),
                OCIMount(destination: "/tmp", source: "tmpfs", type: "tmpfs"),
                OCIMount(destination: "/", source: "/weird", type: "bind"),
            ]))
        #expect(filesystem.volumes.map(\.destination) == ["/data/cache", "/data"])
        #expect(filesystem.isFromVolume("/data/bin/tool"))
        #expect(filesystem.volume(containing: "/data/cache/x")?.source == "/srv/cache")
        #expect(filesystem.isFromVolume("/data"))
        #expect(!filesystem.isFromVolume("/database/x"))
        #expect(!filesystem.isFromVolume("/etc/resolv.conf"))
        #expect(!filesystem.isFromVolume("/tmp/x"))
        #expect(!filesystem.isFromVolume("relative/data/x"))
        #expect(filesystem.isFromVolume("/usr/../data/./x"))
        #expect(!filesystem.isFromVolume("/data/../etc/passwd"))
    }

    @Test("upper layer: present, absent, whiteout, volume and no overlay")
    func upper() throws {
        let directory = try TemporaryDirectory(prefix: "patrol-upper")
        defer { directory.remove() }
        let upper = directory.file("upper")
        try FileManager.default.createDirectory(atPath: "\(upper)/tmp", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(upper)/data", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: "\(upper)/tmp/dropped", contents: Data("x".utf8))
        FileManager.default.createFile(atPath: "\(upper)/data/file", contents: Data("x".utf8))
        try FileManager.default.createSymbolicLink(atPath: "\(upper)/tmp/link", withDestinationPath: "/nonexistent")
        // An overlay whiteout: a 0/0 character device (needs CAP_MKNOD, so only checked when it can be made).
        let whiteout = mknod("\(upper)/tmp/deleted", S_IFCHR | 0o000, 0) == 0
        let filesystem = ContainerFilesystem(upperDir: upper, volumes: [VolumeMount(destination: "/data")])
        #expect(filesystem.isInUpperLayer("/tmp/dropped"))
        #expect(filesystem.isInUpperLayer("/tmp/link"))
        #expect(!filesystem.isInUpperLayer("/bin/sh"))
        #expect(!filesystem.isInUpperLayer("/data/file"))
        #expect(!filesystem.isInUpperLayer("/"))
        if whiteout { #expect(!filesystem.isInUpperLayer("/tmp/deleted")) }
        #expect(!ContainerFilesystem().isInUpperLayer("/tmp/dropped"))
    }
}
