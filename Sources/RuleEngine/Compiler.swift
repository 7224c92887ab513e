#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EventModel
import PatternMatching

/// A compiled condition: true when the event satisfies it.
typealias Matcher = @Sendable (EventPointer, inout Scratch) -> Bool
typealias StringTest = @Sendable (String) -> Bool

// MARK: Byte-level string operations (no Unicode normalisation: paths and names compare as bytes)

@inline(__always)
func withBytes<R>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let result = text.utf8.withContiguousStorageIfAvailable(body) { return result }
    return Array(text.utf8).withUnsafeBufferPointer(body)
}

// Each operation works on a byte buffer; the `String` forms pass the string's UTF-8 to the same code, so a value
// compared in place in an audit document (`AuditPlainValue`) and the same value as a `String` get one answer.

@inline(__always)
func bytesHavePrefix(_ bytes: UnsafeBufferPointer<UInt8>, _ prefix: [UInt8]) -> Bool {
    if prefix.isEmpty { return true }
    guard bytes.count >= prefix.count else { return false }
    return prefix.withUnsafeBufferPointer { memcmp(bytes.baseAddress!, $0.baseAddress!, prefix.count) == 0 }
}

@inline(__always)
func bytesHavePrefix(_ text: String, _ prefix: [UInt8]) -> Bool {
    if prefix.isEmpty { return true }
    guard text.utf8.count >= prefix.count else { return false }
    return withBytes(text) { bytesHavePrefix($0, prefix) }
}

@inline(__always)
func bytesHaveSuffix(_ bytes: UnsafeBufferPointer<UInt8>, _ suffix: [UInt8]) -> Bool {
    if suffix.isEmpty { return true }
    let count = bytes.count
    guard count >= suffix.count else { return false }
    return suffix.withUnsafeBufferPointer {
        memcmp(bytes.baseAddress! + (count - suffix.count), $0.baseAddress!, suffix.count) == 0
    }
}

@inline(__always)
func bytesHaveSuffix(_ text: String, _ suffix: [UInt8]) -> Bool {
    if suffix.isEmpty { return true }
    guard text.utf8.count >= suffix.count else { return false }
    return withBytes(text) { bytesHaveSuffix($0, suffix) }
}

@inline(__always)
func bytesEqual(_ bytes: UnsafeBufferPointer<UInt8>, _ other: [UInt8]) -> Bool {
    guard bytes.count == other.count else { return false }
    if other.isEmpty { return true }
    return other.withUnsafeBufferPointer { memcmp(bytes.baseAddress!, $0.baseAddress!, other.count) == 0 }
}

/// Equality of UTF-8 bytes, for `=`, `!=` and `in`: Swift's `==` on `String`s would also equate canonically
/// equivalent spellings (U+212A KELVIN SIGN and "K", "é" and "e" + U+0301), which paths, names and the other
/// operators do not.
@inline(__always)
func bytesEqual(_ text: String, _ other: [UInt8]) -> Bool {
    guard text.utf8.count == other.count else { return false }
    return withBytes(text) { bytesEqual($0, other) }
}

@inline(__always)
func bytesContain(_ bytes: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
    if needle.isEmpty { return true }
    guard bytes.count >= needle.count else { return false }
    return needle.withUnsafeBufferPointer { n in
        let first = Int32(n[0])
        var start = bytes.baseAddress!
        let end = bytes.baseAddress! + (bytes.count - n.count + 1)
        while start < end {
            guard let hit = memchr(start, first, end - start) else { return false }
            let candidate = hit.assumingMemoryBound(to: UInt8.self)
            if memcmp(candidate, n.baseAddress!, n.count) == 0 { return true }
            start = UnsafePointer(candidate) + 1
        }
        return false
    }
}

@inline(__always)
func bytesContain(_ text: String, _ needle: [UInt8]) -> Bool {
    if needle.isEmpty { return true }
    guard text.utf8.count >= needle.count else { return false }
    return withBytes(text) { bytesContain($0, needle) }
}

@inline(__always)
func asciiLower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }

/// Case-insensitive (ASCII; other text is lowercased first) substring search. `needle` is lowercase.
func bytesContainIgnoringCase(_ text: String, _ needle: [UInt8]) -> Bool {
    if needle.isEmpty { return true }
    guard text.utf8.count >= needle.count else { return false }
    let ascii = withBytes(text) { bytes in !bytes.contains(where: { $0 >= 0x80 }) }
    if !ascii { return bytesContain(text.lowercased(), needle) }
    return withBytes(text) { asciiContainIgnoringCase($0, needle) }
}

/// `bytesContainIgnoringCase` for text known to be ASCII. `needle` is lowercase.
func asciiContainIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
    if needle.isEmpty { return true }
    guard bytes.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    let last = bytes.count - needle.count
    outer: while i <= last {
        if asciiLower(bytes[i]) == first {
            var j = 1
            while j < needle.count {
                if asciiLower(bytes[i + j]) != needle[j] { i += 1; continue outer }
                j += 1
            }
            return true
        }
        i += 1
    }
    return false
}

