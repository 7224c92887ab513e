import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A one-line progress display on stderr for `audit -A static`, rewritten in place (carriage return and
/// erase-line). Only made when stderr is a terminal, so logs, pipes and CI output never carry it; at most
/// `maxUpdatesPerSecond` redraws, so a fast run spends no time on the terminal.
final class TerminalProgress: Sendable {
    struct Snapshot: Sendable {
        var documents = 0
        var index = ""
        var alerts: Int64 = 0
    }

    private struct State {
        var documents = 0
        var lastDraw: ContinuousClock.Instant?
        var drawn = false
    }

    private let began = ContinuousClock.now
    private let interval: Duration
    private let state = Mutex(State())
    private let write: @Sendable (String) -> Void

    /// A progress line on `descriptor` (stderr) if it is a terminal, else nil.
    static func onTerminal(descriptor: Int32 = STDERR_FILENO, maxUpdatesPerSecond: Int = 4) -> TerminalProgress? {
        guard isatty(descriptor) == 1 else { return nil }
        return TerminalProgress(maxUpdatesPerSecond: maxUpdatesPerSecond) { text in
            var bytes = Array(text.utf8)[...]
            while !bytes.isEmpty {
                let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
                if written < 0, errno == EINTR { continue }
                if written <= 0 { return }  // a progress line is not worth failing the run for
                bytes = bytes.dropFirst(written)
            }
        }
    }

    init(maxUpdatesPerSecond: Int, write: @escaping @Sendable (String) -> Void) {
        interval = .milliseconds(1000 / max(1, maxUpdatesPerSecond))
        self.write = write
    }

    /// Counts documents read; returns whether a redraw is due (so callers only gather the rest when shown).
    func add(documents: Int) -> Bool {
        let now = ContinuousClock.now
        return state.withLock { state in
            state.documents += documents
            guard let last = state.lastDraw else { return true }
            return now - last >= interval
        }
    }

    /// Redraws the line unless the last redraw is too recent.
    func draw(index: String, alerts: Int64) {
        let now = ContinuousClock.now
        let snapshot = state.withLock { state -> Snapshot? in
            if let last = state.lastDraw, now - last < interval { return nil }
            state.lastDraw = now
            state.drawn = true
            return Snapshot(documents: state.documents, index: index, alerts: alerts)
        }
        guard let snapshot else { return }
        write("\r\u{1B}[K" + Self.line(snapshot, elapsed: now - began))
    }

    /// Clears the line, so the summary that follows starts on a clean one.
    func finish() {
        clear()
    }

    /// Erases the line if it is shown (before a log line is written), and lets the next page redraw it.
    func clear() {
        let drawn = state.withLock { state -> Bool in
            defer {
                state.drawn = false
                state.lastDraw = nil
            }
            return state.drawn
        }
        if drawn { write("\r\u{1B}[K") }
    }

    static func line(_ snapshot: Snapshot, elapsed: Duration) -> String {
        let (seconds, attoseconds) = elapsed.components
        let elapsedSeconds = Double(seconds) + Double(attoseconds) / 1e18
        let rate = elapsedSeconds > 0 ? Double(snapshot.documents) / elapsedSeconds : 0
        var text = "read \(snapshot.documents) documents"
        if !snapshot.index.isEmpty { text += " · \(snapshot.index)" }
        text += " · \(snapshot.alerts) alerts · " + String(format: "%.0f docs/s", rate)
        text += " · " + String(format: "%.0f s", elapsedSeconds)
        return text
    }
}

/// Writes log lines through `inner` after erasing the progress line, so a log line never lands at the end of
/// the progress text on the terminal.
struct ProgressClearingLogHandler: LogHandler {
    var inner: StreamLogHandler
    let progress: TerminalProgress

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        progress.clear()
        inner.log(event: event)
    }
}
