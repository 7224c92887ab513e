import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking work (C calls such as `nng_recv`, `curl_easy_perform`, SQLite, `cl_scanfile`) on
/// dedicated OS threads, so the cooperative thread pool never blocks.
///
/// Work is queued FIFO and served by `threadCount` threads created at init. `run` suspends the caller
/// until the work finishes on one of them.
public final class BlockingExecutor: @unchecked Sendable {
    // `condition` guards `queue` and `shuttingDown`; that is why this class is @unchecked Sendable.
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var shuttingDown = false

    /// `niceness` above 0 lowers the CPU priority of these threads only (Linux applies `setpriority` per thread),
    /// for background work that must not take a core from the rest of the process, such as the store's checkpoints.
    public init(name: String, threadCount: Int = 1, niceness: Int32 = 0) {
        precondition(threadCount > 0, "a BlockingExecutor needs at least one thread")
        for index in 0..<threadCount {
            let threadName = "\(name)-\(index)"
            let thread = Thread { [self] in
                Self.nameOSThread(threadName)
                if niceness != 0 { Self.setOSThreadNiceness(niceness) }
                self.serve()
            }
            thread.name = threadName
            thread.start()
        }
    }

    /// Stops the threads once the queued work is done. Work submitted afterwards runs inline.
    public func shutdown() {
        condition.lock()
        shuttingDown = true
        condition.broadcast()
        condition.unlock()
    }

    /// Runs `work` on one of the executor's threads and returns its result.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            submit { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Queues `work` without waiting for it.
    public func submit(_ work: @escaping @Sendable () -> Void) {
        condition.lock()
        if shuttingDown {
            condition.unlock()
            work()
            return
        }
        queue.append(work)
        condition.signal()
        condition.unlock()
    }

    /// Foundation's `Thread.name` does not reach the OS thread on Linux: this sets the kernel's name of the
    /// calling thread (15 bytes at most), so `top -H`, `perf` and per-thread CPU clocks looked up by name see it.
    /// (`pthread_setname_np` is not exported to Swift here, and `prctl` is variadic.)
    private static func nameOSThread(_ name: String) {
        #if os(Linux)
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        guard fd >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        #endif
    }

    /// Sets the calling thread's nice value. Best effort: lowering priority needs no privilege, and a failure
    /// only leaves the thread at the process's priority.
    private static func setOSThreadNiceness(_ niceness: Int32) {
        #if os(Linux)
        // The kernel thread id without C glue (glibc declares `gettid` only with _GNU_SOURCE): /proc/thread-self
        // links to "PID/task/TID".
        var buffer = [CChar](repeating: 0, count: 64)
        let count = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard count > 0 else { return }
        let link = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let last = link.split(separator: "/").last, let tid = id_t(last) else { return }
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), tid, niceness)
        #endif
    }

    private func serve() {
        while true {
            condition.lock()
            while head == queue.count && !shuttingDown { condition.wait() }
            if head == queue.count {
                condition.unlock()
                return
            }
            let work = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            work()
        }
    }
}
