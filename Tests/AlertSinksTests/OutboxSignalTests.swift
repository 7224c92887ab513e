@testable import AlertSinks
import Synchronization
import Testing

/// The signal every sink's delivery loop waits on between looks at the outbox. What a user would notice when
/// it is wrong: an idle collector spinning on the store (waits that return at once after the first timeout),
/// or a sink that sees a new alert only at its next timeout (a notification given to one loop only).
@Suite struct OutboxSignalTests {
    /// Set by the test just before it notifies; a wait that ends before it is set did not end by the notify.
    final class Mark: Sendable {
        private let state = Mutex(false)
        func set() { state.withLock { $0 = true } }
        var isSet: Bool { state.withLock { $0 } }
    }

    @Test func aWaitAfterATimedOutWaitStillWaitsForTheNotification() async {
        let signal = OutboxSignal()
        // Several waits end by their timeout first, as on an idle collector.
        for _ in 0..<3 { await signal.wait(after: signal.generation, timeout: .milliseconds(20)) }

        let mark = Mark()
        let seen = signal.generation
        async let waited: Bool = {
            await signal.wait(after: seen, timeout: .seconds(3600))
            return mark.isSet
        }()
        try? await Task.sleep(for: .milliseconds(200))
        mark.set()
        signal.notify()
        #expect(await waited, "the wait returned before the notification")
    }

    @Test func oneNotificationWakesEveryWaitingLoop() async {
        let signal = OutboxSignal()
        let mark = Mark()
        let seen = signal.generation
        let woken = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    await signal.wait(after: seen, timeout: .seconds(3600))
                    return mark.isSet
                }
            }
            try? await Task.sleep(for: .milliseconds(200))
            mark.set()
            signal.notify()
            // A generous deadline instead of an hour-long hang when a loop is not woken.
            group.addTask {
                try? await Task.sleep(for: .seconds(60))
                return false
            }
            var woken = 0
            for await byNotification in group {
                guard byNotification else { break }
                woken += 1
                if woken == 3 { break }
            }
            group.cancelAll()
            return woken
        }
        #expect(woken == 3)
    }

    @Test func aNotificationBeforeTheWaitIsNotLost() async {
        let signal = OutboxSignal()
        let seen = signal.generation
        // Between the loop's look at the outbox and its wait, an alert is committed.
        signal.notify()
        let mark = Mark()
        let timer = Task {
            try? await Task.sleep(for: .seconds(60))
            mark.set()
        }
        await signal.wait(after: seen, timeout: .seconds(3600))
        #expect(!mark.isSet, "the wait did not return at once for a notification it had not seen")
        timer.cancel()
    }

    @Test func cancellingAWaitEndsIt() async {
        let signal = OutboxSignal()
        let waiter = Task { await signal.wait(after: signal.generation, timeout: .seconds(3600)) }
        try? await Task.sleep(for: .milliseconds(100))
        waiter.cancel()
        await waiter.value
    }
}
