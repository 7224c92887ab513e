import Testing

@testable import SensorApp

private let id64 = "4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899"
private let node64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
private let uid = "7c0ea2d1-1b3c-4d5e-8f90-123456789abc"
private let uidUnderscored = "7c0ea2d1_1b3c_4d5e_8f90_123456789abc"

@Suite("cgroup path → container id")
struct CgroupPathParserTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var path: String
        var runtime: String?
        var id: String
        var pod: String?
        var monitor = false
        var testDescription: String { path }
    }

    static let containers: [Case] = [
        // containerd, systemd cgroup driver, each QoS class.
        Case(
            path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidUnderscored).slice/"
                + "cri-containerd-\(id64).scope", runtime: "containerd", id: id64, pod: uid),
        Case(
            path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(uidUnderscored).slice/"
                + "cri-containerd-\(id64).scope", runtime: "containerd", id: id64, pod: uid),
        Case(
            path: "/kubepods.slice/kubepods-pod\(uidUnderscored).slice/cri-containerd-\(id64).scope",
            runtime: "containerd", id: id64, pod: uid),
        // The plain kubelet cgroupfs form (containerd, docker): runtime unknown from the path.
        Case(path: "/kubepods/besteffort/pod\(uid)/\(id64)", runtime: nil, id: id64, pod: uid),
        Case(path: "/kubepods/burstable/pod\(uid)/\(id64)", runtime: nil, id: id64, pod: uid),
        Case(path: "/kubepods/pod\(uid)/\(id64)", runtime: nil, id: id64, pod: uid),
        // A static pod's uid is a hash without dashes.
        Case(
            path: "/kubepods/burstable/pod2f1a3b4c5d6e7f8091a2b3c4d5e6f708/\(id64)", runtime: nil, id: id64,
            pod: "2f1a3b4c5d6e7f8091a2b3c4d5e6f708"),
        // A process in a nested cgroup of the container.
        Case(
            path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(uidUnderscored).slice/"
                + "cri-containerd-\(id64).scope/init.scope", runtime: "containerd", id: id64, pod: uid),
        // CRI-O: systemd and cgroupfs, with crun's nested "container" cgroup, and its conmon monitor.
        Case(
            path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidUnderscored).slice/"
                + "crio-\(id64).scope", runtime: "cri-o", id: id64, pod: uid),
        Case(
            path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidUnderscored).slice/"
                + "crio-\(id64).scope/container", runtime: "cri-o", id: id64, pod: uid),
        Case(path: "/kubepods/burstable/pod\(uid)/crio-\(id64)", runtime: "cri-o", id: id64, pod: uid),
        Case(
            path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidUnderscored).slice/"
                + "crio-conmon-\(id64).scope", runtime: "cri-o", id: id64, pod: uid, monitor: true),
        // docker: systemd scope and cgroupfs.
        Case(path: "/system.slice/docker-\(id64).scope", runtime: "docker", id: id64, pod: nil),
        Case(path: "/docker/\(id64)", runtime: "docker", id: id64, pod: nil),
        // podman (runc or crun): rootful, rootless, cgroupfs, nested, conmon.
        Case(path: "/machine.slice/libpod-\(id64).scope", runtime: "podman", id: id64, pod: nil),
        Case(path: "/machine.slice/libpod-\(id64).scope/container", runtime: "podman", id: id64, pod: nil),
        Case(
            path: "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(id64).scope",
            runtime: "podman", id: id64, pod: nil),
        Case(path: "/libpod_parent/libpod-\(id64)", runtime: "podman", id: id64, pod: nil),
        Case(path: "/machine.slice/libpod-conmon-\(id64).scope", runtime: "podman", id: id64, pod: nil, monitor: true),
        // kind: a node container holding kubelet cgroups; the innermost container wins.
        Case(path: "/docker/\(node64)/kubepods/besteffort/pod\(uid)/\(id64)", runtime: nil, id: id64, pod: uid),
        Case(
            path: "/system.slice/docker-\(node64).scope/kubelet.slice/kubelet-kubepods.slice/"
                + "kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod\(uidUnderscored).slice/"
                + "cri-containerd-\(id64).scope", runtime: "containerd", id: id64, pod: uid),
        // The kind node's own services belong to the node container.
        Case(path: "/docker/\(node64)/system.slice/containerd.service", runtime: "docker", id: node64, pod: nil),
        // Trailing slash and doubled slashes.
        Case(path: "/kubepods//besteffort/pod\(uid)/\(id64)/", runtime: nil, id: id64, pod: uid),
    ]

    @Test("container paths", arguments: containers)
    func containerPath(_ c: Case) {
        let parsed = CgroupPathParser.parse(c.path)
        #expect(parsed?.containerID == c.id)
        #expect(parsed?.runtimeHint == c.runtime)
        #expect(parsed?.podUID == c.pod)
        #expect(parsed?.isMonitor == c.monitor)
    }

    static let hostPaths = [
        "/", "", "/init.scope", "/system.slice/containerd.service", "/system.slice/docker.service",
        "/system.slice/kubelet.service", "/system.slice/crio.service", "/system.slice/sshd.service",
        "/user.slice/user-1000.slice/session-3.scope",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service",
        "/user.slice/user-0.slice/user@0.service/init.scope",
        // Pod-level cgroups hold no processes of a container.
        "/kubepods/besteffort/pod\(uid)", "/kubepods.slice/kubepods-besteffort.slice",
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(uidUnderscored).slice", "/kubepods",
        "/kubepods/burstable",
        // Not ids: too short, not hex, upper case.
        "/system.slice/docker-abc.scope", "/kubepods/besteffort/pod\(uid)/not-a-container",
        "/kubepods/besteffort/pod\(uid)/\(id64.uppercased())", "/docker/xyz",
        "/system.slice/docker-\(id64)-extra.scope",
        // Look-alikes: a v1 memory path of this sandbox, a non-docker parent, podman's own services.
        "/process_api/9c4250013648b3acfea6a471e632ccbf", "/somewhere/\(id64)", "/machine.slice/podman.service",
        "/system.slice/podman-auto-update.service", "/system.slice/system-getty.slice/getty@tty1.service",
    ]

    @Test("host paths have no container", arguments: hostPaths)
    func hostPath(_ path: String) {
        #expect(CgroupPathParser.parse(path) == nil)
    }

    @Test("pod uid segments")
    func podSegments() {
        #expect(CgroupPathParser.podUID(fromSegment: "pod\(uid)") == uid)
        #expect(CgroupPathParser.podUID(fromSegment: "kubepods-besteffort-pod\(uidUnderscored).slice") == uid)
        #expect(CgroupPathParser.podUID(fromSegment: "kubepods-pod\(uidUnderscored).slice") == uid)
        #expect(CgroupPathParser.podUID(fromSegment: "kubepods-besteffort.slice") == nil)
        #expect(CgroupPathParser.podUID(fromSegment: "podman") == nil)
        #expect(CgroupPathParser.podUID(fromSegment: "pods") == nil)
        #expect(CgroupPathParser.podUID(fromSegment: "pod12") == nil)
        #expect(CgroupPathParser.podUID(fromSegment: "system-pod\(uidUnderscored).slice") == nil)
    }
}