/// An exact-match set over UTF-8 bytes, cheaper than `Set<String>`'s hashing.
///
/// Most values a rule tests are not in its lists, so a miss should cost little: a bit per possible length
/// (0...63, and one for longer) rejects most of them without reading a byte, and the hash reads only the first
/// and last 8 bytes (plus the length) instead of every byte. Collisions are settled by `memcmp`.
struct ByteStringSet: Sendable {
    /// Every item's bytes, back to back; item `i` is `bytes[starts[i] ..< starts[i] + lengths[i]]`.
    private let bytes: [UInt8]
    private let starts: [Int]
    private let lengths: [Int]
    private let table: [Int32]
    private let mask: Int
    /// Bit `min(length, 63)` is set when an item has that length.
    private let lengthBits: UInt64

    init(_ strings: [String]) {
        var unique: [[UInt8]] = []
        for string in strings where !unique.contains(Array(string.utf8)) { unique.append(Array(string.utf8)) }
        var size = 8
        while size < unique.count * 3 { size <<= 1 }
        var table = [Int32](repeating: -1, count: size)
        var bytes: [UInt8] = []
        var starts: [Int] = []
        var lengths: [Int] = []
        var lengthBits: UInt64 = 0
        for (index, item) in unique.enumerated() {
            var slot = Int(truncatingIfNeeded: item.withUnsafeBufferPointer(Self.hash)) & (size - 1)
            while table[slot] >= 0 { slot = (slot + 1) & (size - 1) }
            table[slot] = Int32(index)
            starts.append(bytes.count)
            lengths.append(item.count)
            bytes.append(contentsOf: item)
            lengthBits |= 1 << UInt64(min(item.count, 63))
        }
        self.bytes = bytes
        self.starts = starts
        self.lengths = lengths
        self.table = table
        self.mask = size - 1
        self.lengthBits = lengthBits
    }

    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let count = bytes.count
        var head: UInt64 = 0
        var tail: UInt64 = 0
        if count >= 8 {
            let raw = UnsafeRawPointer(bytes.baseAddress!)
            head = raw.loadUnaligned(as: UInt64.self)
            tail = raw.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        } else {
            for index in 0..<count { head |= UInt64(bytes[index]) << UInt64(8 * index) }
        }
        var state = (head &* 0x9E37_79B9_7F4A_7C15) ^ (tail &* 0xC2B2_AE3D_27D4_EB4F) ^ UInt64(count)
        state ^= state >> 29
        return state &* 0x1656_67B1_9E37_79F9
    }

    func contains(_ text: String) -> Bool {
        guard lengthBits & (1 << UInt64(min(text.utf8.count, 63))) != 0 else { return false }
        return withBytes(text) { index(of: $0) != nil }
    }

    func contains(_ value: UnsafeBufferPointer<UInt8>) -> Bool { index(of: value) != nil }

    /// The position of `value` among the distinct items, in the order they were first given.
    func index(of value: UnsafeBufferPointer<UInt8>) -> Int? {
        guard lengthBits & (1 << UInt64(min(value.count, 63))) != 0 else { return nil }
        return table.withUnsafeBufferPointer { table in
            bytes.withUnsafeBufferPointer { stored in
                var slot = Int(truncatingIfNeeded: Self.hash(value)) & mask
                while true {
                    let index = Int(table[slot])
                    if index < 0 { return nil }
                    let length = lengths[index]
                    if length == value.count
                        && (length == 0 || memcmp(stored.baseAddress! + starts[index], value.baseAddress!, length) == 0)
                    {
                        return index
                    }
                    slot = (slot + 1) & mask
                }
            }
        }
    }
}

/// The literal start and end of a glob (`/home/` and `/.ssh` of `/home/*/.ssh`), which every matching subject
/// must start and end with: a cheap necessary condition checked before the PCRE2 match the glob compiles to.
/// The scan stops at the first (last) wildcard, set or backslash, so the literal runs never include an escape:
/// shorter than they could be, never wrong. The glob's expression ends in `$`, which also matches before a final
/// newline, so the end may be followed by one.
struct GlobLiterals: Sendable {
    let prefix: [UInt8]
    let suffix: [UInt8]
    let suffixWithNewline: [UInt8]

    init(_ glob: String) {
        let chars = Array(glob.unicodeScalars)
        func plain(_ char: Unicode.Scalar) -> Bool { !"*?[]\\".unicodeScalars.contains(char) }
        var start = 0
        while start < chars.count, plain(chars[start]) { start += 1 }
        var end = chars.count
        while end > 0, plain(chars[end - 1]) { end -= 1 }
        prefix = Array(String(String.UnicodeScalarView(chars[0..<start])).utf8)
        suffix = Array(String(String.UnicodeScalarView(chars[end...])).utf8)
        suffixWithNewline = suffix + [0x0A]
    }

    @inline(__always)
    func mayMatch(_ text: String) -> Bool {
        bytesHavePrefix(text, prefix) && (bytesHaveSuffix(text, suffix) || bytesHaveSuffix(text, suffixWithNewline))
    }

    @inline(__always)
    func mayMatch(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytesHavePrefix(bytes, prefix) && (bytesHaveSuffix(bytes, suffix) || bytesHaveSuffix(bytes, suffixWithNewline))
    }
}

