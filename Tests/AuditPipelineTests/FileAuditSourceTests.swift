import AuditPipeline
import Basics
import EventModel
import Foundation
import Logging
import Store
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The file source against real files being appended to and rotated the ways kube-apiserver (lumberjack) and
/// logrotate do it, with a real store holding the checkpoint.
@Suite struct FileAuditSourceTests {
    /// One kube-apiserver audit log line (no newline) whose auditID is `id-<n>`.
    static func line(_ n: Int) -> String {
        """
        {"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-\(n)","stage":"ResponseComplete",\
        "requestURI":"/api/v1/namespaces/default/pods/p\(n)","verb":"get","user":{"username":"alice","groups":["dev"]},\
        "sourceIPs":["10.0.0.7"],"objectRef":{"resource":"pods","namespace":"default","name":"p\(n)","apiVersion":"v1"},\
        "responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2024-03-01T10:00:00.000000Z",\
        "stageTimestamp":"2024-03-01T10:00:00.002000Z"}
        """
    }

    static func lines(_ range: Range<Int>) -> String { range.map { line($0) + "\n" }.joined() }

    /// Appends `text` to `path` (creating it), as a writer that keeps the file open would.
    static func append(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        #expect(write(fd, bytes, bytes.count) == bytes.count)
    }

    /// Everything handed on, in order.
    final class Collected: Sendable {
        let records = Mutex<[AuditRecord]>([])
        var ids: [String] { records.withLock { $0.map { $0.document["auditID"]?.stringValue ?? "?" } } }
        var count: Int { records.withLock { $0.count } }
    }

    /// A source run in the background until `stop()`; each is one "collector process" over the same store.
    final class Running: Sendable {
        let task: Task<Void, any Error>
        let statistics: AuditSourceStatistics

        init(store: Store, path: String, startAt: FileAuditSource.StartPosition, into collected: Collected) {
            let statistics = AuditSourceStatistics()
            self.statistics = statistics
            let source = FileAuditSource(
                store: store,
                configuration: .init(path: path, startAt: startAt, pollInterval: .milliseconds(10), maxBatchLines: 7),
                logger: Logger(label: "test"), statistics: statistics
            ) { records in collected.records.withLock { $0 += records } }
            task = Task { try await source.run() }
        }

        func stop() async throws {
            task.cancel()
            try await task.value
        }
    }

    /// Polls until `condition` holds; the bound only stops a broken test from hanging.
    static func eventually(_ condition: () async -> Bool) async throws {
        for _ in 0..<3000 {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    static func expectExactlyOnce(_ ids: [String], _ range: Range<Int>) {
        #expect(ids.count == range.count, "read \(ids.count) events, expected \(range.count)")
        #expect(Set(ids).count == ids.count, "some events were read twice")
        #expect(Set(ids) == Set(range.map { "id-\($0)" }), "some events were not read")
    }

    @Test func renameAndCreateRotationAcrossARestartReadsEveryEventOnce() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let path = directory.file("audit.log")
        let collected = Collected()
        try Self.append(Self.lines(0..<20), to: path)

        let first = Running(store: store, path: path, startAt: .beginning, into: collected)
        try await Self.eventually { collected.count >= 20 }
        // Lines written just before the rename must still be read from the old file, then the new one.
        try Self.append(Self.lines(20..<25), to: path)
        #expect(rename(path, directory.file("audit-2024-03-01T10-00-00.000.log")) == 0)
        try Self.append(Self.lines(25..<40), to: path)
        try await Self.eventually { collected.count >= 40 }
        try await first.stop()
        Self.expectExactlyOnce(collected.ids, 0..<40)

        // Down for a while: the file grows and is rotated twice, and the new file grows too. (The pauses keep
        // the files' modification times apart, as minutes between real rotations do.)
        try Self.append(Self.lines(40..<50), to: path)
        #expect(rename(path, directory.file("audit-2024-03-01T11-00-00.000.log")) == 0)
        try await Task.sleep(for: .milliseconds(20))
        try Self.append(Self.lines(50..<55), to: path)
        #expect(rename(path, directory.file("audit-2024-03-01T12-00-00.000.log")) == 0)
        try await Task.sleep(for: .milliseconds(20))
        try Self.append(Self.lines(55..<60), to: path)

        let second = Running(store: store, path: path, startAt: .end, into: collected)
        try await Self.eventually { collected.count >= 60 }
        try Self.append(Self.lines(60..<64), to: path)
        try await Self.eventually { collected.count >= 64 }
        try await second.stop()
        await store.close()
        Self.expectExactlyOnce(collected.ids, 0..<64)
        #expect(second.statistics.documents == 24)
        #expect(second.statistics.malformed == 0)
    }

    @Test func copytruncateRotationIsFollowed() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let path = directory.file("audit.log")
        let collected = Collected()
        try Self.append(Self.lines(0..<30), to: path)
        let running = Running(store: store, path: path, startAt: .beginning, into: collected)
        try await Self.eventually { collected.count >= 30 }

        // logrotate copytruncate: copy, then truncate the same inode in place; the writer carries on at 0.
        try FileManager.default.copyItem(atPath: path, toPath: directory.file("audit.log.1"))
        #expect(truncate(path, 0) == 0)
        try Self.append(Self.lines(30..<33), to: path)
        try await Self.eventually { collected.count >= 33 }
        // Truncated and already refilled beyond the old offset before the reader looks: the changed first
        // bytes give it away.
        try await running.stop()
        #expect(truncate(path, 0) == 0)
        try Self.append(Self.lines(33..<70), to: path)
        let again = Running(store: store, path: path, startAt: .beginning, into: collected)
        try await Self.eventually { collected.count >= 70 }
        try await again.stop()
        await store.close()
        Self.expectExactlyOnce(collected.ids, 0..<70)
    }

