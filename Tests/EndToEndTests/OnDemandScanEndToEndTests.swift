import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 7 acceptance 2 with the real binaries: `patrolctl scans start` (run as a process) asks the real
/// `patrol-collector` for a scan on a node; the real `patrol-sensor` of that node gets it with its next reply, and
/// `patrolctl scans get` shows the progress, then the final result with the EICAR finding. No root needed: the
/// scan is of a host directory and the sensor runs without BPF capture.
@Suite(.serialized) struct OnDemandScanEndToEndTests {
    static let eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS" + "-TEST-FILE!$H+H*"

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the built `patrolctl` without blocking a cooperative thread while it waits.
    static func patrolctl(_ arguments: [String], admin: String, scratch: TemporaryDirectory) async throws -> Run {
        let tag = UUID().uuidString.prefix(8)
        let (out, err) = (scratch.file("ctl-\(tag).out"), scratch.file("ctl-\(tag).err"))
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: PatrolProcess.binaryDirectory + "/patrolctl")
        process.arguments = arguments + ["--collector", admin]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        return Run(
            status: process.terminationStatus, stdout: try String(contentsOfFile: out, encoding: .utf8),
            stderr: try String(contentsOfFile: err, encoding: .utf8))
    }

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    @Test(.timeLimit(.minutes(4))) func patrolctlStartsAScanAndFollowsItsProgressToTheFinding() async throws {
        let harness = try Harness("on-demand-scan")
        defer { harness.directory.remove() }
        let admin = "ipc://\(harness.directory.path)/admin/admin.sock"
        let config = harness.directory.file("collector.yaml")
        try """
        listen: \(harness.address)
        store: \(harness.storePath)
        rules: [\(Harness.repositoryPath("rules"))]
        admin: {listen: "\(admin)"}
        sinks: {stdout: false}
        """.write(toFile: config, atomically: true, encoding: .utf8)

        // The tree: clean files and one EICAR file, written at run time (the repository holds no EICAR file).
        let tree = try TemporaryDirectory(prefix: "patrol-e2e-scan-tree")
        defer { tree.remove() }
        let cleanFiles = 80
        for index in 0..<cleanFiles {
            try "plain text file \(index)\n".write(
                toFile: tree.file("clean-\(index).txt"), atomically: true, encoding: .utf8)
        }
        let eicarPath = tree.file("eicar.com")
        try Self.eicar.write(toFile: eicarPath, atomically: true, encoding: .utf8)
        let eicarSHA256 = try MalwareScanEndToEndTests.sha256(eicarPath)

        let collector = try PatrolProcess(
            "patrol-collector", ["--config", config], logDirectory: harness.directory.path)
        defer { collector.signal(SIGKILL) }
        // 20 files a second: the scan takes seconds, long enough for the 1 s statuses to show it running.
        let sensor = try PatrolProcess(
            "patrol-sensor",
            [
                "--collector", harness.address, "--sensor-id", "scan-sensor", "--node", "scan-node", "--no-capture",
                "--scan-database", Harness.repositoryPath("rules/malware"), "--scan-files-per-second", "20",
                "--status-interval", "1",
            ],
            logDirectory: harness.directory.path, name: "scan-sensor")
        defer { sensor.signal(SIGKILL) }
        func logs() -> String {
            "collector:\n\(collector.standardError.suffix(3000))\nsensor:\n\(sensor.standardError.suffix(3000))"
        }

        // The sensor's status (with its healthy scanner) has reached the collector.
        var sensorDocument = ""
        let reported = await PatrolProcess.eventually(timeout: .seconds(90)) {
            let run = try? await Self.patrolctl(
                ["sensors", "get", "scan-sensor"], admin: admin, scratch: harness.directory)
            sensorDocument = run?.stdout ?? ""
            return run?.status == 0 && sensorDocument.contains("scanner: healthy")
        }
        #expect(reported, "sensors get: \(sensorDocument)\n\(logs())")

        // A node no sensor runs on: NOT_FOUND, exit 1, and the reason on stderr.
        let unknown = try await Self.patrolctl(
            ["scans", "start", "--node", "no-such-node", "--path", tree.path], admin: admin, scratch: harness.directory)
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no sensor on node 'no-such-node'"), "\(unknown.stderr)")
        #expect(unknown.stdout.isEmpty)

        let start = try await Self.patrolctl(
            ["scans", "start", "--node", "scan-node", "--path", tree.path], admin: admin, scratch: harness.directory)
        #expect(start.status == 0, "\(start.stderr)")
        let scanID = start.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(scanID.hasPrefix("scan-"))

        var sawProgress = false
        var final: [String: Any] = [:]
        let finished = await PatrolProcess.eventually(timeout: .seconds(120)) {
            guard
                let run = try? await Self.patrolctl(
                    ["scans", "get", scanID, "-o", "json"], admin: admin, scratch: harness.directory), run.status == 0
            else { return false }
            let document = Self.json(run.stdout)
            let progress = document["progress"] as? [String: Any] ?? [:]
            if document["state"] as? String == "running", (progress["filesSeen"] as? Int ?? 0) > 0,
                (progress["filesScanned"] as? Int ?? 0) < cleanFiles + 1
            {
                sawProgress = true
            }
            final = document
            return document["state"] as? String == "finished"
        }
        #expect(finished, "last scans get: \(final)\n\(logs())")
        #expect(sawProgress, "no scans get showed the scan running part way")
        #expect(final["node"] as? String == "scan-node")
        #expect(final["sensor"] as? String == "scan-sensor")
        let progress = final["progress"] as? [String: Any] ?? [:]
        #expect(progress["filesSeen"] as? Int == cleanFiles + 1)
        #expect(progress["filesScanned"] as? Int == cleanFiles + 1)
        #expect(final["findingsCount"] as? Int == 1)
        let findings = final["findings"] as? [[String: Any]] ?? []
        #expect(findings.count == 1)
        #expect(findings.first?["path"] as? String == eicarPath)
        #expect(findings.first?["sha256"] as? String == eicarSHA256)
        #expect((findings.first?["signature"] as? String ?? "").contains("EICAR"))
        #expect(findings.first?["partOfImage"] as? Bool == false)

        let list = try await Self.patrolctl(["scans", "list", "-o", "json"], admin: admin, scratch: harness.directory)
        let rows = (try? JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: String]]) ?? []
        #expect(rows.contains { $0["id"] == scanID && $0["state"] == "finished" && $0["findings"] == "1" }, "\(list)")

        // Again with --wait: the clean files are unchanged since the last scan and not read again; the EICAR file,
        // never cached, is found again, so the command ends with status 1 and the result on stdout.
        let again = try await Self.patrolctl(
            ["scans", "start", "--node", "scan-node", "--path", tree.path, "--wait", "-o", "json"], admin: admin,
            scratch: harness.directory)
        #expect(again.status == 1, "\(again.stderr)")
        #expect(again.stderr.contains("found 1 infected file"), "\(again.stderr)")
        let second = Self.json(again.stdout)
        #expect(second["state"] as? String == "finished", "\(again.stdout)")
        let secondProgress = second["progress"] as? [String: Any] ?? [:]
        #expect(secondProgress["filesUnchanged"] as? Int == cleanFiles)
        #expect(secondProgress["filesScanned"] as? Int == 1)
        #expect((second["findings"] as? [[String: Any]])?.first?["path"] as? String == eicarPath)

        // A sensor whose database does not load: `sensors get` names the reason, and a scan on its node is refused
        // with it instead of being queued for a scanner that cannot run.
        let database = harness.directory.file("broken-db")
        try FileManager.default.createDirectory(atPath: database, withIntermediateDirectories: true)
        try "not a signature\n\u{1}garbage:::\n".write(
            toFile: database + "/broken.ndb", atomically: true, encoding: .utf8)
        let broken = try PatrolProcess(
            "patrol-sensor",
            [
                "--collector", harness.address, "--sensor-id", "broken-sensor", "--node", "broken-node",
                "--no-capture", "--scan-database", database, "--status-interval", "1",
            ],
            logDirectory: harness.directory.path, name: "broken-sensor")
        defer { broken.signal(SIGKILL) }
        var brokenDocument: [String: Any] = [:]
        let unhealthy = await PatrolProcess.eventually(timeout: .seconds(90)) {
            let run = try? await Self.patrolctl(
                ["sensors", "get", "broken-sensor", "-o", "json"], admin: admin, scratch: harness.directory)
            brokenDocument = Self.json(run?.stdout ?? "")
            return (brokenDocument["scanner"] as? String ?? "").hasPrefix("unhealthy: ")
        }
        #expect(unhealthy, "sensors get -o json: \(brokenDocument)\n\(broken.standardError.suffix(2000))")
        let reason = String((brokenDocument["scanner"] as? String ?? "").dropFirst("unhealthy: ".count))
        #expect(!reason.isEmpty)
        let refused = try await Self.patrolctl(
            ["scans", "start", "--node", "broken-node", "--path", tree.path], admin: admin, scratch: harness.directory)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("is unhealthy: \(reason)"), "\(refused.stderr)")

        broken.signal(SIGTERM)
        sensor.signal(SIGTERM)
        #expect(await sensor.waitForExit(timeout: .seconds(60)) == 0)
        _ = await broken.waitForExit(timeout: .seconds(60))
        collector.signal(SIGTERM)
        _ = await collector.waitForExit(timeout: .seconds(60))
    }

    /// `scans start --container ID` (root: runc and an overlay root): the EICAR file a container wrote is found
    /// through the container's root, attributed to the container (pod, namespace, name), not part of the image.
    @Test(.timeLimit(.minutes(4))) func aContainerScanFindsWhatTheContainerWrote() async throws {
        if getuid() != 0 {
            print("skipping OnDemandScanEndToEndTests (container): needs root to run runc (uid \(getuid()))")
            return
        }
        if let reason = RuncContainer.unavailableReason {
            print("skipping OnDemandScanEndToEndTests (container): \(reason)")
            return
        }
        let harness = try Harness("on-demand-container-scan")
        defer { harness.directory.remove() }
        let admin = "ipc://\(harness.directory.path)/admin/admin.sock"
        let config = harness.directory.file("collector.yaml")
        try """
        listen: \(harness.address)
        store: \(harness.storePath)
        rules: [\(Harness.repositoryPath("rules"))]
        admin: {listen: "\(admin)"}
        sinks: {stdout: false}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let collector = try PatrolProcess(
            "patrol-collector", ["--config", config], logDirectory: harness.directory.path)
        defer { collector.signal(SIGKILL) }
        let options = RuncContainer.Options(
            podName: "scan-demand-41c2", namespace: "shop", containerName: "web", overlay: true)
        try await RuncContainer.with(options) { container in
            let write = try await container.exec(
                ["/bin/sh", "-c", "printf '%s' \"$1\" > /tmp/eicar.com", "sh", Self.eicar])
            #expect(write.status == 0, "writing the EICAR file failed: \(write.standardError)")
            let sensor = try PatrolProcess(
                "patrol-sensor",
                [
                    "--collector", harness.address, "--sensor-id", "ctr-sensor", "--node", "ctr-node", "--no-capture",
                    "--scan-database", Harness.repositoryPath("rules/malware"), "--status-interval", "1",
                ],
                logDirectory: harness.directory.path, name: "ctr-sensor")
            defer { sensor.signal(SIGKILL) }
            let reported = await PatrolProcess.eventually(timeout: .seconds(90)) {
                let run = try? await Self.patrolctl(
                    ["sensors", "get", "ctr-sensor"], admin: admin, scratch: harness.directory)
                return run?.stdout.contains("scanner: healthy") == true
            }
            #expect(reported, "sensor log: \(sensor.standardError.suffix(2000))")
            let run = try await Self.patrolctl(
                ["scans", "start", "--node", "ctr-node", "--container", container.id, "--path", "/tmp", "--wait",
                 "-o", "json"],
                admin: admin, scratch: harness.directory)
            #expect(run.status == 1, "\(run.stderr)\nsensor log: \(sensor.standardError.suffix(2000))")
            let result = Self.json(run.stdout)
            #expect(result["state"] as? String == "finished", "\(run.stdout)")
            #expect(result["containerID"] as? String == container.id)
            let finding = (result["findings"] as? [[String: Any]])?.first ?? [:]
            #expect(finding["path"] as? String == container.rootfs + "/tmp/eicar.com", "\(run.stdout)")
            #expect(finding["partOfImage"] as? Bool == false)
            let owner = finding["container"] as? [String: Any] ?? [:]
            #expect(owner["id"] as? String == container.id)
            #expect(owner["pod"] as? String == "scan-demand-41c2")
            #expect(owner["namespace"] as? String == "shop")
            #expect(owner["name"] as? String == "web")
            sensor.signal(SIGTERM)
            _ = await sensor.waitForExit(timeout: .seconds(60))
        }
        collector.signal(SIGTERM)
        _ = await collector.waitForExit(timeout: .seconds(60))
    }
}
