import Basics
public import EventModel
import Foundation
public import Logging
public import ServiceLifecycle
public import Store
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Counts what an audit source read, for `/metrics` (the collector mirrors them at each scrape).
public final class AuditSourceStatistics: Sendable {
    private let documentCount = Atomic<UInt64>(0)
    private let malformedCount = Atomic<UInt64>(0)

    public init() {}

    /// Audit events read and handed on.
    public var documents: UInt64 { documentCount.load(ordering: .relaxed) }
    /// Lines or items that were not an audit event, skipped.
    public var malformed: UInt64 { malformedCount.load(ordering: .relaxed) }

    func add(documents: Int, malformed: Int) {
        if documents > 0 { documentCount.add(UInt64(documents), ordering: .relaxed) }
        if malformed > 0 { malformedCount.add(UInt64(malformed), ordering: .relaxed) }
    }
}

/// Where a file reader is: the file (device and inode, so a rotated-away file is still recognised), the
/// byte offset just after the last complete line handed on, the number of lines before it (for `file:line`
/// in logs), and a fingerprint of the file's first bytes, which tells a truncated and rewritten file (or a
/// new file that reused the inode) from the one the offset belongs to.
public struct FileCheckpoint: Sendable, Equatable, Codable {
    public var device: UInt64
    public var inode: UInt64
    public var offset: UInt64
    public var line: UInt64
    /// FNV-1a of the first `fingerprintLength` bytes; 0 bytes before anything was read.
    public var fingerprint: UInt64
    public var fingerprintLength: Int

    public init(
        device: UInt64, inode: UInt64, offset: UInt64, line: UInt64, fingerprint: UInt64, fingerprintLength: Int
    ) {
        self.device = device
        self.inode = inode
        self.offset = offset
        self.line = line
        self.fingerprint = fingerprint
        self.fingerprintLength = fingerprintLength
    }
}

/// Tails kube-apiserver's `--audit-log-path`: JSON lines, one `audit.k8s.io/v1` Event per line.
///
/// Rotation is followed both ways it happens:
/// - **rename + create** (kube-apiserver's lumberjack renames `audit.log` to `audit-<timestamp>.log` and
///   creates a new `audit.log`; logrotate's default): the reader keeps the old file open, reads it to its
///   end, and only then switches to the new file at offset 0.
/// - **copytruncate** (logrotate's `copytruncate`): the same file shrinks below the offset, or its first
///   bytes change; the reader starts it again at 0. Lines written between logrotate's copy and its truncate
///   are lost by copytruncate itself; nothing a reader can do about that.
///
/// A line is handed on only once its newline has been written: a partial last line waits. A line that is
/// not an audit event is counted, logged with `file:line`, and skipped. After each batch has been handed on,
/// the checkpoint (device, inode, offset, line, fingerprint) is saved in the store under `file:<path>`. A
/// restart resumes there: in the same file, or, if the file was rotated while the collector was down, in
/// the renamed file (found in the same directory by its inode), which is finished first; then any later
/// rotated files, in the order they were last written, and then the current file. A crash between handing a batch on and saving its checkpoint reads that one batch again (its
/// alerts carry the same ids, so the Elasticsearch sink writes them once).
///
/// The file is polled (every `pollInterval` at its end), which works on every filesystem, including the
/// host paths and overlay mounts a collector pod sees. All file IO runs on a dedicated thread.
public struct FileAuditSource: Service {
    public enum StartPosition: String, Sendable, CaseIterable {
        /// Read the whole file (when the store holds no checkpoint yet).
        case beginning
        /// Only lines written from now on (when the store holds no checkpoint yet).
        case end
    }

    public struct Configuration: Sendable {
        public var path: String
        public var startAt: StartPosition
        /// How often to look for new lines and rotation once the end of the file has been reached.
        public var pollInterval: Duration
        /// Lines per batch handed on (and per checkpoint).
        public var maxBatchLines: Int
        /// A longer line is malformed (it is skipped without being held in memory whole).
        public var maxLineBytes: Int
        public var mapping: AuditMapping

        public init(
            path: String, startAt: StartPosition = .end, pollInterval: Duration = .milliseconds(250),
            maxBatchLines: Int = 1000, maxLineBytes: Int = 16 * 1024 * 1024, mapping: AuditMapping = .raw
        ) {
            self.path = path
            self.startAt = startAt
            self.pollInterval = pollInterval
            self.maxBatchLines = max(1, maxBatchLines)
            self.maxLineBytes = max(1024, maxLineBytes)
            self.mapping = mapping
        }
    }

