import Foundation
import TestSupport
import Testing

@testable import SensorApp

/// The resolver against a fake node: a directory tree standing in for the cgroup v2 hierarchy (directory inodes are
/// the ids, as on cgroupfs), a fake `/proc` and a fake runc state root. No root or runc needed.
@Suite("container resolver on a fake node")
struct ContainerResolverFakeNodeTests {
    final class FakeNode {
        let directory: TemporaryDirectory
        var cgroups: String { directory.file("cgroup") }
        var proc: String { directory.file("proc") }
        var runcRoot: String { directory.file("runc") }

        init() throws {
            directory = try TemporaryDirectory(prefix: "patrol-fakenode")
            for path in [cgroups, proc, runcRoot, "\(cgroups)/system.slice/sshd.service"] {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            }
        }

        deinit { directory.remove() }

        /// Creates the container's cgroup and runc state; returns the cgroup id.
        @discardableResult
        func addContainer(id: String, podUID: String, podName: String, path: String? = nil) throws -> UInt64 {
            let cgroup = path ?? "/kubepods/besteffort/pod\(podUID)/\(id)"
            try FileManager.default.createDirectory(atPath: cgroups + cgroup, withIntermediateDirectories: true)
            try writeState(id: id, podName: podName, podUID: podUID)
            return try #require(CgroupHierarchy.inode(of: cgroups + cgroup))
        }

        func writeState(id: String, podName: String, podUID: String) throws {
            try FileManager.default.createDirectory(atPath: "\(runcRoot)/\(id)", withIntermediateDirectories: true)
            let state: [String: Any] = [
                "init_process_pid": 1,
                "config": [
                    "labels": [
                        "io.kubernetes.pod.name=\(podName)", "io.kubernetes.pod.namespace=ns",
                        "io.kubernetes.pod.uid=\(podUID)", "io.kubernetes.container.name=app",
                    ]
                ],
            ]
            try JSONSerialization.data(withJSONObject: state).write(
                to: URL(fileURLWithPath: "\(runcRoot)/\(id)/state.json"))
        }

        func removeContainer(id: String, podUID: String) throws {
            try FileManager.default.removeItem(atPath: "\(cgroups)/kubepods/besteffort/pod\(podUID)/\(id)")
            try FileManager.default.removeItem(atPath: "\(runcRoot)/\(id)")
        }

        func setProcess(_ pid: Int32, cgroup: String) throws {
            try FileManager.default.createDirectory(atPath: "\(proc)/\(pid)", withIntermediateDirectories: true)
            try "1:name=systemd:\(cgroup)\n0::\(cgroup)\n".write(
                toFile: "\(proc)/\(pid)/cgroup", atomically: true, encoding: .utf8)
        }

        func resolver(
            revalidate: Duration = .zero, ttl: Duration = .seconds(600), grace: Duration = .seconds(5),
            indexInterval: Duration = .zero, maxEntries: Int = 1000
        ) -> ContainerResolver {
            ContainerResolver(
                configuration: ContainerResolverConfiguration(
                    procRoot: proc, cgroupMountPoint: cgroups,
                    stateReader: RuntimeStateReader(
                        sources: [RuntimeStateSource(runtime: "runc", layout: .runcState, root: runcRoot)]),
                    revalidateInterval: revalidate, timeToLive: ttl, exitGrace: grace, maxEntries: maxEntries,
                    indexRefreshInterval: indexInterval))
        }
    }

    static let idA = String(repeating: "a1", count: 32)
    static let idB = String(repeating: "b2", count: 32)
    static let pod = "11111111-2222-3333-4444-555555555555"

    @Test("resolves by cgroup id through the index walk, and host cgroups to nil")
    func byCgroupID() throws {
        let node = try FakeNode()
        let id = try node.addContainer(id: Self.idA, podUID: Self.pod, podName: "web")
        let resolver = node.resolver()
        let reference = try #require(resolver.container(forCgroup: id, pid: 0))
        #expect(reference.containerID == Self.idA)
        #expect(reference.podName == "web")
        #expect(reference.namespace == "ns")
        #expect(reference.podUID == Self.pod)
        #expect(reference.containerName == "app")
        #expect(reference.runtime == "runc")
        let sshd = try #require(CgroupHierarchy.inode(of: "\(node.cgroups)/system.slice/sshd.service"))
        #expect(resolver.container(forCgroup: sshd, pid: 0) == nil)
        let root = try #require(CgroupHierarchy.inode(of: node.cgroups))
        #expect(resolver.container(forCgroup: root, pid: 0) == nil)
        #expect(resolver.container(forCgroup: 999_999_999, pid: 0) == nil)
        // The index's readdir inode matches stat.
        #expect(resolver.index?.cachedPath(for: id) == "/kubepods/besteffort/pod\(Self.pod)/\(Self.idA)")
    }

