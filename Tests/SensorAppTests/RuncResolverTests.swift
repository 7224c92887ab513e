import Foundation
import TestSupport
import Testing

@testable import SensorApp

/// The resolver against real `runc` containers with kubelet-style cgroups and `io.kubernetes.*` annotations.
/// Skipped, with the reason printed, when not root or runc is missing.
@Suite("container resolver with runc containers", .serialized)
struct RuncResolverTests {
    static func skip() -> Bool {
        if let reason = RuncContainer.unavailableReason {
            print("skipped: \(reason)")
            return true
        }
        return false
    }

    static func resolver(grace: Duration = .seconds(5)) -> ContainerResolver {
        ContainerResolver(
            configuration: ContainerResolverConfiguration(
                revalidateInterval: .zero, exitGrace: grace, indexRefreshInterval: .zero))
    }

    /// The v2 cgroup id of a host process, as `bpf_get_current_cgroup_id()` would give it.
    static func cgroupID(ofPID pid: Int32) -> UInt64? {
        guard let mount = RuncContainer.unifiedCgroupMount,
            let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8),
            let path = ProcCgroupParser.unifiedPath(ProcCgroupParser.parse(text))
        else { return nil }
        return CgroupHierarchy.inode(of: path == "/" ? mount : mount + path)
    }

    // Each test stops its containers with `await stop()`; the `defer`s are the safety net when a `#require` throws.

    @Test("a container's processes resolve by cgroup id and by pid; the host resolves to nil")
    func identity() async throws {
        if Self.skip() { return }
        let container = try await RuncContainer.start(
            .init(
                podName: "web-5f7c9", namespace: "shop", containerName: "nginx",
                image: "docker.io/library/nginx:1.27"))
        defer { container.stopBlocking() }
        let resolver = Self.resolver()
        let cgroupID = try #require(container.cgroupID)
        #expect(Self.cgroupID(ofPID: container.initPID) == cgroupID)

        let byID = try #require(resolver.container(forCgroup: cgroupID, pid: container.initPID))
        #expect(byID.containerID == container.id)
        #expect(byID.podName == "web-5f7c9")
        #expect(byID.namespace == "shop")
        #expect(byID.containerName == "nginx")
        #expect(byID.podUID == container.options.podUID)
        #expect(byID.image == "docker.io/library/nginx:1.27")
        #expect(byID.runtime == "runc")
        // The index built by readdir agrees with stat.
        #expect(resolver.index?.cachedPath(for: cgroupID) == container.cgroupPath)

        // By pid alone, for the init and for a process exec'd into the container.
        #expect(resolver.container(forCgroup: 0, pid: container.initPID) == byID)
        let execPID = try await container.execDetached(["sleep", "30"])
        #expect(Self.cgroupID(ofPID: execPID) == cgroupID)
        #expect(resolver.container(forCgroup: 0, pid: execPID) == byID)
        // A fresh resolver, by cgroup id with the pid of an exec'd process (no index yet).
        #expect(Self.resolver().container(forCgroup: cgroupID, pid: execPID) == byID)
        let result = try await container.exec(["cat", "/proc/self/cgroup"])
        #expect(result.status == 0)
        #expect(result.standardOutput.contains("0::/"))

        // This test process is on the host.
        let selfPID = getpid()
        let hostID = try #require(Self.cgroupID(ofPID: selfPID))
        #expect(resolver.container(forCgroup: hostID, pid: selfPID) == nil)
        #expect(resolver.container(forCgroup: 0, pid: selfPID) == nil)
        #expect(resolver.container(forCgroup: 0, pid: 1) == nil)
        await container.stop()
    }

    @Test("two containers of one pod, and a guaranteed-QoS pod")
    func twoContainers() async throws {
        if Self.skip() { return }
        let podUID = RuncContainer.newPodUID()
        let app = try await RuncContainer.start(.init(podName: "api-0", podUID: podUID, containerName: "app"))
        defer { app.stopBlocking() }
        let sidecar = try await RuncContainer.start(.init(podName: "api-0", podUID: podUID, containerName: "proxy"))
        defer { sidecar.stopBlocking() }
        let guaranteed = try await RuncContainer.start(.init(podName: "db-0", containerName: "db", qos: "guaranteed"))
        defer { guaranteed.stopBlocking() }
        let resolver = Self.resolver()
        let appID = try #require(app.cgroupID)
        let first = try #require(resolver.container(forCgroup: appID, pid: app.initPID))
        let sidecarID = try #require(sidecar.cgroupID)
        let second = try #require(resolver.container(forCgroup: sidecarID, pid: sidecar.initPID))
        #expect(first.containerName == "app")
        #expect(second.containerName == "proxy")
        #expect(first.podUID == second.podUID)
        #expect(first.containerID != second.containerID)
        let guaranteedID = try #require(guaranteed.cgroupID)
        let db = try #require(resolver.container(forCgroup: guaranteedID, pid: guaranteed.initPID))
        #expect(db.podName == "db-0")
        #expect(guaranteed.cgroupPath.hasPrefix("/kubepods/pod"))
        for container in [app, sidecar, guaranteed] { await container.stop() }
    }

    @Test("restart with a new container id, pid reuse, and a container id reused with new annotations")
    func restart() async throws {
        if Self.skip() { return }
        let podUID = RuncContainer.newPodUID()
        let resolver = Self.resolver(grace: .zero)
        let first = try await RuncContainer.start(.init(podName: "job-1", podUID: podUID, containerName: "worker"))
        let firstID = try #require(first.cgroupID)
        let firstPID = first.initPID
        #expect(resolver.container(forCgroup: firstID, pid: firstPID)?.containerID == first.id)
        await first.stop()
        #expect(CgroupHierarchy.inode(of: try #require(first.cgroupDirectory)) == nil)

        // The kubelet restarts the container: same pod, new container id, new cgroup.
        let second = try await RuncContainer.start(.init(podName: "job-1", podUID: podUID, containerName: "worker"))
        defer { second.stopBlocking() }
        let secondID = try #require(second.cgroupID)
        #expect(secondID != firstID)
        let resolved = try #require(resolver.container(forCgroup: secondID, pid: second.initPID))
        #expect(resolved.containerID == second.id)
        #expect(resolved.podName == "job-1")
        // Late events of the first container: its cgroup is gone (grace zero), so not the second's identity.
        #expect(resolver.container(forCgroup: firstID, pid: firstPID)?.containerID != second.id)

        // Pid reuse: a host process that got the first container's init pid is the host.
        if let reused = try await Self.spawnHostProcess(withPID: firstPID) {
            defer {
                kill(reused, SIGKILL)
                var status: Int32 = 0
                waitpid(reused, &status, 0)
            }
            #expect(resolver.container(forCgroup: 0, pid: reused) == nil)
            let hostID = try #require(Self.cgroupID(ofPID: reused))
            #expect(resolver.container(forCgroup: hostID, pid: reused) == nil)
        } else {
            print("note: pid \(firstPID) was not handed out again; the pid reuse check did not run")
        }

        // The same container id started again, by a different pod: the new cgroup directory has a new inode at
        // the same path, and the resolver follows it.
        await second.stop()
        let third = try await RuncContainer.start(
            .init(podName: "job-2", podUID: podUID, containerName: "worker", containerID: second.id))
        defer { third.stopBlocking() }
        let thirdID = try #require(third.cgroupID)
        #expect(thirdID != secondID)
        #expect(resolver.container(forCgroup: thirdID, pid: third.initPID)?.podName == "job-2")
        #expect(resolver.container(forCgroup: secondID, pid: 0)?.podName != "job-2")
        #expect(resolver.container(forCgroup: 0, pid: third.initPID)?.podName == "job-2")
        await third.stop()
    }

    @Test("upper layer and volume checks on files in the upper layer, the image and a volume")
    func layers() async throws {
        if Self.skip() { return }
        let volume = try TemporaryDirectory(prefix: "patrol-volume")
        defer { volume.remove() }
        // Named after an applet: busybox picks the applet from argv[0].
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: volume.file("true"))
        let container = try await RuncContainer.start(
            .init(
                podName: "drift", volumes: [RuncContainer.Volume(hostPath: volume.path, containerPath: "/mnt/vol")],
                overlay: true))
        defer { container.stopBlocking() }
        let write = try await container.exec(["sh", "-c", "cp /bin/busybox /tmp/true && /tmp/true"])
        #expect(write.status == 0, "\(write.standardError)")
        let fromVolume = try await container.exec(["/mnt/vol/true", "true"])
        #expect(fromVolume.status == 0, "\(fromVolume.standardError)")
        let upper = try #require(container.upperDir)
        #expect(FileManager.default.fileExists(atPath: upper + "/tmp/true"))

        let resolver = Self.resolver()
        let cgroupID = try #require(container.cgroupID)
        let filesystem = try #require(resolver.filesystem(forCgroup: cgroupID, pid: container.initPID))
        #expect(filesystem.upperDir == upper)
        #expect(filesystem.lowerDirs == [container.imageDir])
        #expect(filesystem.volumes.map(\.destination) == ["/mnt/vol"])

        #expect(resolver.isInUpperLayer("/tmp/true", cgroup: cgroupID, pid: container.initPID))
        #expect(!resolver.isInUpperLayer("/bin/busybox", cgroup: cgroupID, pid: container.initPID))
        #expect(!resolver.isInUpperLayer("/bin/sh", cgroup: cgroupID, pid: container.initPID))
        #expect(!resolver.isInUpperLayer("/mnt/vol/true", cgroup: cgroupID, pid: container.initPID))
        #expect(resolver.isFromVolume("/mnt/vol/true", cgroup: cgroupID, pid: container.initPID))
        #expect(!resolver.isFromVolume("/tmp/true", cgroup: cgroupID, pid: container.initPID))
        #expect(!resolver.isFromVolume("/bin/busybox", cgroup: cgroupID, pid: container.initPID))
        // A file changed later is seen without re-reading mountinfo (the layout is cached; the check is a stat).
        _ = try await container.exec(["sh", "-c", "cp /bin/sh /usr/bin/late"])
        #expect(resolver.isInUpperLayer("/usr/bin/late", cgroup: cgroupID, pid: container.initPID))
        #expect(resolver.execOrigin("/tmp/true", cgroup: cgroupID, pid: container.initPID) == (true, false))
        #expect(resolver.execOrigin("/mnt/vol/true", cgroup: cgroupID, pid: container.initPID) == (false, true))
        #expect(resolver.execOrigin("/bin/busybox", cgroup: cgroupID, pid: container.initPID) == (false, false))
        // By pid alone.
        #expect(resolver.isInUpperLayer("/tmp/true", cgroup: 0, pid: container.initPID))
        // The host has neither.
        let selfPID = getpid()
        #expect(!resolver.isInUpperLayer("/tmp", cgroup: 0, pid: selfPID))
        #expect(!resolver.isFromVolume("/tmp", cgroup: 0, pid: selfPID))
        await container.stop()
    }

    @Test("a container whose root is not an overlay has no upper layer")
    func plainRoot() async throws {
        if Self.skip() { return }
        let container = try await RuncContainer.start(.init(podName: "plain"))
        defer { container.stopBlocking() }
        let write = try await container.exec(["sh", "-c", "cp /bin/busybox /tmp/dropped"])
        #expect(write.status == 0)
        let resolver = Self.resolver()
        let cgroupID = try #require(container.cgroupID)
        #expect(resolver.filesystem(forCgroup: cgroupID, pid: container.initPID)?.upperDir == nil)
        #expect(!resolver.isInUpperLayer("/tmp/dropped", cgroup: cgroupID, pid: container.initPID))
        // The file is really there, in the container's own writable root.
        #expect(FileManager.default.fileExists(atPath: container.hostPath("/tmp/dropped")))
        await container.stop()
    }

    /// Makes the kernel hand `pid` to a new host process (`sleep`), by setting `ns_last_pid`; nil when another
    /// process on this busy machine took it first.
    static func spawnHostProcess(withPID pid: Int32) async throws -> Int32? {
        try await offPool {
            for _ in 0..<20 {
                guard kill(pid, 0) != 0 else { return nil }  // still taken
                let descriptor = open("/proc/sys/kernel/ns_last_pid", O_WRONLY)
                guard descriptor >= 0 else { return nil }
                let text = "\(pid - 1)"
                let written = write(descriptor, text, text.utf8.count)
                close(descriptor)
                guard written == text.utf8.count else { return nil }
                var child: pid_t = 0
                let arguments = ["/bin/sleep", "30"]
                var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
                defer { for pointer in argv { free(pointer) } }
                guard posix_spawn(&child, "/bin/sleep", nil, nil, &argv, environ) == 0 else { return nil }
                if child == pid { return child }
                kill(child, SIGKILL)
                var status: Int32 = 0
                waitpid(child, &status, 0)
            }
            return nil
        }
    }
}
