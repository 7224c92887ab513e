import EventModel
import Foundation
import KernelEvents
import TestSupport
import Testing

@testable import SensorApp

/// What the sensor says about a container beyond its identity: whether it was already running when the sensor
/// started (`ContainerRef.runningAtSensorStart`, which makes the collector's profile `partial`), and whether an
/// opened path is on one of its volumes (`FileOpen.fromVolume`, R0002's `ignoreMounts`).
@Suite("container observation: running at sensor start, opens on volumes")
struct ContainerObservationTests {
    @Test("a process's start time is read from /proc/<pid>/stat, whatever its name holds")
    func procStatStartTime() throws {
        // Fields 3..22 after the name; starttime (field 22) is 4242 ticks. The name has spaces and parentheses.
        let fields = ["S", "1", "2", "3", "0", "-1", "4194304", "0", "0", "0", "0", "0", "0", "0", "0", "20", "0",
            "1", "0", "4242", "1000", "10"]
        let text = "77 (we ird) (x) " + fields.joined(separator: " ") + "\n"
        #expect(ProcStat.startTimeNanoseconds(text) == 4242 * (1_000_000_000 / ProcStat.ticksPerSecond))
        #expect(ProcStat.startTimeNanoseconds("77 (short) S 1 2") == nil)
        #expect(ProcStat.startTimeNanoseconds("garbage") == nil)
        // This process started before now, on the boot clock the sensor compares with.
        let stat = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
        let own = try #require(ProcStat.startTimeNanoseconds(stat))
        #expect(own > 0 && own <= BootClock.bootNow())
    }

    @Test("opened paths are checked against the volumes in any spelling, and only whole components match")
    func volumeOfOpenedPaths() {
        let layout = ContainerFilesystem(volumes: [
            VolumeMount(destination: "/data", source: "/srv/data"),
            VolumeMount(destination: "/var/lib/app", source: "/srv/app"),
        ])
        let onVolume = [
            "/data", "/data/x", "/data/a/b.db", "//data/x", "/tmp/../data/x", "/data/./x", "/var/lib/app/",
            "/var/lib/app/.../y",
        ]
        let elsewhere = [
            "/", "/database", "/data2/x", "/etc/passwd", "/data/../etc/passwd", "data/x", "", "/var/lib",
            "/var/lib/apple",
        ]
        for path in onVolume { #expect(layout.isFromVolume(path), "\(path)") }
        for path in elsewhere { #expect(!layout.isFromVolume(path), "\(path)") }
        // The shortcut for paths already in normal form agrees with normalising them.
        for path in onVolume + elsewhere + ["/a/.", "/a/..", "/a//b", "/a/", "/.hidden", "/a/..b", "/..."] {
            #expect(ContainerFilesystem.isNormalized(path) == (ContainerFilesystem.normalize(path) == path), "\(path)")
        }
        #expect(!ContainerFilesystem().isFromVolume("/data/x"), "no volumes")
    }

    @Test("the resolver marks a container whose init started before the observation start, and only then")
    func resolverMarksEarlierContainers() async throws {
        if let reason = RuncContainer.unavailableReason {
            print("skipping resolverMarksEarlierContainers: \(reason)")
            return
        }
        let container = try await RuncContainer.start(.init(podName: "before-0", containerName: "app"))
        defer { container.stopBlocking() }
        let cgroupID = try #require(container.cgroupID)
        func resolver(observationStart: UInt64) -> ContainerResolver {
            ContainerResolver(configuration: ContainerResolverConfiguration(observationStart: observationStart))
        }
        let later = resolver(observationStart: BootClock.bootNow())
        let found = try #require(later.container(forCgroup: cgroupID, pid: container.initPID))
        #expect(found.podName == "before-0")
        #expect(found.runningAtSensorStart, "the container started before this resolver's observation start")
        let earlier = resolver(observationStart: 0)
        #expect(earlier.container(forCgroup: cgroupID, pid: container.initPID)?.runningAtSensorStart == false)
        await container.stop()
    }

    @Test(.timeLimit(.minutes(3)))
    func liveCaptureMarksContainersFromBeforeAndOpensOnVolumes() async throws {
        guard getuid() == 0 else {
            print("skipping ContainerObservationTests: needs root to load BPF and run runc (uid \(getuid()))")
            return
        }
        if let reason = RuncContainer.unavailableReason {
            print("skipping ContainerObservationTests: \(reason)")
            return
        }
        let volume = try TemporaryDirectory(prefix: "patrol-volume")
        defer { volume.remove() }
        try "on a volume\n".write(toFile: volume.file("note"), atomically: true, encoding: .utf8)
        // Started before the capture exists.
        let before = try await RuncContainer.start(
            .init(
                podName: "early-0", containerName: "app",
                volumes: [RuncContainer.Volume(hostPath: volume.path, containerPath: "/mnt/data")]))
        defer { before.stopBlocking() }

        let resolver = ContainerResolver()
        let capture = try await offPool {
            try LiveCapture(
                configuration: LiveCaptureConfiguration(dedupWindow: .zero), node: "test-node", resolver: resolver)
        }
        let collected = Collected()
        let after = try await RuncContainer.start(.init(podName: "late-0", containerName: "app"))
        defer { after.stopBlocking() }

        func opens(of container: RuncContainer, _ path: String) -> [(ContainerRef, FileOpen)] {
            collected.all.compactMap { event in
                guard let ref = event.container, ref.containerID == container.id, case .open(let open) = event.payload,
                    open.path == path
                else { return nil }
                return (ref, open)
            }
        }
        let runner = Task {
            await capture.run(batchSize: 16) { collected.append($0) }
        }
        defer { runner.cancel() }
        var seen = false
        for _ in 0..<50 {
            _ = try await before.exec(["/bin/busybox", "cat", "/mnt/data/note", "/etc/passwd"])
            _ = try await after.exec(["/bin/busybox", "cat", "/etc/passwd"])
            // Events of a container whose runtime state was not read yet carry only its id; wait for full ones.
            if opens(of: before, "/mnt/data/note").contains(where: { !$0.0.podName.isEmpty }),
                opens(of: before, "/etc/passwd").contains(where: { !$0.0.podName.isEmpty }),
                opens(of: after, "/etc/passwd").contains(where: { !$0.0.podName.isEmpty })
            {
                seen = true
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        runner.cancel()
        try #require(seen, "the opens of both containers never arrived with their pods")

        let onVolume = opens(of: before, "/mnt/data/note").filter { !$0.0.podName.isEmpty }
        let beforeImage = opens(of: before, "/etc/passwd").filter { !$0.0.podName.isEmpty }
        let afterImage = opens(of: after, "/etc/passwd").filter { !$0.0.podName.isEmpty }
        #expect(onVolume.allSatisfy { $0.1.fromVolume }, "an open under the volume mount is marked")
        #expect(beforeImage.allSatisfy { !$0.1.fromVolume }, "an open in the image is not")
        #expect(afterImage.allSatisfy { !$0.1.fromVolume })
        #expect((onVolume + beforeImage).allSatisfy { $0.0.runningAtSensorStart },
            "the container started before the capture is marked")
        #expect(afterImage.allSatisfy { !$0.0.runningAtSensorStart }, "the container started after it is not")
        await before.stop()
        await after.stop()
    }
}
