import ArgumentParser
import Foundation
import MalwareScanning

/// Patrol's tree scan (MalwareScanning.TreeScan: a walker thread, a pool of libclamav scanner threads) over one
/// tree with one database: files/s, MB/s, process CPU and peak RSS. `bench/scan/run.sh` runs it next to
/// `clamscan -r` and `clamdscan --multiscan` on the same tree and database.
struct ScanBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan", abstract: "Tree scan throughput with libclamav (files/s, MB/s, CPU, RSS).")

    @Option(help: "The tree to scan.")
    var tree: String

    @Option(help: "ClamAV database directory.")
    var database = "rules/malware"

    @Option(help: "Scanner threads (the pool size).")
    var threads = 2

    @Option(help: "Most files opened per second; 0: unlimited.")
    var filesPerSecond: Double = 0

    @Option(help: "Nice value of the scanner threads (0 for a fair comparison with clamscan).")
    var niceness: Int32 = 0

    @Flag(help: "Scan twice with an incremental cache and report the second (unchanged-tree) scan too.")
    var rescan = false

    mutating func run() async throws {
        let engine = try await ScanEngine.load(databaseDirectory: database)
        let rssAfterLoad = residentKiB()
        let cache = rescan ? ScanCache(databaseFingerprint: ReloadingScanEngine.fingerprint(of: database)) : nil
        let options = TreeScanOptions(
            roots: [tree], mountTable: try MountTable.read(), threads: threads, filesPerSecond: filesPerSecond,
            niceness: niceness, idleIO: false)
        print("scan: \(tree), database \(database) (\(engine.info.signatureCount) signatures), \(threads) threads")
        for pass in rescan ? ["full", "rescan"] : ["full"] {
            let cpuBefore = processCPUSeconds()
            let clock = ContinuousClock.now
            let progress = await TreeScan(id: pass, engine: engine, cache: cache, options: options).run()
            let elapsed = ContinuousClock.now - clock
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let cpu = processCPUSeconds() - cpuBefore
            let megabytes = Double(progress.bytesScanned) / 1e6
            print(
                "scan \(pass): \(progress.filesSeen) files seen, \(progress.filesScanned) scanned, "
                    + "\(progress.filesUnchanged) unchanged, \(progress.filesTooLarge) too large, "
                    + "\(progress.filesFailed) failed, \(progress.findings) found; "
                    + String(format: "%.1f s wall, %.1f CPU-s, %.0f files/s, %.1f MB/s", seconds, cpu,
                        Double(progress.filesScanned) / seconds, megabytes / seconds))
        }
        print("scan: RSS after engine load \(rssAfterLoad / 1024) MiB, peak RSS \(peakResidentKiB() / 1024) MiB")
    }

    private func status(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
    private func residentKiB() -> Int { status("VmRSS") }
    private func peakResidentKiB() -> Int { status("VmHWM") }
}
