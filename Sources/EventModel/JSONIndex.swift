/// A JSON document kept as its UTF-8 bytes plus a flat array of tokens (one per value and member name), so a
/// reader can resolve a few paths without building the whole `JSONValue` tree.
///
/// Why: the audit path reads a dozen fields of each document and forwards the rest untouched; building the
/// dictionaries of every document (hashing every key, allocating every string) was most of its cost.
/// Parsing validates the whole text with `JSONText`'s grammar and errors (same reasons, same offsets), so a
/// document that parses here is one `JSONText.parse` accepts, and `materialize()` gives the same value.
///
/// Strings are decoded only when read; invalid UTF-8 inside a string is repaired (U+FFFD) as `JSONText` does.
public struct JSONIndex: Sendable {
    public enum Kind: UInt8, Sendable {
        case null, `false`, `true`, number, string, array, object
    }

    /// One value or member name. Children follow their container directly (an object's as name, value,
    /// name, value, ...); `next` is the token after the whole subtree, so siblings are one hop apart.
    struct Token: Sendable {
        var kind: Kind
        /// A string that holds escapes: decode it instead of taking the bytes as they are.
        var escaped: Bool
        /// Byte range of the content: a string without its quotes, a number's text, a container's brackets.
        var start: UInt32
        var end: UInt32
        /// Index of the first token after this value's subtree.
        var next: UInt32
    }

    /// Where the bytes live: a document read as a `String` (a log line) keeps that string instead of a copy of its
    /// bytes (copying every line into an array was a malloc and a memmove per event on the audit path).
    enum Storage: Sendable {
        case array([UInt8])
        /// Native and contiguous (made so at init), so its UTF-8 can be read in place.
        case text(String)
    }

    let storage: Storage
    let tokens: [Token]

    /// The document's UTF-8 bytes (a copy when it was read from a `String`).
    public var bytes: [UInt8] {
        switch storage {
        case .array(let bytes): return bytes
        case .text(let text): return Array(text.utf8)
        }
    }