/// Literal text every match of a regular expression must contain (or start with, for `^`): one of the leading
/// literal runs of the branches of its first alternation. A cheap necessary condition, checked before PCRE2.
///
/// Only simple shapes are analysed; anything else (character classes, inline options such as `(?i)`, `\Q`,
/// a branch that does not start with a literal) gives nil and the pattern is always run. Being wrong here
/// would hide matches, so the analysis gives up rather than guess.
///
/// A pattern that is one sequence of atoms (no groups, no alternation), such as K8sCop's
/// `^/api/v1/namespaces/[a-z0-9][a-z0-9.-]*/secrets$`, gets its literal runs instead: the anchored start and
/// every later run (`/secrets`) must all occur, character classes and `.` only separating the runs.
struct RegexLiterals: Sendable {
    /// One of these must occur (at the start when `anchored`).
    let literals: [[UInt8]]
    let anchored: Bool
    /// Every one of these must also occur somewhere.
    let required: [[UInt8]]

    init?(_ pattern: String) {
        if let branches = Self.branchLiterals(pattern) {
            self = branches
        } else if let sequence = Self.sequenceLiterals(Array(pattern.unicodeScalars)) {
            self = sequence
        } else {
            return nil
        }
    }

    private init(literals: [[UInt8]], anchored: Bool, required: [[UInt8]]) {
        self.literals = literals
        self.anchored = anchored
        self.required = required
    }

    /// The literal runs of a pattern that is a plain sequence: literal characters, escaped punctuation, character
    /// classes, `.`, the shorthand classes `\d \s \w` (and capitals), each possibly quantified, between an
    /// optional `^` and an optional final `$`. Anything else gives nil.
    static func sequenceLiterals(_ pattern: [Unicode.Scalar]) -> RegexLiterals? {
        var chars = pattern[...]
        if chars.contains("#") { return nil }
        var anchored = false
        if chars.first == "^" {
            anchored = true
            chars = chars.dropFirst()
        }
        if chars.last == "$", chars.count >= 2, chars[chars.index(before: chars.endIndex) - 1] != "\\" {
            chars = chars.dropLast()
        }
        var runs: [[UInt8]] = []
        var run: [UInt8] = []
        /// True while `run` is the pattern's start (so, when anchored, a required prefix).
        var runIsPrefix = true
        var prefix: [UInt8]?
        func endRun() {
            if runIsPrefix && anchored {
                prefix = run
            } else if !run.isEmpty {
                runs.append(run)
            }
            run = []
            runIsPrefix = false
        }
        var index = chars.startIndex
        while index < chars.endIndex {
            let char = chars[index]
            // One atom: a literal character (its bytes), or something that matches other text (nil).
            var literal: [UInt8]?
            switch char {
            case "(", ")", "|", "^", "$", "*", "+", "?", "{", "}":
                return nil
            case "[":
                // A class: skip to its closing bracket (a `]` right after `[` or `[^` is a member).
                var end = index + 1
                if end < chars.endIndex, chars[end] == "^" { end += 1 }
                if end < chars.endIndex, chars[end] == "]" { end += 1 }
                while end < chars.endIndex, chars[end] != "]" {
                    if chars[end] == "[" { return nil }  // POSIX classes `[:alpha:]`: left to PCRE2
                    if chars[end] == "\\" {
                        end += 1
                        guard end < chars.endIndex else { return nil }
                    }
                    end += 1
                }
                guard end < chars.endIndex else { return nil }
                index = end
            case ".":
                break
            case "\\":
                guard index + 1 < chars.endIndex else { return nil }
                let next = chars[index + 1]
                index += 1
                if next.isASCII, next.properties.isAlphabetic || ("0"..."9").contains(next) {
                    // Shorthand classes only; `\Q`, `\x{..}`, `\p{..}`, back references and the rest give up.
                    guard "dDsSwW".unicodeScalars.contains(next) else { return nil }
                } else if next.isASCII {
                    literal = Array(String(next).utf8)
                } else {
                    return nil
                }
            default:
                literal = Array(String(char).utf8)
            }
            index += 1
            // Its quantifier, if any (with a lazy `?` or possessive `+` after it).
            var quantifier: Unicode.Scalar?
            if index < chars.endIndex, "*+?{".unicodeScalars.contains(chars[index]) {
                quantifier = chars[index]
                if chars[index] == "{" {
                    guard let close = chars[index...].firstIndex(of: "}") else { return nil }
                    index = close
                }
                index += 1
                if index < chars.endIndex, chars[index] == "?" || chars[index] == "+" { index += 1 }
            }
            if let literal, quantifier == nil {
                run.append(contentsOf: literal)
            } else if let literal, quantifier == "+" {
                // Required once, but what follows is not adjacent to it.
                run.append(contentsOf: literal)
                endRun()
            } else {
                endRun()
            }
        }
        endRun()
        let start = prefix.flatMap { $0.isEmpty ? nil : $0 }
        guard start != nil || !runs.isEmpty else { return nil }
        return RegexLiterals(literals: start.map { [$0] } ?? [], anchored: start != nil, required: runs)
    }

