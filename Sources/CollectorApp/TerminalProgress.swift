import Foundation
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
        let drawn = state.withLock { $0.drawn }
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
