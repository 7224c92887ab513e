internal import CPCRE2
import Basics
import Synchronization

/// Errors from compiling a pattern.
public struct PatternMatchingError: PatrolError {
    public enum Code: String, Sendable {
        /// PCRE2 rejected the regular expression.
        case badRegex = "bad_regex"
        /// The glob could not be translated.
        case badGlob = "bad_glob"
    }
    public let code: Code
    public let message: String
    public let cause: Cause?
    /// PCRE2's own error text (e.g. `missing closing parenthesis`), or the glob problem.
    public let reason: String
    /// The byte offset in the pattern where compilation failed.
    public let offset: Int

    init(_ code: Code, pattern: String, reason: String, offset: Int, cause: Cause? = nil) {
        self.code = code
        self.reason = reason
        self.offset = offset
        self.cause = cause
        self.message = "\(reason) at offset \(offset) in pattern \"\(pattern)\""
    }
}

/// Options for compiling a regular expression.
public struct PatternOptions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Case-insensitive matching.
    public static let caseInsensitive = PatternOptions(rawValue: 1 << 0)
    /// The pattern must match at the start of the subject.
    public static let anchored = PatternOptions(rawValue: 1 << 1)
    /// `.` also matches newlines.
    public static let dotAll = PatternOptions(rawValue: 1 << 2)
    /// `^`/`$` match at line boundaries.
    public static let multiline = PatternOptions(rawValue: 1 << 3)
}

/// Owns the PCRE2 code object; freed once.
private final class CodeBox: @unchecked Sendable {
    // Immutable after init; PCRE2 code objects may be shared between threads for matching.
    let code: OpaquePointer
    init(_ code: OpaquePointer) { self.code = code }
    deinit { pcre2_code_free_8(code) }
}

/// Reusable match-data blocks: a few atomic slots. A match takes a block from a slot (or creates one)
/// and puts it back, so concurrent matches never share scratch memory, the steady state allocates
/// nothing, and the uncontended path is one atomic exchange each way (no lock).
private final class MatchDataPool: Sendable {
    private let slot0 = Atomic<UInt>(0)
    private let slot1 = Atomic<UInt>(0)
    private let slot2 = Atomic<UInt>(0)
    private let slot3 = Atomic<UInt>(0)

    init() {}

    @inline(__always)
    private func withSlot<R>(_ index: Int, _ body: (borrowing Atomic<UInt>) -> R) -> R {
        switch index {
        case 0: return body(slot0)
        case 1: return body(slot1)
        case 2: return body(slot2)
        default: return body(slot3)
        }
    }

    @inline(__always)
    func take() -> OpaquePointer {
        for index in 0..<4 {
            let raw = withSlot(index) { $0.exchange(0, ordering: .acquiring) }
            if raw != 0, let data = OpaquePointer(bitPattern: raw) { return data }
        }
        // One ovector pair is enough: we report match / no match and the overall range.
        guard let data = pcre2_match_data_create_8(1, nil) else { fatalError("pcre2_match_data_create: out of memory") }
        return data
    }

    @inline(__always)
    func give(_ data: OpaquePointer) {
        let raw = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(data)))
        for index in 0..<4 {
            let stored = withSlot(index) {
                $0.compareExchange(expected: 0, desired: raw, ordering: .releasing).exchanged
            }
            if stored { return }
        }
        pcre2_match_data_free_8(data)
    }

    deinit {
        for index in 0..<4 {
            let raw = withSlot(index) { $0.exchange(0, ordering: .acquiring) }
            if raw != 0 { pcre2_match_data_free_8(OpaquePointer(bitPattern: raw)) }
        }
    }
}

/// A PCRE2 regular expression compiled once (JIT where available) and matched from any thread.
public final class CompiledPattern: Sendable, CustomStringConvertible {
    /// The source pattern.
    public let pattern: String
    public let options: PatternOptions
    /// True when PCRE2's JIT compiler accepted the pattern.
    public let isJIT: Bool
    private let box: CodeBox
    private let pool: MatchDataPool

    /// Compiles `pattern`. Throws with PCRE2's message and the failing offset.
    public init(_ pattern: String, options: PatternOptions = []) throws(PatternMatchingError) {
        var flags = UInt32(PCRE2_UTF)
        if options.contains(.caseInsensitive) { flags |= UInt32(PCRE2_CASELESS) }
        if options.contains(.anchored) { flags |= UInt32(PCRE2_ANCHORED) }
        if options.contains(.dotAll) { flags |= UInt32(PCRE2_DOTALL) }
        if options.contains(.multiline) { flags |= UInt32(PCRE2_MULTILINE) }
        var errorCode: Int32 = 0
        var errorOffset: Int = 0
        let bytes = Array(pattern.utf8)
        let code = bytes.withUnsafeBufferPointer { buffer in
            pcre2_compile_8(buffer.baseAddress, buffer.count, flags, &errorCode, &errorOffset, nil)
        }
        guard let code else {
            let text = Self.errorText(errorCode)
            throw PatternMatchingError(
                .badRegex, pattern: pattern, reason: text, offset: errorOffset,
                cause: .cCode(library: "pcre2", code: errorCode, text: text))
        }
        self.pattern = pattern
        self.options = options
        self.box = CodeBox(code)
        self.isJIT = pcre2_jit_compile_8(code, UInt32(PCRE2_JIT_COMPLETE)) == 0
        self.pool = MatchDataPool()
    }

    public var description: String { "/\(pattern)/" }

    /// PCRE2's text for an error code.
    static func errorText(_ code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let length = buffer.withUnsafeMutableBufferPointer { pcre2_get_error_message_8(code, $0.baseAddress, 256) }
        guard length > 0 else { return "pcre2 error \(code)" }
        return String(decoding: buffer[0..<Int(length)], as: UTF8.self)
    }

    /// True when the pattern matches somewhere in `subject` (use `^…$` or `.anchored` to pin it).
    public func matches(_ subject: String) -> Bool {
        if let result = subject.utf8.withContiguousStorageIfAvailable({ firstRange(bytes: $0) != nil }) {
            return result
        }
        return Array(subject.utf8).withUnsafeBufferPointer { firstRange(bytes: $0) != nil }
    }

    /// True when the pattern matches somewhere in `bytes`, which must be valid UTF-8.
    public func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        firstRange(bytes: bytes) != nil
    }

    /// The UTF-8 byte range of the first match in `subject`, or nil.
    public func firstMatch(in subject: String) -> Range<Int>? {
        if let result = subject.utf8.withContiguousStorageIfAvailable({ firstRange(bytes: $0) }) { return result }
        return Array(subject.utf8).withUnsafeBufferPointer { firstRange(bytes: $0) }
    }

    private func firstRange(bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        let data = pool.take()
        defer { pool.give(data) }
        // Swift strings are valid UTF-8, so skip PCRE2's per-match UTF check.
        let empty: UInt8 = 0
        return withUnsafePointer(to: empty) { fallback -> Range<Int>? in
            let base = bytes.baseAddress ?? fallback
            let rc: Int32
            if isJIT {
                rc = pcre2_jit_match_8(box.code, base, bytes.count, 0, UInt32(PCRE2_NO_UTF_CHECK), data, nil)
            } else {
                rc = pcre2_match_8(box.code, base, bytes.count, 0, UInt32(PCRE2_NO_UTF_CHECK), data, nil)
            }
            guard rc >= 0, let ovector = pcre2_get_ovector_pointer_8(data) else { return nil }
            return Int(ovector[0])..<Int(ovector[1])
        }
    }
}