    /// The leading literals of the branches of a pattern's first alternation (see the type's comment).
    private static func branchLiterals(_ pattern: String) -> RegexLiterals? {
        var chars = Array(pattern.unicodeScalars)
        if chars.contains("[") || chars.contains("#") { return nil }
        for index in chars.indices.dropLast() where chars[index] == "\\" && chars[index + 1] == "Q" { return nil }
        for index in chars.indices.dropLast() where chars[index] == "(" && chars[index + 1] == "?" { return nil }
        var anchored = false
        if chars.first == "^" {
            anchored = true
            chars.removeFirst()
        }
        // Where the branches are: inside a leading group (not followed by a quantifier), or the whole pattern.
        var body = chars[...]
        if Self.splitBranches(body).count > 1 {
            if anchored { return nil }  // `^a|b`: the anchor belongs to the first branch only
        } else if chars.first == "(" {
            guard let close = Self.matchingParen(chars, 0) else { return nil }
            if close + 1 < chars.count, "*?{".unicodeScalars.contains(chars[close + 1]) { return nil }
            body = chars[1..<close]
        }
        var literals: [[UInt8]] = []
        for branch in Self.splitBranches(body) {
            guard let run = Self.leadingLiteral(branch), !run.isEmpty else { return nil }
            literals.append(run)
        }
        guard !literals.isEmpty else { return nil }
        return RegexLiterals(literals: literals, anchored: anchored, required: [])
    }

    /// False when the text cannot match.
    @inline(__always)
    func mayMatch(_ text: String) -> Bool {
        withBytes(text) { mayMatch($0) }
    }

    @inline(__always)
    func mayMatch(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        if !literals.isEmpty {
            if anchored {
                guard literals.contains(where: { bytesHavePrefix(text, $0) }) else { return false }
            } else {
                guard literals.contains(where: { bytesContain(text, $0) }) else { return false }
            }
        }
        for literal in required where !bytesContain(text, literal) { return false }
        return true
    }

    private static func matchingParen(_ chars: [Unicode.Scalar], _ open: Int) -> Int? {
        var depth = 0
        var index = open
        while index < chars.count {
            switch chars[index] {
            case "\\": index += 1
            case "(": depth += 1
            case ")":
                depth -= 1
                if depth == 0 { return index }
            default: break
            }
            index += 1
        }
        return nil
    }

    /// Splits at `|` outside groups.
    private static func splitBranches(_ body: ArraySlice<Unicode.Scalar>) -> [ArraySlice<Unicode.Scalar>] {
        var branches: [ArraySlice<Unicode.Scalar>] = []
        var depth = 0
        var start = body.startIndex
        var index = body.startIndex
        while index < body.endIndex {
            switch body[index] {
            case "\\": index += 1
            case "(": depth += 1
            case ")": depth -= 1
            case "|" where depth == 0:
                branches.append(body[start..<index])
                start = index + 1
            default: break
            }
            index += 1
        }
        branches.append(body[start..<body.endIndex])
        return branches
    }

    /// The literal text a branch starts with, up to the first metacharacter; a character followed by a
    /// quantifier that allows zero repeats is left out.
    private static func leadingLiteral(_ branch: ArraySlice<Unicode.Scalar>) -> [UInt8]? {
        var run: [UInt8] = []
        var lastLength = 0
        var index = branch.startIndex
        while index < branch.endIndex {
            let char = branch[index]
            if "*?{".unicodeScalars.contains(char) {
                run.removeLast(lastLength)
                return run
            }
            if "+".unicodeScalars.contains(char) { return run }
            if ".()|^$".unicodeScalars.contains(char) { return run }
            var literal = char
            if char == "\\" {
                guard index + 1 < branch.endIndex else { return nil }
                let next = branch[index + 1]
                // `\s`, `\d`, `\b`, `\1`, ...: not a literal character.
                guard next.isASCII, !(next.properties.isAlphabetic || ("0"..."9").contains(next)) else { return run }
                literal = next
                index += 1
            }
            let bytes = Array(String(literal).utf8)
            run.append(contentsOf: bytes)
            lastLength = bytes.count
            index += 1
        }
        return run
    }
}

// MARK: Compilation

/// Everything a condition may refer to, for one rule.
struct CompileContext {
    let lists: [String: [String]]
    let macros: [String: MacroDefinition]
    let parameters: [String: ParameterValue]
    var kinds: Set<EventKind>
    let ruleID: String
    var location: RuleFileLocation
    var macroStack: [String] = []

    func error(_ code: RuleEngineError.Code, _ reason: String, offset: Int? = nil) -> RuleEngineError {
        var text = reason
        if let offset { text += " (at column \(offset + 1) of the condition)" }
        if let macro = macroStack.last { text += " in macro '\(macro)'" }
        return RuleEngineError(code, text, at: location, rule: "rule '\(ruleID)'")
    }
}

/// An unquoted snake_case word with an underscore is taken to be a list name, so typos are caught.
func looksLikeListName(_ word: String) -> Bool {
    guard word.contains("_"), let first = word.unicodeScalars.first, first.properties.isLowercase else { return false }
    return word.unicodeScalars.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "_" }
}

