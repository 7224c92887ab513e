import EventModel

#if canImport(Glibc)
import Glibc
#endif

/// Remembers each live process's executable, so events other than exec (opens, connects, ...) carry
/// `proc.exe` too: the kernel records only the command name for them.
///
/// Filled from exec events; a pid seen first on another event is looked up once in /proc. Bounded: when
/// full it starts over, which costs only some /proc lookups.
struct ExecutableCache {
    private var paths: [Int32: String] = [:]
    private let capacity: Int
    private let procRoot: String

    init(capacity: Int = 32_768, procRoot: String = "/proc") {
        self.capacity = capacity
        self.procRoot = procRoot
    }

    /// Fills in `event.process.exe` where it is missing and keeps the cache current.
    mutating func annotate(_ event: inout Event) {
        let pid = event.process.pid
        switch event.payload {
        case .exec(let exec):
            remember(pid, exec.path)
            if event.process.exe.isEmpty { event.process.exe = exec.path }
        case .exit:
            if event.process.exe.isEmpty, let known = paths[pid] { event.process.exe = known }
            paths[pid] = nil
        default:
            guard event.process.exe.isEmpty, pid > 0 else { return }
            if let known = paths[pid] {
                event.process.exe = known
            } else if let found = Self.readLink("\(procRoot)/\(pid)/exe") {
                remember(pid, found)
                event.process.exe = found
            }
        }
    }

    private mutating func remember(_ pid: Int32, _ path: String) {
        if paths.count >= capacity { paths.removeAll(keepingCapacity: true) }
        paths[pid] = path
    }

    private static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink(path, &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
