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