enum Compiler {
    static func compile(_ expr: Expr, _ context: inout CompileContext) throws(RuleEngineError) -> Matcher {
        switch expr {
        case .and(let terms):
            if terms.isEmpty { return { _, _ in true } }
            return try chain(terms.indices, isAnd: true) { (index) throws(RuleEngineError) in try compile(terms[index], &context) }
        case .or(let terms):
            if terms.isEmpty { return { _, _ in false } }
            return try chain(terms.indices, isAnd: false) { (index) throws(RuleEngineError) in try compile(terms[index], &context) }
        case .not(let inner):
            let predicate = try compile(inner, &context)
            return { e, s in !predicate(e, &s) }
        case .macro(let name, let offset):
            guard let macro = context.macros[name] else {
                if FieldRegistry.isField(name) {
                    throw context.error(.badCondition, "field '\(name)' needs an operator", offset: offset)
                }
                if name.hasPrefix("param.") {
                    throw context.error(.badCondition, "'\(name)' can only be used as a value", offset: offset)
                }
                throw context.error(
                    .unknownMacro, "unknown macro '\(name)'" + didYouMean(name, context.macros.keys), offset: offset)
            }
            if context.macroStack.contains(name) {
                throw context.error(
                    .macroCycle, "macro cycle: " + (context.macroStack + [name]).joined(separator: " -> "), offset: offset)
            }
            let saved = context.location
            context.macroStack.append(name)
            context.location = macro.conditionLocation
            defer {
                context.macroStack.removeLast()
                context.location = saved
            }
            return try compile(macro.expr, &context)
        case .compare(let field, let op, let negated, let operand, let offset):
            let predicate = try compileComparison(field: field, op: op, operand: operand, offset: offset, &context)
            if negated { return { e, s in !predicate(e, &s) } }
            return predicate
        }
    }

    /// The values `field` must equal (`=` or `in`, not negated) for `expr` to hold, or nil when any value may do.
    /// A necessary condition only: the rule's own condition still decides. Used to index audit rules by verb.
    static func requiredValues(of expr: Expr, field: String, _ context: CompileContext, depth: Int = 0) -> Set<String>? {
        guard depth < 64 else { return nil }
        switch expr {
        case .and(let terms):
            var result: Set<String>?
            for term in terms {
                if let values = requiredValues(of: term, field: field, context, depth: depth + 1) {
                    result = result.map { $0.intersection(values) } ?? values
                }
            }
            return result
        case .or(let terms):
            if terms.isEmpty { return nil }
            var union = Set<String>()
            for term in terms {
                guard let values = requiredValues(of: term, field: field, context, depth: depth + 1) else { return nil }
                union.formUnion(values)
            }
            return union
        case .not:
            return nil
        case .macro(let name, _):
            guard let macro = context.macros[name] else { return nil }
            return requiredValues(of: macro.expr, field: field, context, depth: depth + 1)
        case .compare(let name, let op, let negated, let operand, let offset):
            guard name == field, !negated, op == .eq || op == .in, let operand,
                let (values, _) = try? values(of: operand, op: op, offset: offset, context)
            else { return nil }
            return Set(values)
        }
    }

    /// `build(i)` for every index, joined with `&&` (or `||`) left to right. Built by recursion rather than
    /// from an array: closures stored in arrays are reabstracted, and each call would pass through thunks.
    static func chain(
        _ range: Range<Int>, isAnd: Bool, _ build: (Int) throws(RuleEngineError) -> Matcher
    ) throws(RuleEngineError) -> Matcher {
        let first = try build(range.lowerBound)
        if range.count == 1 { return first }
        let rest = try chain(range.lowerBound + 1..<range.upperBound, isAnd: isAnd, build)
        if isAnd { return { e, s in first(e, &s) && rest(e, &s) } }
        return { e, s in first(e, &s) || rest(e, &s) }
    }

    /// Resolves a field reference for this rule, checking it exists and applies to one of its kinds.
    static func field(_ name: String, offset: Int?, _ context: CompileContext) throws(RuleEngineError) -> Extractor {
        switch FieldRegistry.resolve(name) {
        case .failure(let failure):
            throw context.error(.unknownField, failure.reason, offset: offset)
        case .success(let (spec, extractor)):
            if spec.kinds.isDisjoint(with: context.kinds) {
                let kinds = context.kinds.map(\.rawValue).sorted().joined(separator: ", ")
                let available = spec.kinds.map(\.rawValue).sorted().joined(separator: ", ")
                throw context.error(
                    .fieldNotApplicable,
                    "field '\(name)' is not available for event kinds [\(kinds)] (only for [\(available)])", offset: offset)
            }
            return extractor
        }
    }