    @Test("resolves by pid alone (cgroup id 0) and via the pid when the index is rate limited")
    func byPID() throws {
        let node = try FakeNode()
        let resolver = node.resolver(indexInterval: .seconds(3600))
        #expect(resolver.index?.refresh() == true)  // the walk happens now; later misses are rate limited
        let id = try node.addContainer(id: Self.idA, podUID: Self.pod, podName: "web")
        try node.setProcess(42, cgroup: "/kubepods/besteffort/pod\(Self.pod)/\(Self.idA)")
        #expect(resolver.container(forCgroup: 0, pid: 42)?.podName == "web")
        try node.setProcess(43, cgroup: "/kubepods/besteffort/pod\(Self.pod)/\(Self.idA)")
        let idB = try node.addContainer(id: Self.idB, podUID: Self.pod, podName: "api")
        try node.setProcess(44, cgroup: "/kubepods/besteffort/pod\(Self.pod)/\(Self.idB)")
        #expect(resolver.container(forCgroup: idB, pid: 44)?.podName == "api")
        #expect(resolver.index?.stats.walks == 1)
        // A pid now in another cgroup does not lend its identity to an unknown id.
        #expect(resolver.container(forCgroup: 123_456_789, pid: 43) == nil)
        #expect(resolver.container(forCgroup: id, pid: 43)?.podName == "web")
        // A host process.
        try node.setProcess(50, cgroup: "/system.slice/sshd.service")
        #expect(resolver.container(forCgroup: 0, pid: 50) == nil)
        #expect(resolver.container(forCgroup: 0, pid: 51) == nil)
    }

    @Test("v1-only processes resolve from their v1 lines")
    func v1Only() throws {
        let node = try FakeNode()
        try node.writeState(id: Self.idA, podName: "legacy", podUID: Self.pod)
        try FileManager.default.createDirectory(atPath: "\(node.proc)/7", withIntermediateDirectories: true)
        try "4:memory:/kubepods/besteffort/pod\(Self.pod)/\(Self.idA)\n".write(
            toFile: "\(node.proc)/7/cgroup", atomically: true, encoding: .utf8)
        let resolver = node.resolver()
        #expect(resolver.container(forCgroup: 0, pid: 7)?.podName == "legacy")
        #expect(resolver.stats.procFallbacks == 1)
    }

    @Test("a container that exits is answered during the grace period, then dropped")
    func exitGrace() async throws {
        let node = try FakeNode()
        let id = try node.addContainer(id: Self.idA, podUID: Self.pod, podName: "web")
        let resolver = node.resolver(grace: .milliseconds(300))
        #expect(resolver.container(forCgroup: id, pid: 0)?.podName == "web")
        try node.removeContainer(id: Self.idA, podUID: Self.pod)
        #expect(resolver.container(forCgroup: id, pid: 0)?.podName == "web")
        #expect(resolver.stats.exits == 1)
        try await Task.sleep(for: .milliseconds(400))
        #expect(resolver.container(forCgroup: id, pid: 0) == nil)
        #expect(resolver.stats.entries == 0)
    }

    @Test("sweep evicts exited containers without further lookups")
    func sweep() async throws {
        let node = try FakeNode()
        let id = try node.addContainer(id: Self.idA, podUID: Self.pod, podName: "web")
        let resolver = node.resolver(grace: .milliseconds(100))
        _ = resolver.container(forCgroup: id, pid: 0)
        #expect(resolver.stats.entries == 1)
        try node.removeContainer(id: Self.idA, podUID: Self.pod)
        resolver.sweep()
        #expect(resolver.stats.exits == 1)
        #expect(resolver.stats.entries == 1)
        try await Task.sleep(for: .milliseconds(150))
        resolver.sweep()
        #expect(resolver.stats.entries == 0)
    }