@Suite("/proc/<pid>/cgroup")
struct ProcCgroupParserTests {
    @Test("hybrid host: v1 controllers plus the unified line")
    func hybrid() {
        let text = """
            9:name=systemd:/kubepods/besteffort/pod\(uid)/\(id64)
            8:pids:/kubepods/besteffort/pod\(uid)/\(id64)
            4:memory:/kubepods/besteffort/pod\(uid)/\(id64)
            3:cpu,cpuacct:/kubepods/besteffort/pod\(uid)/\(id64)
            0::/kubepods/besteffort/pod\(uid)/\(id64)

            """
        let entries = ProcCgroupParser.parse(text)
        #expect(entries.count == 5)
        #expect(entries[3].controllers == ["cpu", "cpuacct"])
        #expect(ProcCgroupParser.unifiedPath(entries) == "/kubepods/besteffort/pod\(uid)/\(id64)")
        #expect(ProcCgroupParser.container(entries)?.container.containerID == id64)
    }

    @Test("v1 only: docker cgroupfs")
    func v1Only() {
        let text = "12:memory:/docker/\(id64)\n11:devices:/docker/\(id64)\n1:name=systemd:/docker/\(id64)\n"
        let entries = ProcCgroupParser.parse(text)
        #expect(ProcCgroupParser.unifiedPath(entries) == nil)
        #expect(ProcCgroupParser.container(entries)?.container.runtimeHint == "docker")
        #expect(ProcCgroupParser.container(entries)?.path == "/docker/\(id64)")
    }

    @Test("a host process on a hybrid host, and malformed lines")
    func host() {
        let text = "4:memory:/process_api/9c4250013648b3acfea6a471e632ccbf\n0::/\ngarbage\nx:y:z\n"
        let entries = ProcCgroupParser.parse(text)
        #expect(entries.count == 2)
        #expect(ProcCgroupParser.unifiedPath(entries) == "/")
        #expect(ProcCgroupParser.container(entries) == nil)
    }

    @Test("paths containing colons")
    func colon() {
        let entries = ProcCgroupParser.parse("0::/system.slice/weird:name.service\n")
        #expect(entries.first?.path == "/system.slice/weird:name.service")
    }
}