    /// The literal values of an operand, expanding named lists and parameters.
    static func values(
        of operand: Operand, op: ComparisonOperator, offset: Int, _ context: CompileContext
    ) throws(RuleEngineError) -> (values: [String], isList: Bool) {
        func expand(_ word: String, allowLists: Bool, strict: Bool) throws(RuleEngineError) -> [String]? {
            if word.hasPrefix("param.") {
                let name = String(word.dropFirst("param.".count))
                guard let value = context.parameters[name] else {
                    throw context.error(
                        .unknownParameter,
                        "unknown parameter '\(name)'; declare it under the rule's parameters"
                            + didYouMean(name, context.parameters.keys), offset: offset)
                }
                return value.items
            }
            guard allowLists else { return nil }
            if let items = context.lists[word] { return items }
            if strict && looksLikeListName(word) {
                throw context.error(
                    .unknownList,
                    "unknown list '\(word)' (quote it to compare with the literal text)"
                        + didYouMean(word, context.lists.keys), offset: offset)
            }
            return nil
        }
        let listOperator = ![.eq, .ne, .lt, .le, .gt, .ge].contains(op)
        switch operand {
        case .single(let text, let quoted):
            if quoted { return ([text], false) }
            if let items = try expand(text, allowLists: listOperator, strict: true) {
                let isList = text.hasPrefix("param.") ? (context.parameters[String(text.dropFirst(6))]?.isList ?? false) : true
                return (items, isList)
            }
            return ([text], false)
        case .list(let items):
            var result: [String] = []
            for item in items {
                if !item.quoted, let expanded = try expand(item.text, allowLists: true, strict: false) {
                    result.append(contentsOf: expanded)
                } else {
                    result.append(item.text)
                }
            }
            return (result, true)
        }
    }

    static func compileComparison(
        field name: String, op: ComparisonOperator, operand: Operand?, offset: Int, _ context: inout CompileContext
    ) throws(RuleEngineError) -> Matcher {
        let extractor = try field(name, offset: offset, context)
        if op == .exists {
            switch extractor {
            case .string(let get):
                let fallback: Matcher = { e, s in get(e, &s) != nil }
                guard let field = FieldRegistry.plainField(name) else { return fallback }
                return { e, s in s.withPlain(field, e, fallback) { _ in true } }
            case .int(let get): return { e, s in get(e, &s) != nil }
            case .bool(let get): return { e, s in get(e, &s) != nil }
            case .strings(let get): return { e, s in !(get(e, &s)?.isEmpty ?? true) }
            case .ints(let get): return { e, s in !(get(e, &s)?.isEmpty ?? true) }
            }
        }
        guard let operand else { throw context.error(.badCondition, "'\(op.rawValue)' needs a value", offset: offset) }
        let (values, isList) = try values(of: operand, op: op, offset: offset, context)
        let type = extractor.type
        func mismatch(_ reason: String) -> RuleEngineError {
            context.error(.typeMismatch, "'\(name) \(op.rawValue)': \(reason)", offset: offset)
        }
        if [.eq, .ne, .lt, .le, .gt, .ge].contains(op), isList || values.count != 1 {
            throw mismatch("operator '\(op.rawValue)' takes one value, not a list (use 'in')")
        }
        switch extractor {
        case .string(let get):
            let matcher = try stringComparison(
                get, op, values, fieldType: type, mismatch: mismatch, context, offset: offset)
            if let field = FieldRegistry.plainField(name),
                let inPlace = plainComparison(field, op, values, fallback: matcher)
            {
                return inPlace
            }
            return matcher
        case .strings(let get):
            switch op {
            case .ne:
                let v = Array(values[0].utf8)
                return { e, s in
                    guard let list = get(e, &s) else { return false }
                    return !list.contains { bytesEqual($0, v) }
                }
            case .eq, .contains, .in:
                if values.count == 1 {
                    let v = Array(values[0].utf8)
                    return { e, s in get(e, &s)?.contains { bytesEqual($0, v) } ?? false }
                }
                let set = ByteStringSet(values)
                return { e, s in get(e, &s)?.contains(where: { set.contains($0) }) ?? false }
            case .icontains:
                let lowered = Set(values.map { $0.lowercased() })
                return { e, s in get(e, &s)?.contains(where: { lowered.contains($0.lowercased()) }) ?? false }
            default:
                let test = try stringTest(op, values, fieldType: type, mismatch: mismatch, context, offset: offset)
                return { e, s in get(e, &s)?.contains(where: test) ?? false }
            }
        case .int(let get):
            if [.contains, .icontains, .startswith, .endswith, .glob, .regex].contains(op) {
                throw mismatch("operator '\(op.rawValue)' needs a string field, '\(name)' is \(type.rawValue)")
            }
            let numbers = try integers(values, mismatch: mismatch)
            if op == .in {
                if numbers.count <= 8 { return { e, s in get(e, &s).map { numbers.contains($0) } ?? false } }
                let set = Set(numbers)
                return { e, s in get(e, &s).map { set.contains($0) } ?? false }
            }
            let test = intTest(op, numbers[0])
            return { e, s in
                guard let value = get(e, &s) else { return false }
                return test(value)
            }
        case .ints(let get):
            if [.icontains, .startswith, .endswith, .glob, .regex].contains(op) {
                throw mismatch("operator '\(op.rawValue)' needs a string field, '\(name)' is \(type.rawValue)")
            }
            let numbers = try integers(values, mismatch: mismatch)
            switch op {
            case .ne:
                let v = numbers[0]
                return { e, s in get(e, &s).map { !$0.contains(v) } ?? false }
            case .eq, .contains, .in:
                let set = Set(numbers)
                return { e, s in get(e, &s)?.contains(where: { set.contains($0) }) ?? false }
            default:
                let test = intTest(op, numbers[0])
                return { e, s in get(e, &s)?.contains(where: test) ?? false }
            }
        case .bool(let get):
            guard op == .eq || op == .ne else {
                throw mismatch("operator '\(op.rawValue)' does not apply to bool fields (use = or !=)")
            }
            guard let flag = Bool(values[0].lowercased()) else {
                throw mismatch("'\(values[0])' is not true or false")
            }
            let wanted = op == .eq ? flag : !flag
            return { e, s in get(e, &s).map { $0 == wanted } ?? false }
        }
    }