    public typealias Sink = @Sendable ([AuditRecord]) async throws -> Void

    let store: Store
    let configuration: Configuration
    let logger: Logger
    let sink: Sink
    public let statistics: AuditSourceStatistics

    /// The store key of this source's checkpoint.
    public var checkpointKey: String { "file:\(configuration.path)" }

    public init(
        store: Store, configuration: Configuration, logger: Logger, statistics: AuditSourceStatistics = .init(),
        sink: @escaping Sink
    ) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.statistics = statistics
        self.sink = sink
    }

    public func run() async throws {
        let io = BlockingExecutor(name: "audit-file")
        defer { io.shutdown() }
        do {
            try await cancelWhenGracefulShutdown { try await follow(io) }
        } catch let error as AuditPipelineError where error.code == .cancelled {
            return  // the checkpoint of everything handed on is already saved
        } catch is CancellationError {
            return
        }
    }

    /// The saved checkpoint, if any.
    public func savedCheckpoint() async throws -> FileCheckpoint? {
        guard let text = try await store.auditCheckpoint(checkpointKey) else { return nil }
        return try JSONDecoder().decode(FileCheckpoint.self, from: Data(text.utf8))
    }

    func save(_ checkpoint: FileCheckpoint) async throws {
        let text = String(decoding: try JSONEncoder().encode(checkpoint), as: UTF8.self)
        try await store.setAuditCheckpoint(checkpointKey, to: text, at: WallClock.now())
    }

    func follow(_ io: BlockingExecutor) async throws {
        let path = configuration.path
        var reader: LogFileReader?
        // Where to begin: the checkpoint (possibly in a file rotated away meanwhile), else startAt. startAt
        // applies to the file as it is now; a file that only appears later is read from its start.
        var startAtEnd = configuration.startAt == .end
        if let checkpoint = try await savedCheckpoint() {
            startAtEnd = false
            reader = try await io.run { try LogFileReader.resume(path: path, from: checkpoint) }
            if let reader {
                logger.info(
                    "resuming audit file",
                    metadata: [
                        "file": "\(reader.name)", "offset": "\(reader.checkpoint.offset)",
                        "line": "\(reader.checkpoint.line)",
                    ])
            } else {
                logger.warning(
                    "the checkpointed audit file is gone (rotated and removed?); reading the current file from its start",
                    metadata: ["file": "\(path)", "offset": "\(checkpoint.offset)"])
            }
        }
        var loggedMissing = false
        while true {
            try checkCancelled()
            guard let current = reader else {
                let atEnd = startAtEnd
                startAtEnd = false
                if let opened = try await io.run({ try LogFileReader.open(path: path, atEnd: atEnd) }) {
                    loggedMissing = false
                    try await save(opened.checkpoint)
                    logger.info(
                        "reading audit file", metadata: ["file": "\(path)", "offset": "\(opened.checkpoint.offset)"])
                    reader = opened
                } else {
                    if !loggedMissing {
                        logger.info("audit file does not exist yet; waiting", metadata: ["file": "\(path)"])
                    }
                    loggedMissing = true
                    try await sleep()
                }
                continue
            }
            let limits = (lines: configuration.maxBatchLines, bytes: configuration.maxLineBytes, configuration.mapping)
            let chunk = try await io.run {
                try current.readBatch(maxLines: limits.lines, maxLineBytes: limits.bytes, mapping: limits.2)
            }
            if let checkpoint = chunk.checkpoint {
                for problem in chunk.malformed {
                    logger.warning(
                        "malformed audit line skipped",
                        metadata: ["file": "\(current.name):\(problem.line)", "reason": "\(problem.reason)"])
                }
                if !chunk.records.isEmpty {
                    do { try await sink(chunk.records) } catch {
                        throw AuditPipelineError(.source, "the audit record consumer failed", cause: .error(error))
                    }
                }
                statistics.add(documents: chunk.records.count, malformed: chunk.malformed.count)
                try await save(checkpoint)
                continue
            }
            // At the end of the file: has it been rotated or truncated?
            switch try await io.run({ try current.nextStep(path: path) }) {
            case .wait:
                try await sleep()
            case .readMore:
                continue
            case .restartTruncated:
                logger.info(
                    "audit file truncated (copytruncate); reading it again from the start",
                    metadata: ["file": "\(path)"])
                try await save(current.checkpoint)
            case .switchToNew(let unfinished):
                if unfinished > 0 {
                    statistics.add(documents: 0, malformed: 1)
                    logger.warning(
                        "rotated audit file ended without a newline; its last line is skipped",
                        metadata: ["file": "\(current.name):\(current.checkpoint.line + 1)", "bytes": "\(unfinished)"])
                }
                // Normally the next file is the new one at `path`; after a restart several rotations may lie
                // between the checkpointed file and it, and those are read in turn.
                let next = try await io.run { try LogFileReader.rotatedAfter(current, path: path) }
                logger.info(
                    "audit file rotated; switching to the next file",
                    metadata: ["finished": "\(current.name)", "next": "\(next?.name ?? path)"])
                reader = next
                if let next { try await save(next.checkpoint) }
            }
        }
    }

    func sleep() async throws {
        do { try await Task.sleep(for: configuration.pollInterval) } catch {
            throw AuditPipelineError(.cancelled, "audit file read cancelled")
        }
    }

    func checkCancelled() throws(AuditPipelineError) {
        if Task.isCancelled { throw AuditPipelineError(.cancelled, "audit file read cancelled") }
    }
}

