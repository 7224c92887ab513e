import Synchronization

/// Lets through at most `limit` log lines per `interval` for one noisy condition (garbage from a peer,
/// a failing sink) and counts the rest, so an attacker cannot flood the logs and nothing goes unreported:
/// the next line that passes carries how many were suppressed.
public final class LogThrottle: Sendable {
    private struct Window {
        var start: ContinuousClock.Instant
        var passed = 0
        var suppressed = 0
    }
    private let window: Mutex<Window>
    private let limit: Int
    private let interval: Duration

    public init(limit: Int = 10, per interval: Duration = .seconds(10)) {
        self.limit = limit
        self.interval = interval
        window = Mutex(Window(start: .now))
    }

    /// Returns nil when this line should be suppressed; otherwise how many were suppressed before it.
    public func admit() -> Int? {
        window.withLock { window in
            let now = ContinuousClock.now
            if now - window.start >= interval {
                window.start = now
                window.passed = 0
            }
            guard window.passed < limit else {
                window.suppressed += 1
                return nil
            }
            window.passed += 1
            defer { window.suppressed = 0 }
            return window.suppressed
        }
    }
}