    /// A comparison of a string field, on the `String` the getter returns.
    static func stringComparison(
        _ get: @escaping StringGetter, _ op: ComparisonOperator, _ values: [String], fieldType type: FieldType,
        mismatch: (String) -> RuleEngineError, _ context: CompileContext, offset: Int
    ) throws(RuleEngineError) -> Matcher {
        // Common cases call the byte helpers directly (one closure hop fewer per comparison).
        switch op {
        case .eq:
            let v = Array(values[0].utf8)
            return { e, s in get(e, &s).map { bytesEqual($0, v) } ?? false }
        case .in where values.count > 2:
            let set = ByteStringSet(values)
            return { e, s in get(e, &s).map { set.contains($0) } ?? false }
        case .startswith where values.count == 1:
            let prefix = Array(values[0].utf8)
            return { e, s in get(e, &s).map { bytesHavePrefix($0, prefix) } ?? false }
        case .endswith where values.count == 1:
            let suffix = Array(values[0].utf8)
            return { e, s in get(e, &s).map { bytesHaveSuffix($0, suffix) } ?? false }
        case .contains where values.count == 1:
            let needle = Array(values[0].utf8)
            return { e, s in get(e, &s).map { bytesContain($0, needle) } ?? false }
        default:
            break
        }
        let test = try stringTest(op, values, fieldType: type, mismatch: mismatch, context, offset: offset)
        return { e, s in
            guard let value = get(e, &s) else { return false }
            return test(value)
        }
    }

    /// The same comparison as `stringComparison` for a cached audit field (`PlainField`), on the value's bytes where
    /// it lies in the document (no `String` copy, so nothing retained per comparison); `fallback`, the `String`
    /// comparison, answers for values that are not plain ASCII strings. Nil when the operator has no byte form here.
    ///
    /// Every operator compares UTF-8 bytes, on `String`s as here, so the answers are the same.
    static func plainComparison(
        _ field: PlainField, _ op: ComparisonOperator, _ values: [String], fallback: @escaping Matcher
    ) -> Matcher? {
        let literals = values.map { Array($0.utf8) }
        switch op {
        case .eq:
            let v = literals[0]
            return { e, s in s.withPlain(field, e, fallback) { bytesEqual($0, v) } }
        case .ne:
            let v = literals[0]
            return { e, s in s.withPlain(field, e, fallback) { !bytesEqual($0, v) } }
        case .in where values.count > 2:
            let set = ByteStringSet(values)
            return { e, s in s.withPlain(field, e, fallback) { set.contains($0) } }
        case .in:
            return { e, s in s.withPlain(field, e, fallback) { value in literals.contains { bytesEqual(value, $0) } } }
        case .startswith:
            if literals.count == 1 {
                let prefix = literals[0]
                return { e, s in s.withPlain(field, e, fallback) { bytesHavePrefix($0, prefix) } }
            }
            return { e, s in
                s.withPlain(field, e, fallback) { value in literals.contains { bytesHavePrefix(value, $0) } }
            }
        case .endswith:
            if literals.count == 1 {
                let suffix = literals[0]
                return { e, s in s.withPlain(field, e, fallback) { bytesHaveSuffix($0, suffix) } }
            }
            return { e, s in
                s.withPlain(field, e, fallback) { value in literals.contains { bytesHaveSuffix(value, $0) } }
            }
        case .contains:
            if literals.count == 1 {
                let needle = literals[0]
                return { e, s in s.withPlain(field, e, fallback) { bytesContain($0, needle) } }
            }
            return { e, s in
                s.withPlain(field, e, fallback) { value in literals.contains { bytesContain(value, $0) } }
            }
        case .icontains:
            // The subject is ASCII, so the String form's ASCII branch is the one that would run.
            let needles = values.map { Array($0.lowercased().utf8) }
            return { e, s in
                s.withPlain(field, e, fallback) { value in needles.contains { asciiContainIgnoringCase(value, $0) } }
            }
        case .glob:
            var globs: [(literals: GlobLiterals, glob: GlobPattern)] = []
            for value in values {
                // `stringComparison` compiled the same globs and reported any error already.
                guard let glob = try? GlobPattern(value) else { return nil }
                globs.append((GlobLiterals(glob.glob), glob))
            }
            let allGlobs = globs
            return { e, s in
                s.withPlain(field, e, fallback) { value in
                    allGlobs.contains { $0.literals.mayMatch(value) && $0.glob.regex.matches(bytes: value) }
                }
            }
        case .regex:
            var patterns: [CompiledPattern] = []
            for value in values {
                guard let pattern = try? CompiledPattern(value) else { return nil }
                patterns.append(pattern)
            }
            let allPatterns = patterns
            if allPatterns.count == 1 {
                let pattern = allPatterns[0]
                if let required = RegexLiterals(values[0]) {
                    return { e, s in
                        s.withPlain(field, e, fallback) { required.mayMatch($0) && pattern.matches(bytes: $0) }
                    }
                }
                return { e, s in s.withPlain(field, e, fallback) { pattern.matches(bytes: $0) } }
            }
            return { e, s in
                s.withPlain(field, e, fallback) { value in allPatterns.contains { $0.matches(bytes: value) } }
            }
        case .lt, .le, .gt, .ge, .exists:
            return nil
        }
    }