    @Test("a cgroup path re-created for a new container: the old id is not served the new identity, nor vice versa")
    func remap() throws {
        let node = try FakeNode()
        let path = "/kubepods/besteffort/pod\(Self.pod)/\(Self.idA)"
        let oldID = try node.addContainer(id: Self.idA, podUID: Self.pod, podName: "first")
        let resolver = node.resolver(grace: .zero)
        #expect(resolver.container(forCgroup: oldID, pid: 0)?.podName == "first")
        // Same container id restarted with new annotations: a new directory (new inode) at the same path.
        let fresh = "\(node.cgroups)/kubepods/besteffort/pod\(Self.pod)/fresh"
        try FileManager.default.createDirectory(atPath: fresh, withIntermediateDirectories: true)
        try FileManager.default.removeItem(atPath: node.cgroups + path)
        try FileManager.default.moveItem(atPath: fresh, toPath: node.cgroups + path)
        try node.writeState(id: Self.idA, podName: "second", podUID: Self.pod)
        let newID = try #require(CgroupHierarchy.inode(of: node.cgroups + path))
        #expect(newID != oldID)
        #expect(resolver.container(forCgroup: newID, pid: 0)?.podName == "second")
        // The old id's path now has another inode: it is dropped, not answered with "second".
        #expect(resolver.container(forCgroup: oldID, pid: 0) == nil)
        #expect(resolver.stats.remapped == 1)
    }

    @Test("time to live re-reads the runtime state")
    func ttl() async throws {
        let node = try FakeNode()
        let id = try node.addContainer(id: Self.idA, podUID: Self.pod, podName: "before")
        let resolver = node.resolver(revalidate: .seconds(60), ttl: .milliseconds(200))
        #expect(resolver.container(forCgroup: id, pid: 0)?.podName == "before")
        try node.writeState(id: Self.idA, podName: "after", podUID: Self.pod)
        #expect(resolver.container(forCgroup: id, pid: 0)?.podName == "before")
        try await Task.sleep(for: .milliseconds(250))
        #expect(resolver.container(forCgroup: id, pid: 0)?.podName == "after")
    }

    @Test("missing runtime state gives a bare reference, completed once the state appears")
    func incomplete() throws {
        let node = try FakeNode()
        let path = "/kubepods/besteffort/pod\(Self.pod)/\(Self.idA)"
        try FileManager.default.createDirectory(atPath: node.cgroups + path, withIntermediateDirectories: true)
        let id = try #require(CgroupHierarchy.inode(of: node.cgroups + path))
        let resolver = ContainerResolver(
            configuration: ContainerResolverConfiguration(
                procRoot: node.proc, cgroupMountPoint: node.cgroups,
                stateReader: RuntimeStateReader(
                    sources: [RuntimeStateSource(runtime: "runc", layout: .runcState, root: node.runcRoot)]),
                revalidateInterval: .seconds(60), incompleteRetryInterval: .zero))
        let bare = try #require(resolver.container(forCgroup: id, pid: 0))
        #expect(bare.containerID == Self.idA)
        #expect(bare.podUID == Self.pod)
        #expect(bare.podName == "")
        #expect(resolver.stats.metadataMisses == 1)
        try node.writeState(id: Self.idA, podName: "late", podUID: Self.pod)
        #expect(resolver.container(forCgroup: id, pid: 0)?.podName == "late")
    }

    @Test("a cache hit reads no files")
    func hits() throws {
        let node = try FakeNode()
        let id = try node.addContainer(id: Self.idA, podUID: Self.pod, podName: "web")
        let resolver = node.resolver(revalidate: .seconds(60))
        _ = resolver.container(forCgroup: id, pid: 0)
        try FileManager.default.removeItem(atPath: "\(node.runcRoot)/\(Self.idA)")
        for _ in 0..<100 { #expect(resolver.container(forCgroup: id, pid: 0)?.podName == "web") }
        #expect(resolver.stats.hits == 100)
        #expect(resolver.stats.resolutions == 1)
    }

    @Test("the cache is bounded")
    func bounded() throws {
        let node = try FakeNode()
        let resolver = node.resolver(revalidate: .seconds(60), maxEntries: 3)
        for index in 0..<6 {
            let id = String(format: "%064x", index + 1)
            let cgroup = try node.addContainer(id: id, podUID: Self.pod, podName: "p\(index)")
            #expect(resolver.container(forCgroup: cgroup, pid: 0)?.podName == "p\(index)")
        }
        #expect(resolver.stats.entries == 3)
    }

    @Test("the index stops at its bound")
    func indexBound() throws {
        let node = try FakeNode()
        for index in 0..<10 {
            try FileManager.default.createDirectory(
                atPath: "\(node.cgroups)/many/\(index)", withIntermediateDirectories: true)
        }
        let index = CgroupIndex(mountPoint: node.cgroups, maxEntries: 5)
        index.refresh()
        #expect(index.stats.entries == 5)
        #expect(index.stats.truncatedWalks == 1)
    }
}