/// One open log file and the reading position in it. Used only from the source's IO thread, one call at a
/// time, so its mutable state needs no lock (hence `@unchecked Sendable`).
final class LogFileReader: @unchecked Sendable {
    /// The path it was opened by (a rotated file keeps the name it was found under).
    let name: String
    private let fd: Int32
    private(set) var checkpoint: FileCheckpoint
    /// Bytes of the line being read that have no newline yet (beyond `checkpoint.offset`).
    private var partial: [UInt8] = []
    /// The partial line grew beyond the line limit: skip to its newline.
    private var discarding = false
    /// Bytes read past `checkpoint.offset` (complete lines not yet handed out are never left over).
    private var readOffset: UInt64

    static let fingerprintBytes = 128

    struct Malformed {
        let line: UInt64
        let reason: String
    }

    struct Batch {
        var records: [AuditRecord] = []
        var malformed: [Malformed] = []
        /// Set when the position moved (lines consumed).
        var checkpoint: FileCheckpoint?
    }

    enum Step {
        case wait
        /// The file was rotated away but grew since the last read: finish it first.
        case readMore
        case restartTruncated
        /// The old file is finished; the count is the bytes of an unfinished last line it ended with.
        case switchToNew(unfinishedLineBytes: Int)
    }

    private init(name: String, fd: Int32, checkpoint: FileCheckpoint) {
        self.name = name
        self.fd = fd
        self.checkpoint = checkpoint
        self.readOffset = checkpoint.offset
    }

    deinit { close(fd) }