    static func integers(
        _ values: [String], mismatch: (String) -> RuleEngineError
    ) throws(RuleEngineError) -> [Int64] {
        var result: [Int64] = []
        for text in values {
            let number: Int64?
            if text.hasPrefix("0x") || text.hasPrefix("0X") {
                number = Int64(text.dropFirst(2), radix: 16)
            } else {
                number = Int64(text)
            }
            guard let number else { throw mismatch("'\(text)' is not an integer") }
            result.append(number)
        }
        return result
    }

    static func intTest(_ op: ComparisonOperator, _ v: Int64) -> @Sendable (Int64) -> Bool {
        switch op {
        case .eq: return { $0 == v }
        case .ne: return { $0 != v }
        case .lt: return { $0 < v }
        case .le: return { $0 <= v }
        case .gt: return { $0 > v }
        case .ge: return { $0 >= v }
        default: return { $0 == v }
        }
    }

    static func stringTest(
        _ op: ComparisonOperator, _ values: [String], fieldType: FieldType, mismatch: (String) -> RuleEngineError,
        _ context: CompileContext, offset: Int
    ) throws(RuleEngineError) -> StringTest {
        switch op {
        case .eq:
            let v = Array(values[0].utf8)
            return { bytesEqual($0, v) }
        case .ne:
            let v = Array(values[0].utf8)
            return { !bytesEqual($0, v) }
        case .lt, .le, .gt, .ge:
            throw mismatch("ordering operators need an int field, this one is \(fieldType.rawValue)")
        case .in:
            if values.count <= 2 {
                let literals = values.map { Array($0.utf8) }
                return { value in literals.contains { bytesEqual(value, $0) } }
            }
            let set = ByteStringSet(values)
            return { set.contains($0) }
        case .contains:
            let needles = values.map { Array($0.utf8) }
            if needles.count == 1 {
                let needle = needles[0]
                return { bytesContain($0, needle) }
            }
            return { text in needles.contains { bytesContain(text, $0) } }
        case .icontains:
            let needles = values.map { Array($0.lowercased().utf8) }
            return { text in needles.contains { bytesContainIgnoringCase(text, $0) } }
        case .startswith:
            let prefixes = values.map { Array($0.utf8) }
            if prefixes.count == 1 {
                let prefix = prefixes[0]
                return { bytesHavePrefix($0, prefix) }
            }
            return { text in prefixes.contains { bytesHavePrefix(text, $0) } }
        case .endswith:
            let suffixes = values.map { Array($0.utf8) }
            if suffixes.count == 1 {
                let suffix = suffixes[0]
                return { bytesHaveSuffix($0, suffix) }
            }
            return { text in suffixes.contains { bytesHaveSuffix(text, $0) } }
        case .glob:
            var globs: [GlobPattern] = []
            for value in values {
                do {
                    globs.append(try GlobPattern(value))
                } catch {
                    throw context.error(.badGlob, "bad glob '\(value)': \(error.reason)", offset: offset)
                }
            }
            // A glob is a PCRE2 match; its literal start and end (`/tmp/` of `/tmp/*`) reject most subjects first.
            let allGlobs = globs.map { (literals: GlobLiterals($0.glob), glob: $0) }
            if allGlobs.count == 1 {
                let (literals, glob) = allGlobs[0]
                return { literals.mayMatch($0) && glob.matches($0) }
            }
            return { text in allGlobs.contains { $0.literals.mayMatch(text) && $0.glob.matches(text) } }
        case .regex:
            var patterns: [CompiledPattern] = []
            for value in values {
                do {
                    patterns.append(try CompiledPattern(value))
                } catch {
                    throw context.error(
                        .badRegex, "bad regex '\(value)': \(error.reason) at offset \(error.offset)", offset: offset)
                }
            }
            let allPatterns = patterns
            if allPatterns.count == 1 {
                let pattern = allPatterns[0]
                // Most subjects contain none of the literals a match needs: a byte search answers those
                // without calling PCRE2.
                if let required = RegexLiterals(values[0]) {
                    return { required.mayMatch($0) && pattern.matches($0) }
                }
                return { pattern.matches($0) }
            }
            return { text in allPatterns.contains { $0.matches(text) } }
        case .exists:
            return { _ in true }
        }
    }
}
