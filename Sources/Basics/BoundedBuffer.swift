import Synchronization

/// A bounded multi-producer, single-consumer hand-off from threads (C callbacks, blocking readers) to
/// async code. When full, `offer` refuses the element and counts it as dropped: nothing is lost silently.
public final class BoundedBuffer<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var head = 0
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
        var dropped: UInt64 = 0
    }
    private let state = Mutex(State())
    public let capacity: Int

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Elements refused because the buffer was full.
    public var droppedCount: UInt64 { state.withLock { $0.dropped } }
    public var count: Int { state.withLock { $0.items.count - $0.head } }

    /// Adds an element; returns false (and counts a drop) when full or finished.
    @discardableResult
    public func offer(_ element: Element) -> Bool {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>?? in
            guard !state.finished, state.items.count - state.head < capacity else {
                state.dropped += 1
                return .none
            }
            state.items.append(element)
            let waiter = state.waiter
            state.waiter = nil
            return .some(waiter)
        }
        guard let waiter else { return false }
        waiter?.resume()
        return true
    }

    /// Moves as many of `elements` as fit (oldest first) into the buffer under one lock, with one wake-up of
    /// the consumer, and removes them from `elements`. Nothing is counted as dropped: a producer that can wait
    /// (a dedicated thread in front of a kernel buffer) keeps the rest and tries again, so the pressure goes
    /// back to where it is cheapest to hold. Returns false once the buffer is finished (nothing was taken).
    public func offer(contentsOf elements: inout [Element]) -> Bool {
        guard !elements.isEmpty else { return true }
        let (accepted, waiter) = state.withLock { state -> (Int, CheckedContinuation<Void, Never>??) in
            guard !state.finished else { return (0, .none) }
            let room = capacity - (state.items.count - state.head)
            let take = min(room, elements.count)
            guard take > 0 else { return (0, .some(nil)) }
            if take == elements.count {
                state.items.append(contentsOf: elements)
            } else {
                state.items.append(contentsOf: elements[0..<take])
            }
            let waiter = state.waiter
            state.waiter = nil
            return (take, .some(waiter))
        }
        guard let waiter else { return false }
        if accepted == elements.count {
            elements.removeAll(keepingCapacity: true)
        } else if accepted > 0 {
            elements.removeFirst(accepted)
        }
        waiter?.resume()
        return true
    }

    /// Counts elements a producer had to give up on (for example when stopping with the buffer full).
    public func countDropped(_ count: Int) {
        guard count > 0 else { return }
        state.withLock { $0.dropped += UInt64(count) }
    }

    /// No more elements will come; the consumer drains what is left and then sees `nil`.
    public func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Takes everything queued (up to `limit`), waiting when empty. Returns nil once finished and drained,
/// or when the waiting task is cancelled.
    public func drain(limit: Int = .max) async -> [Element]? {
        while true {
            let batch = state.withLock { state -> [Element]?? in
                let available = state.items.count - state.head
                if available > 0 {
                    let take = min(available, limit)
                    let slice = Array(state.items[state.head..<(state.head + take)])
                    state.head += take
                    if state.head == state.items.count {
                        state.items.removeAll(keepingCapacity: true)
                        state.head = 0
                    } else if state.head > 4096 && state.head * 2 > state.items.count {
                        state.items.removeFirst(state.head)
                        state.head = 0
                    }
                    return .some(slice)
                }
                return state.finished ? .some(nil) : .none
            }
            if let batch { return batch }
            if Task.isCancelled { return nil }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.items.count - state.head > 0 || state.finished || Task.isCancelled { return true }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume()
            }
        }
    }
}