    /// (device, inode, size) of an open file or a path.
    static func identity(fd: Int32) -> (UInt64, UInt64, UInt64)? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino), UInt64(info.st_size))
    }

    static func identity(path: String) -> (UInt64, UInt64, UInt64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino), UInt64(info.st_size))
    }

    static func openDescriptor(_ path: String) throws -> Int32? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { return fd }
        if errno == ENOENT { return nil }
        throw AuditPipelineError(
            .source, "cannot open audit file \(path)",
            cause: .cCode(library: "libc", code: errno, text: String(cString: strerror(errno))))
    }

    /// Opens `path` at its start, or at its end (just after its last newline, so a line being written is
    /// read whole); nil when it does not exist.
    static func open(path: String, atEnd: Bool) throws -> LogFileReader? {
        guard let fd = try openDescriptor(path) else { return nil }
        guard let (device, inode, size) = identity(fd: fd) else {
            close(fd)
            throw AuditPipelineError(.source, "cannot stat audit file \(path)")
        }
        let reader = LogFileReader(
            name: path, fd: fd,
            checkpoint: FileCheckpoint(
                device: device, inode: inode, offset: 0, line: 0, fingerprint: 0, fingerprintLength: 0))
        reader.takeFingerprint()
        if atEnd, size > 0 {
            let offset = reader.offsetAfterLastNewline(before: size)
            reader.checkpoint.offset = offset
            reader.readOffset = offset
            // Line numbers in logs then count from here; the lines before it are not read.
        }
        return reader
    }

    /// Reopens the file a checkpoint names: `path` itself when it is still that file, else a rotated sibling
    /// with the same device and inode. Nil when neither exists (then the caller starts `path` at 0).
    static func resume(path: String, from saved: FileCheckpoint) throws -> LogFileReader? {
        if let (device, inode, _) = identity(path: path), device == saved.device, inode == saved.inode,
            let reader = try reopen(path, saved)
        {
            return reader
        }
        let directory = (path as NSString).deletingLastPathComponent
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
        for name in names.sorted() {
            let candidate = directory.isEmpty ? name : "\(directory)/\(name)"
            guard candidate != path, let (device, inode, _) = identity(path: candidate), device == saved.device,
                inode == saved.inode
            else { continue }
            if let reader = try reopen(candidate, saved) { return reader }
        }
        return nil
    }

    /// The file written after `finished` (which has been rotated away): among `path`'s rotated siblings (same
    /// directory, name starting like `path`'s, not compressed), the one last modified soonest after it, opened at
    /// 0. Nil when there is none: then `path` itself is next. Files modified at the very same time as `finished`
    /// are passed over rather than risk reading an older one again (file times are coarse, a few ms).
    static func rotatedAfter(_ finished: LogFileReader, path: String) throws -> LogFileReader? {
        guard let after = modificationTime(fd: finished.fd) else { return nil }
        let directory = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        let stem = (base as NSString).deletingPathExtension
        let compressed = [".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"]
        let current = identity(path: path)
        var best: (name: String, time: timespec)?
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
        for name in names where name != base && name.hasPrefix(stem) && !compressed.contains(where: name.hasSuffix) {
            let candidate = directory.isEmpty ? name : "\(directory)/\(name)"
            var info = stat()
            guard stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            let device = UInt64(info.st_dev)
            let inode = UInt64(info.st_ino)
            if device == finished.checkpoint.device, inode == finished.checkpoint.inode { continue }
            if let current, current.0 == device, current.1 == inode { continue }
            let time = info.st_mtim
            guard later(time, than: after) else { continue }
            if let chosen = best, !later(chosen.time, than: time) { continue }
            best = (candidate, time)
        }
        guard let best else { return nil }
        return try open(path: best.name, atEnd: false)
    }

    private static func modificationTime(fd: Int32) -> timespec? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        return info.st_mtim
    }

    private static func later(_ a: timespec, than b: timespec) -> Bool {
        a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec
    }

    /// Opens `path` at the checkpoint, unless it was truncated or rewritten since (then at 0).
    private static func reopen(_ path: String, _ saved: FileCheckpoint) throws -> LogFileReader? {
        guard let fd = try openDescriptor(path) else { return nil }
        guard let (device, inode, size) = identity(fd: fd), device == saved.device, inode == saved.inode else {
            close(fd)
            return nil
        }
        let reader = LogFileReader(name: path, fd: fd, checkpoint: saved)
        if size < saved.offset || !reader.fingerprintMatches() {
            reader.restart()
        }
        return reader
    }

    /// Starts the same file again from its first byte (after copytruncate).
    private func restart() {
        checkpoint.offset = 0
        checkpoint.line = 0
        readOffset = 0
        partial.removeAll()
        discarding = false
        checkpoint.fingerprint = 0
        checkpoint.fingerprintLength = 0
        takeFingerprint()
    }

    /// Reads up to `count` bytes at `offset`.
    private func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let result = bytes.withUnsafeMutableBytes { buffer in
                pread(fd, buffer.baseAddress! + filled, count - filled, off_t(offset) + off_t(filled))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw AuditPipelineError(
                    .source, "cannot read audit file \(name)",
                    cause: .cCode(library: "libc", code: errno, text: String(cString: strerror(errno))))
            }
            if result == 0 { break }
            filled += result
        }
        bytes.removeSubrange(filled...)
        return bytes
    }

    private static func fnv1a(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// Records (or extends, while the file is still shorter) the fingerprint of the first bytes.
    private func takeFingerprint() {
        guard checkpoint.fingerprintLength < Self.fingerprintBytes,
            let head = try? read(at: 0, count: Self.fingerprintBytes), head.count > checkpoint.fingerprintLength
        else { return }
        checkpoint.fingerprint = Self.fnv1a(head)
        checkpoint.fingerprintLength = head.count
    }

    /// Whether the file still starts with the bytes the checkpoint was taken from.
    private func fingerprintMatches() -> Bool {
        guard checkpoint.fingerprintLength > 0 else { return true }
        guard let head = try? read(at: 0, count: checkpoint.fingerprintLength),
            head.count == checkpoint.fingerprintLength
        else { return false }
        return Self.fnv1a(head) == checkpoint.fingerprint
    }

    private func offsetAfterLastNewline(before size: UInt64) -> UInt64 {
        var end = size
        let block: UInt64 = 64 * 1024
        while end > 0 {
            let start = end > block ? end - block : 0
            guard let bytes = try? read(at: start, count: Int(end - start)) else { return 0 }
            if let index = bytes.lastIndex(of: UInt8(ascii: "\n")) { return start + UInt64(index) + 1 }
            end = start
        }
        return 0
    }

    /// Reads complete lines after the position, up to `maxLines`, and maps each to an audit record.
    /// Returns an empty batch (and no checkpoint) at the end of the file.
    func readBatch(maxLines: Int, maxLineBytes: Int, mapping: AuditMapping) throws -> Batch {
        var batch = Batch()
        var lines = 0
        let chunkSize = 256 * 1024
        while lines < maxLines {
            let bytes = try read(at: readOffset, count: chunkSize)
            if bytes.isEmpty { break }
            readOffset += UInt64(bytes.count)
            var lineStart = 0
            var consumedTo = -1
            for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
                checkpoint.line += 1
                if discarding {
                    discarding = false
                    batch.malformed.append(
                        Malformed(line: checkpoint.line, reason: "line longer than \(maxLineBytes) bytes"))
                } else if partial.isEmpty {
                    handle(bytes[lineStart..<index], line: checkpoint.line, mapping: mapping, into: &batch)
                } else {
                    partial.append(contentsOf: bytes[lineStart..<index])
                    handle(partial[...], line: checkpoint.line, mapping: mapping, into: &batch)
                    partial.removeAll(keepingCapacity: true)
                }
                lineStart = index + 1
                consumedTo = index
                lines += 1
                if lines >= maxLines { break }
            }
            if consumedTo >= 0 {
                // Lines after the one that ended the batch are read again next time: keep the position exact.
                let unread = bytes.count - (consumedTo + 1)
                readOffset -= UInt64(unread)
                checkpoint.offset = readOffset
                if lines >= maxLines { break }
                // Whatever follows the last newline in this chunk is the start of the next line.
                lineStart = consumedTo + 1
                if lineStart < bytes.count {
                    readOffset += UInt64(bytes.count - lineStart)
                    appendPartial(bytes[lineStart...], maxLineBytes: maxLineBytes)
                }
            } else {
                appendPartial(bytes[...], maxLineBytes: maxLineBytes)
            }
        }
        if checkpoint.fingerprintLength < Self.fingerprintBytes { takeFingerprint() }
        if lines > 0 { batch.checkpoint = checkpoint }
        return batch
    }

    private func appendPartial(_ bytes: ArraySlice<UInt8>, maxLineBytes: Int) {
        guard !discarding else { return }
        if partial.count + bytes.count > maxLineBytes {
            partial.removeAll()
            discarding = true
        } else {
            partial.append(contentsOf: bytes)
        }
    }

    private func handle(_ line: ArraySlice<UInt8>, line number: UInt64, mapping: AuditMapping, into batch: inout Batch)
    {
        var line = line
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        // Blank lines are not events and not errors.
        if line.allSatisfy({ $0 == 32 || $0 == 9 }) { return }
        let sourceID = "\(name):\(number)"
        let result: Result<Event, AuditMappingError> = line.withUnsafeBufferPointer { buffer in
            do throws(AuditMappingError) {
                return .success(try mapping.event(fromJSON: buffer, sourceID: sourceID))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let event):
            guard case .audit(let record) = event.payload else {
                batch.malformed.append(Malformed(line: number, reason: "not an audit event"))
                return
            }
            batch.records.append(record)
        case .failure(let error):
            batch.malformed.append(Malformed(line: number, reason: error.message))
        }
    }

    /// At the end of the file: what to do next. Rotation by rename is acted on only when the old file has
    /// nothing left to read (checked after noticing, so lines written just before the rename are not lost).
    func nextStep(path: String) throws -> Step {
        guard let (_, _, size) = Self.identity(fd: fd) else { return .wait }
        if size < readOffset || !fingerprintMatches() {
            restart()
            return .restartTruncated
        }
        guard let (device, inode, _) = Self.identity(path: path) else { return .wait }  // renamed, not yet recreated
        if device == checkpoint.device, inode == checkpoint.inode { return .wait }
        // Another file now has the name. Anything appended to ours since the last read is read first.
        if size > readOffset { return .readMore }
        // A partial last line in a file that has been rotated away will never be finished.
        let unfinished = partial.count + (discarding ? 1 : 0)
        partial.removeAll()
        discarding = false
        return .switchToNew(unfinishedLineBytes: unfinished)
    }
}