    /// The document's bytes, in place.
    @inline(__always)
    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        switch storage {
        case .array(let bytes): return bytes.withUnsafeBufferPointer(body)
        case .text(let text):
            if let result = text.utf8.withContiguousStorageIfAvailable(body) { return result }
            return Array(text.utf8).withUnsafeBufferPointer(body)  // not reached: the text was made contiguous
        }
    }

    /// The root value's token.
    public static let root = 0

    public init(_ text: String) throws(JSONText.ParseError) {
        var text = text
        text.makeContiguousUTF8()
        let tokens = text.withUTF8 { Self.scan($0) }
        self.storage = .text(text)
        self.tokens = try tokens.get()
    }

    public init(bytes: [UInt8]) throws(JSONText.ParseError) {
        let tokens = bytes.withUnsafeBufferPointer { Self.scan($0) }
        self.storage = .array(bytes)
        self.tokens = try tokens.get()
    }

    private static func scan(_ buffer: UnsafeBufferPointer<UInt8>) -> Result<[Token], JSONText.ParseError> {
        // Documents above 4 GiB cannot be indexed with 32-bit offsets; nothing the pipeline reads is near that.
        guard buffer.count < Int(UInt32.max) else {
            return .failure(JSONText.ParseError(offset: 0, reason: "document larger than 4 GiB"))
        }
        var scanner = Scanner(bytes: buffer)
        do throws(JSONText.ParseError) {
            scanner.skipSpace()
            try scanner.value(depth: 0)
            scanner.skipSpace()
            if scanner.position != buffer.count { throw scanner.fail("trailing characters after the document") }
            return .success(scanner.tokens)
        } catch {
            return .failure(error)
        }
    }

    // MARK: Reading

    public func kind(_ token: Int) -> Kind { tokens[token].kind }

    /// The value of member `key` of the object at `token` (the last one when a name repeats, as the tree keeps
    /// it), or nil when `token` is not an object or has no such member.
    public func member(_ token: Int, _ key: String) -> Int? {
        var key = key
        return key.withUTF8 { member(token, key: $0) }
    }

    func member(_ token: Int, key: UnsafeBufferPointer<UInt8>) -> Int? {
        let container = tokens[token]
        guard container.kind == .object else { return nil }
        var found: Int?
        var child = token + 1
        let end = Int(container.next)
        withBytes { bytes in
            while child < end {
                let name = tokens[child]
                let value = child + 1
                if name.escaped {
                    if string(child) == String(decoding: key, as: UTF8.self) { found = value }
                } else if Int(name.end - name.start) == key.count,
                    sameBytes(bytes.baseAddress! + Int(name.start), key.baseAddress, key.count)
                {
                    found = value
                }
                child = Int(tokens[value].next)
            }
        }
        return found
    }

    /// Calls `body` with (name token, value token) for every member of the object at `token`, in document order,
    /// without building an array of them.
    func forEachMember(_ token: Int, _ body: (_ name: Int, _ value: Int) -> Void) {
        guard tokens[token].kind == .object else { return }
        var child = token + 1
        let end = Int(tokens[token].next)
        while child < end {
            body(child, child + 1)
            child = Int(tokens[child + 1].next)
        }
    }

    /// Calls `body` with the bytes of a string token that holds no escapes (its text as it is); nil for other
    /// tokens, which need `string(_:)`.
    func withPlainString<R>(_ token: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        let item = tokens[token]
        guard item.kind == .string, !item.escaped else { return nil }
        return withBytes { body(UnsafeBufferPointer(rebasing: $0[Int(item.start)..<Int(item.end)])) }
    }

    /// Every member of the object at `token` as (name token, value token), in document order.
    public func members(_ token: Int) -> [(name: Int, value: Int)] {
        guard tokens[token].kind == .object else { return [] }
        var result: [(name: Int, value: Int)] = []
        var child = token + 1
        while child < Int(tokens[token].next) {
            result.append((child, child + 1))
            child = Int(tokens[child + 1].next)
        }
        return result
    }

    /// The element tokens of the array at `token`.
    public func elements(_ token: Int) -> [Int] {
        guard tokens[token].kind == .array else { return [] }
        var result: [Int] = []
        var child = token + 1
        while child < Int(tokens[token].next) {
            result.append(child)
            child = Int(tokens[child].next)
        }
        return result
    }

    /// Element `position` of the array at `token`.
    public func element(_ token: Int, _ position: Int) -> Int? {
        guard tokens[token].kind == .array, position >= 0 else { return nil }
        var child = token + 1
        var remaining = position
        while child < Int(tokens[token].next) {
            if remaining == 0 { return child }
            remaining -= 1
            child = Int(tokens[child].next)
        }
        return nil
    }

    /// The text of a string token (or a member name), decoded; nil for other kinds.
    public func string(_ token: Int) -> String? {
        let item = tokens[token]
        guard item.kind == .string else { return nil }
        return withBytes { bytes in
            if !item.escaped {
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[Int(item.start)..<Int(item.end)]), as: UTF8.self)
            }
            // The scanner checked every escape, so decoding with the tree parser cannot fail.
            let quoted = UnsafeBufferPointer(rebasing: bytes[Int(item.start) - 1...Int(item.end)])
            return (try? JSONText.parse(quoted))?.stringValue
        }
    }

    /// True when the string token's decoded text equals `text` (bytes compared, no allocation when unescaped).
    public func stringEquals(_ token: Int, _ text: String) -> Bool {
        let item = tokens[token]
        guard item.kind == .string else { return false }
        if item.escaped { return string(token) == text }
        var text = text
        return text.withUTF8 { wanted in
            guard wanted.count == Int(item.end - item.start) else { return false }
            return withBytes { sameBytes($0.baseAddress! + Int(item.start), wanted.baseAddress, wanted.count) }
        }
    }

    public func number(_ token: Int) -> Double? {
        let item = tokens[token]
        guard item.kind == .number else { return nil }
        return withBytes { bytes in
            Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[Int(item.start)..<Int(item.end)]), as: UTF8.self))
        }
    }

    /// The number token's value when it is a plain integer of at most 15 digits (`-?[0-9]+`, what JSON allows):
    /// exactly what converting it through `Double` gives, read straight from the digits; nil for anything else.
    func smallInteger(_ token: Int) -> Int64? {
        let item = tokens[token]
        guard item.kind == .number else { return nil }
        return withBytes { bytes -> Int64? in
            var index = Int(item.start)
            let end = Int(item.end)
            let negative = index < end && bytes[index] == UInt8(ascii: "-")
            if negative { index += 1 }
            guard index < end, end - index <= 15 else { return nil }
            var value: Int64 = 0
            while index < end {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int64(digit)
                index += 1
            }
            return negative ? -value : value
        }
    }

    /// The value at `token` as a tree (only this subtree is built).
    public func materialize(_ token: Int = JSONIndex.root) -> JSONValue {
        let item = tokens[token]
        switch item.kind {
        case .null: return .null
        case .false: return .bool(false)
        case .true: return .bool(true)
        case .number: return .number(number(token) ?? 0)
        case .string: return .string(string(token) ?? "")
        case .array: return .array(elements(token).map { materialize($0) })
        case .object:
            var result: [String: JSONValue] = [:]
            for (name, value) in members(token) { result[string(name) ?? ""] = materialize(value) }
            return .object(result)
        }
    }

    /// Byte equality without Foundation (names are short: a loop beats a call).
    @inline(__always)
    func sameBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>?, _ count: Int) -> Bool {
        guard count > 0, let b else { return true }
        for offset in 0..<count where a[offset] != b[offset] { return false }
        return true
    }

    // MARK: Scanning

    /// Validates like `JSONText.Parser` and records tokens instead of building values.
    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0
        var tokens: [Token] = []

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
            // About one token per 12 bytes in audit events; one growth at most for typical documents.
            tokens.reserveCapacity(max(16, bytes.count / 12))
        }

        func fail(_ reason: String) -> JSONText.ParseError { JSONText.ParseError(offset: position, reason: reason) }

        var atEnd: Bool { position >= bytes.count }

        mutating func skipSpace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0a, 0x0d: position += 1
                default: return
                }
            }
        }

        mutating func push(_ kind: Kind, _ start: Int, _ end: Int, escaped: Bool = false) {
            tokens.append(Token(kind: kind, escaped: escaped, start: UInt32(start), end: UInt32(end), next: UInt32(tokens.count + 1)))
        }

        mutating func literal(_ literal: StaticString, _ kind: Kind) throws(JSONText.ParseError) {
            let count = literal.utf8CodeUnitCount
            guard position + count <= bytes.count else { throw fail("unexpected end of input") }
            for index in 0..<count where bytes[position + index] != literal.utf8Start[index] {
                throw fail("invalid literal")
            }
            push(kind, position, position + count)
            position += count
        }

        mutating func value(depth: Int) throws(JSONText.ParseError) {
            guard depth < JSONText.maxDepth else { throw fail("nesting deeper than \(JSONText.maxDepth)") }
            guard !atEnd else { throw fail("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: "n"): try literal("null", .null)
            case UInt8(ascii: "t"): try literal("true", .true)
            case UInt8(ascii: "f"): try literal("false", .false)
            case UInt8(ascii: "\""): try string()
            case UInt8(ascii: "["):
                let container = tokens.count
                push(.array, position, position)
                position += 1
                skipSpace()
                if !atEnd, bytes[position] == UInt8(ascii: "]") {
                    position += 1
                    close(container)
                    return
                }
                while true {
                    skipSpace()
                    try value(depth: depth + 1)
                    skipSpace()
                    guard !atEnd else { throw fail("unterminated array") }
                    let byte = bytes[position]
                    position += 1
                    if byte == UInt8(ascii: "]") {
                        close(container)
                        return
                    }
                    if byte != UInt8(ascii: ",") {
                        position -= 1
                        throw fail("expected ',' or ']' in array")
                    }
                }
            case UInt8(ascii: "{"):
                let container = tokens.count
                push(.object, position, position)
                position += 1
                skipSpace()
                if !atEnd, bytes[position] == UInt8(ascii: "}") {
                    position += 1
                    close(container)
                    return
                }
                while true {
                    skipSpace()
                    guard !atEnd, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                    try string()
                    skipSpace()
                    guard !atEnd, bytes[position] == UInt8(ascii: ":") else { throw fail("expected ':' after a name") }
                    position += 1
                    skipSpace()
                    try value(depth: depth + 1)
                    skipSpace()
                    guard !atEnd else { throw fail("unterminated object") }
                    let byte = bytes[position]
                    position += 1
                    if byte == UInt8(ascii: "}") {
                        close(container)
                        return
                    }
                    if byte != UInt8(ascii: ",") {
                        position -= 1
                        throw fail("expected ',' or '}' in object")
                    }
                }
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                try number()
            default:
                throw fail("unexpected character")
            }
        }

        /// Skips, eight bytes at a time, string content that needs no attention: no quote, no backslash, no
        /// control character. Strings are most of an audit event's bytes, and a byte-at-a-time loop was the
        /// scanner's main cost. The byte loop in `string()` handles whatever stops this one.
        @inline(__always)
        mutating func skipPlainBytes() {
            let ones: UInt64 = 0x0101_0101_0101_0101
            let highs: UInt64 = 0x8080_8080_8080_8080
            let raw = UnsafeRawPointer(bytes.baseAddress!)
            while position + 8 <= bytes.count {
                // Byte 0 in the low bits on any host, so the lowest flag below is the first byte.
                let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: position, as: UInt64.self))
                // A byte is zero in `x` exactly when it equals the byte tested for; `(x - ones) & ~x & highs` is
                // non-zero when some byte of `x` is zero (exact for "is there one", which is all this asks).
                let quote = word ^ (ones &* 0x22)
                let backslash = word ^ (ones &* 0x5C)
                let hasQuote = (quote &- ones) & ~quote & highs
                let hasBackslash = (backslash &- ones) & ~backslash & highs
                // Bytes below 0x20 borrow when 0x20 is subtracted (the same test, for "less than" instead of zero;
                // bytes from 0x80 up are left out by `~word`).
                let hasControl = (word &- (ones &* 0x20)) & ~word & highs
                let found = hasQuote | hasBackslash | hasControl
                if found != 0 {
                    // Step straight to the byte that stopped the scan. Each test's lowest flag is exact (borrows
                    // only run upwards, past a real hit), so the lowest of the three is too; returning at the
                    // word's start made the caller re-scan the word once per plain byte before the quote.
                    position += found.trailingZeroBitCount >> 3
                    return
                }
                position += 8
            }
        }

        mutating func close(_ container: Int) {
            tokens[container].end = UInt32(position)
            tokens[container].next = UInt32(tokens.count)
        }

        mutating func digits() -> Int {
            let start = position
            while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 { position += 1 }
            return position - start
        }

        mutating func number() throws(JSONText.ParseError) {
            let start = position
            var simple = true
            if bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard !atEnd else { throw fail("unexpected end of number") }
            if bytes[position] == UInt8(ascii: "0") {
                position += 1
            } else if digits() == 0 {
                throw fail("expected a digit")
            }
            if !atEnd, bytes[position] == UInt8(ascii: ".") {
                simple = false
                position += 1
                guard digits() > 0 else { throw fail("expected a digit after '.'") }
            }
            if !atEnd, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                simple = false
                position += 1
                if !atEnd, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
                guard digits() > 0 else { throw fail("expected a digit in the exponent") }
            }
            // Short integers always convert; anything else is checked the way the tree parser checks it.
            if !simple || position - start > 15 {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
                guard Double(text) != nil else {
                    position = start
                    throw fail("unreadable number")
                }
            }
            push(.number, start, position)
        }

        mutating func hex4() throws(JSONText.ParseError) -> UInt32 {
            guard position + 4 <= bytes.count else { throw fail("unexpected end of \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw fail("invalid hex digit in \\u escape")
                }
                value = value << 4 | UInt32(digit)
                position += 1
            }
            return value
        }

        /// A string starting at the opening quote: checks escapes and control characters, decodes nothing.
        mutating func string() throws(JSONText.ParseError) {
            position += 1
            let start = position
            var escaped = false
            while true {
                skipPlainBytes()
                guard position < bytes.count else { throw fail("unterminated string") }
                let byte = bytes[position]
                position += 1
                switch byte {
                case UInt8(ascii: "\""):
                    push(.string, start, position - 1, escaped: escaped)
                    return
                case UInt8(ascii: "\\"):
                    escaped = true
                    guard position < bytes.count else { throw fail("unterminated escape") }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                        UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        break
                    case UInt8(ascii: "u"):
                        let scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard position + 2 <= bytes.count, bytes[position] == UInt8(ascii: "\\"),
                                bytes[position + 1] == UInt8(ascii: "u")
                            else { throw fail("unpaired surrogate in \\u escape") }
                            position += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in \\u escape") }
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                    default:
                        position -= 1
                        throw fail("invalid escape")
                    }
                default:
                    if byte < 0x20 {
                        position -= 1
                        throw fail("control character in string")
                    }
                }
            }
        }
    }
}
