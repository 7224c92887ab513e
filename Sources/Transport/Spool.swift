import Basics
import Foundation

/// Files of one boot's spilled batches: `<dir>/<bootID>-<sequence, 20 digits>.batch`, each holding the
/// batch exactly as it goes on the wire. File I/O runs on a dedicated thread (`BlockingExecutor`).
final class Spool: Sendable {
    let directory: String
    let bootID: String
    private let executor: BlockingExecutor

    init(directory: String, bootID: String) throws(TransportError) {
        self.directory = directory
        self.bootID = bootID
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TransportError(.io, "cannot create spool directory \(directory)", cause: .error(error))
        }
        executor = BlockingExecutor(name: "patrol-spool")
    }

    deinit { executor.shutdown() }

    func path(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return "\(directory)/\(bootID)-\(String(repeating: "0", count: max(0, 20 - digits.count)))\(digits).batch"
    }

    /// Files left by earlier boots, oldest first (modification time, then name), with their sizes.
    func leftovers() -> [(path: String, size: Int)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let files = names.filter { $0.hasSuffix(".batch") && !$0.hasPrefix(bootID + "-") }.map {
            name -> (path: String, size: Int, modified: Double) in
            let path = "\(directory)/\(name)"
            let attributes = (try? FileManager.default.attributesOfItem(atPath: path)) ?? [:]
            let size = (attributes[.size] as? Int) ?? 0
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return (path, size, modified)
        }
        return files.sorted { ($0.modified, $0.path) < ($1.modified, $1.path) }.map { ($0.path, $0.size) }
    }

    func write(_ sequence: UInt64, _ bytes: [UInt8]) async throws(TransportError) {
        let path = path(sequence)
        do {
            try await executor.run {
                let temporary = path + ".tmp"
                try Data(bytes).write(to: URL(fileURLWithPath: temporary))
                if rename(temporary, path) != 0 {
                    throw TransportError(.io, "cannot rename \(temporary) to \(path): errno \(errno)")
                }
            }
        } catch {
            throw TransportError(.io, "cannot write spool file \(path)", cause: .error(error))
        }
    }

    func read(_ sequence: UInt64) async throws(TransportError) -> [UInt8] {
        try await read(path: path(sequence))
    }

    func read(path: String) async throws(TransportError) -> [UInt8] {
        do {
            return try await executor.run { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
        } catch {
            throw TransportError(.io, "cannot read spool file \(path)", cause: .error(error))
        }
    }

    func remove(_ sequence: UInt64) {
        let path = path(sequence)
        executor.submit { unlink(path) }
    }

    func remove(path: String) {
        executor.submit { unlink(path) }
    }
}
