internal import CLibBPF
import Basics
import Foundation
import Logging
import Synchronization

/// Routes libbpf's own output (`libbpf_set_print`) into swift-log, and lets an operation capture
/// the lines libbpf printed while it ran, so errors can carry libbpf's explanation (verifier log,
/// "failed to attach to tracepoint ...").
enum LibBPFLog {
    static let logger = Logger(label: "patrol.bpf.libbpf")

    /// Lines captured for the operation currently running under `capturing`.
    private static let capture = Mutex<[String]?>(nil)
    /// Serialises capturing operations so captured lines belong to one operation. libbpf lines
    /// printed concurrently by unrelated threads may still land in a capture: they are only context.
    private static let captureLock = NSLock()

    private static let installed: Void = {
        _ = libbpf_set_print { level, format, args in
            guard let format, let args else { return 0 }
            var buffer = [CChar](repeating: 0, count: 1024)
            _ = patrol_libbpf_vformat(&buffer, buffer.count, format, args)
            let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                .trimmingCharacters(in: .newlines)
            LibBPFLog.capture.withLock { $0?.append(line) }
            let swiftLevel: Logger.Level
            switch level {
            case LIBBPF_WARN: swiftLevel = .warning
            case LIBBPF_INFO: swiftLevel = .info
            default: swiftLevel = .debug
            }
            LibBPFLog.logger.log(level: swiftLevel, "libbpf", metadata: ["message": "\(line)"])
            return 0
        }
    }()

    /// Installs the print callback once per process.
    static func install() { _ = installed }

    /// Runs `body`, returning its result and the libbpf lines printed meanwhile.
    static func capturing<T>(_ body: () throws(BPFError) -> T) throws(BPFError) -> (T, [String]) {
        install()
        captureLock.lock()
        defer { captureLock.unlock() }
        capture.withLock { $0 = [] }
        let result: Result<T, BPFError>
        do throws(BPFError) { result = .success(try body()) } catch { result = .failure(error) }
        let lines = capture.withLock { lines -> [String] in
            defer { lines = nil }
            return lines ?? []
        }
        return (try result.get(), lines)
    }

    /// libbpf's text for an error code (positive or negative errno, or libbpf's own codes).
    static func errorText(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        if libbpf_strerror(code, &buffer, buffer.count) != 0 {
            return String(cString: strerror(abs(code)))
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func cause(_ code: Int32) -> Cause {
        .cCode(library: "libbpf", code: code, text: errorText(code))
    }
}
