import EventModel
import KernelEvents

/// Folds identical events at the edge: the first of a kind is emitted at once (no added latency); identical
/// ones inside `window` are only counted, and when the window closes one event carries that count.
///
/// "Identical" means same cgroup, same process fields and same payload; only the time differs. Syscall
/// sets are already aggregated and pass straight through. A value type driven by explicit clock readings,
/// so it is tested without sleeping.
struct EdgeDeduplicator {
    struct Key: Hashable {
        var cgroupID: UInt64
        var process: ProcessInfo
        var payload: Payload
    }

    struct Entry {
        var latest: KernelRecord
        var repeats: UInt32
        let closesAt: UInt64
    }

    /// The window in nanoseconds; 0 disables folding.
    let window: UInt64
    /// Bound on tracked keys; when reached, every open window is closed early.
    let capacity: Int
    private(set) var entries: [Key: Entry] = [:]
    /// Events folded into another so far (each is still counted in the emitted event's `count`).
    private(set) var folded: UInt64 = 0

    init(window: Duration, capacity: Int = 65_536) {
        let (seconds, attoseconds) = window.components
        self.window = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        self.capacity = capacity
    }

    /// Takes one record; returns it when it must be emitted now, nil when it was folded.
    mutating func offer(_ record: KernelRecord, now: UInt64) -> KernelRecord? {
        if window == 0 { return record }
        if case .syscalls = record.event.payload { return record }
        let key = Key(cgroupID: record.cgroupID, process: record.event.process, payload: record.event.payload)
        if var entry = entries[key], now < entry.closesAt {
            entry.repeats &+= record.event.count
            entry.latest = record
            entries[key] = entry
            folded &+= 1
            return nil
        }
        entries[key] = Entry(latest: record, repeats: 0, closesAt: now &+ window)
        return record
    }

    /// Closes the windows that ended by `now` (all of them when `all`), returning one event per window
    /// that folded repeats, with `count` = the repeats and the time of the last one.
    mutating func expire(now: UInt64, all: Bool = false) -> [KernelRecord] {
        guard !entries.isEmpty else { return [] }
        let closeAll = all || entries.count >= capacity
        var out: [KernelRecord] = []
        for (key, entry) in entries where closeAll || entry.closesAt <= now {
            entries[key] = nil
            if entry.repeats > 0 {
                var record = entry.latest
                record.event.count = entry.repeats
                out.append(record)
            }
        }
        return out
    }
}
