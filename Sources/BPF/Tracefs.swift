import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// tracefs, where tracepoints live: tracepoint programs attach through `<tracefs>/events/<category>/<name>/id`.
public enum Tracefs {
    public static let defaultPath = "/sys/kernel/tracing"

    /// Whether tracefs is usable at `path` (its `events` directory exists).
    public static func isMounted(at path: String = defaultPath) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path + "/events", isDirectory: &isDirectory)
            && isDirectory.boolValue
    }

    /// Mounts tracefs at `path` unless it is already there. Returns true when it mounted it.
    /// Needs CAP_SYS_ADMIN.
    @discardableResult
    public static func ensureMounted(at path: String = defaultPath) throws(BPFError) -> Bool {
        if isMounted(at: path) { return false }
        if mount("tracefs", path, "tracefs", 0, nil) != 0 {
            let code = errno
            throw BPFError(
                .tracefs, "cannot mount tracefs at \(path)",
                cause: .cCode(library: "libc", code: code, text: String(cString: strerror(code))))
        }
        return true
    }

    /// Whether the tracepoint `category/name` exists (e.g. `sched/sched_process_exec`).
    public static func hasTracepoint(_ tracepoint: String, tracefs path: String = defaultPath) -> Bool {
        FileManager.default.fileExists(atPath: "\(path)/events/\(tracepoint)/id")
    }
}