    @Test func aPartialLastLineWaitsForItsNewline() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let path = directory.file("audit.log")
        let collected = Collected()
        let half = Self.line(1).utf8.count / 2
        let second = Array(Self.line(1).utf8)
        try Self.append(Self.line(0) + "\n" + String(decoding: second[..<half], as: UTF8.self), to: path)
        let running = Running(store: store, path: path, startAt: .beginning, into: collected)
        try await Self.eventually { collected.count >= 1 }
        // Several polls later the half line is still not read, nor counted as malformed.
        try await Task.sleep(for: .milliseconds(200))
        #expect(collected.ids == ["id-0"])
        #expect(running.statistics.malformed == 0)
        // Checkpointed before the half line: a restart now would read it whole.
        try Self.append(String(decoding: second[half...], as: UTF8.self) + "\n", to: path)
        try await Self.eventually { collected.count >= 2 }
        try await running.stop()
        await store.close()
        #expect(collected.ids == ["id-0", "id-1"])
        #expect(running.statistics.malformed == 0)
    }

    @Test func aMalformedLineIsCountedAndSkipped() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let path = directory.file("audit.log")
        let collected = Collected()
        let text =
            Self.line(0) + "\n" + "{\"kind\":\"Event\",\"verb\":\n" + "not json at all\n" + "\n"
            + "{\"kind\":\"Event\",\"verb\":7,\"requestURI\":\"/api\"}\n" + Self.line(1) + "\n"
        try Self.append(text, to: path)
        let running = Running(store: store, path: path, startAt: .beginning, into: collected)
        try await Self.eventually { collected.count >= 2 && running.statistics.malformed >= 3 }
        try await running.stop()
        await store.close()
        #expect(collected.ids == ["id-0", "id-1"])
        #expect(running.statistics.malformed == 3)
        #expect(running.statistics.documents == 2)
        // The record says where it came from, for alerts and logs.
        #expect(collected.records.withLock { $0.last?.sourceID } == "\(path):6")
    }

    @Test func startAtEndSkipsWhatIsAlreadyThere() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let path = directory.file("audit.log")
        let collected = Collected()
        try Self.append(Self.lines(0..<10), to: path)
        let running = Running(store: store, path: path, startAt: .end, into: collected)
        // Its first checkpoint marks the position it starts from.
        let source = FileAuditSource(store: store, configuration: .init(path: path), logger: Logger(label: "test")) {
            _ in
        }
        try await Self.eventually { (try? await source.savedCheckpoint()) != nil }
        try Self.append(Self.lines(10..<15), to: path)
        try await Self.eventually { collected.count >= 5 }
        try await running.stop()
        await store.close()
        Self.expectExactlyOnce(collected.ids, 10..<15)
    }
}
