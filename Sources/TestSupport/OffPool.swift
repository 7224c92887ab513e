import Basics

/// Runs blocking test set-up (child processes, `waitUntilExit`, sleeps) on dedicated threads.
///
/// swift-testing runs tests in parallel on the cooperative pool, which has one thread per core; a test that
/// blocks one of them starves every other test's async work (RPC handlers, timers) on a 2-core machine.
public func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await TestThreads.executor.run(work)
}

enum TestThreads {
    static let executor = BlockingExecutor(name: "test-blocking", threadCount: 4)
}
