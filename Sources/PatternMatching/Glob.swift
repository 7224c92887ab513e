/// A shell-style wildcard pattern, translated once to an anchored PCRE2 expression.
///
/// Syntax (path-aware, like `fnmatch` with `FNM_PATHNAME`, plus `**`):
/// - `*` matches any run of characters except `/`;
/// - `**` matches any run of characters including `/`;
/// - `?` matches one character except `/`;
/// - `[abc]`, `[a-z]`, `[!abc]` / `[^abc]` match one character of (or not of) a set;
/// - `\x` matches `x` literally.
/// With `pathAware: false`, `*` and `?` also match `/`.
public struct GlobPattern: Sendable, CustomStringConvertible {
    public let glob: String
    public let regex: CompiledPattern

    public init(_ glob: String, pathAware: Bool = true, caseInsensitive: Bool = false) throws(PatternMatchingError) {
        self.glob = glob
        let translated = try Self.translate(glob, pathAware: pathAware)
        var options: PatternOptions = [.dotAll]
        if caseInsensitive { options.insert(.caseInsensitive) }
        do {
            self.regex = try CompiledPattern(translated, options: options)
        } catch {
            throw PatternMatchingError(.badGlob, pattern: glob, reason: error.reason, offset: 0)
        }
    }

    public var description: String { glob }

    /// True when the whole of `subject` matches the glob.
    public func matches(_ subject: String) -> Bool { regex.matches(subject) }

    /// The PCRE2 expression for a glob.
    static func translate(_ glob: String, pathAware: Bool) throws(PatternMatchingError) -> String {
        let chars = Array(glob.unicodeScalars)
        var out = "^"
        var i = 0
        let any = pathAware ? "[^/]" : "."
        func escapeLiteral(_ c: Unicode.Scalar) -> String {
            if "\\^$.|?*+()[]{}/-".unicodeScalars.contains(c) { return "\\" + String(c) }
            return String(c)
        }
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "*":
                if i + 1 < chars.count, chars[i + 1] == "*" {
                    out += ".*"
                    i += 2
                    while i < chars.count, chars[i] == "*" { i += 1 }
                    continue
                }
                out += any + "*"
            case "?":
                out += any
            case "\\":
                guard i + 1 < chars.count else {
                    throw PatternMatchingError(.badGlob, pattern: glob, reason: "trailing backslash", offset: i)
                }
                out += escapeLiteral(chars[i + 1])
                i += 1
            case "[":
                var j = i + 1
                var set = "["
                var negated = false
                if j < chars.count, chars[j] == "!" || chars[j] == "^" {
                    set += "^"
                    negated = true
                    j += 1
                }
                var first = true
                var closed = false
                while j < chars.count {
                    let d = chars[j]
                    if d == "]" && !first {
                        closed = true
                        break
                    }
                    if d == "\\", j + 1 < chars.count {
                        set += "\\" + String(chars[j + 1])
                        j += 2
                        first = false
                        continue
                    }
                    if d == "-" && !first && j + 1 < chars.count && chars[j + 1] != "]" {
                        set += "-"
                    } else if "\\^[]".unicodeScalars.contains(d) {
                        set += "\\" + String(d)
                    } else {
                        set += String(d)
                    }
                    first = false
                    j += 1
                }
                guard closed else {
                    throw PatternMatchingError(.badGlob, pattern: glob, reason: "unterminated character class", offset: i)
                }
                if negated && pathAware { set += "/" }
                out += set + "]"
                i = j
            default:
                out += escapeLiteral(c)
            }
            i += 1
        }
        return out + "$"
    }
}
