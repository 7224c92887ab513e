/// Matcher language: tokens, syntax tree and parser. Compilation to closures is in `Compiler.swift`.

enum ComparisonOperator: String, Sendable, CaseIterable {
    case eq = "="
    case ne = "!="
    case lt = "<"
    case le = "<="
    case gt = ">"
    case ge = ">="
    case `in`
    case contains
    case icontains
    case startswith
    case endswith
    case glob
    case regex
    case exists

    static let wordOperators: [String: ComparisonOperator] = [
        "in": .in, "contains": .contains, "icontains": .icontains, "startswith": .startswith,
        "endswith": .endswith, "glob": .glob, "regex": .regex, "exists": .exists,
    ]
}

struct Token: Sendable {
    enum Kind: Sendable, Equatable {
        case word
        case quoted
        case open
        case close
        case comma
        case symbol  // = == != < <= > >=
    }
    let kind: Kind
    let text: String
    /// Character offset in the condition text (0-based).
    let offset: Int
}

/// A value on the right of an operator.
enum Operand: Sendable {
    /// One literal or name: quoted text is always literal; an unquoted word may name a list or `param.X`.
    case single(String, quoted: Bool)
    /// `(a, b, "c")`: unquoted items may name lists or parameters, which expand in place.
    case list([(text: String, quoted: Bool)])
}

indirect enum Expr: Sendable {
    case and([Expr])
    case or([Expr])
    case not(Expr)
    case macro(String, offset: Int)
    case compare(field: String, op: ComparisonOperator, negated: Bool, operand: Operand?, offset: Int)
}

struct ConditionSyntaxError: Error {
    let reason: String
    let offset: Int
}

enum ConditionParser {
    static func tokenize(_ text: String) throws(ConditionSyntaxError) -> [Token] {
        let chars = Array(text)
        var tokens: [Token] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace {
                i += 1
                continue
            }
            let start = i
            switch c {
            case "(":
                tokens.append(Token(kind: .open, text: "(", offset: i))
                i += 1
            case ")":
                tokens.append(Token(kind: .close, text: ")", offset: i))
                i += 1
            case ",":
                tokens.append(Token(kind: .comma, text: ",", offset: i))
                i += 1
            case "=", "<", ">":
                if i + 1 < chars.count, chars[i + 1] == "=" {
                    tokens.append(Token(kind: .symbol, text: c == "=" ? "=" : String(c) + "=", offset: i))
                    i += 2
                } else {
                    tokens.append(Token(kind: .symbol, text: String(c), offset: i))
                    i += 1
                }
            case "!" where i + 1 < chars.count && chars[i + 1] == "=":
                tokens.append(Token(kind: .symbol, text: "!=", offset: i))
                i += 2
            case "\"", "'":
                var value = ""
                i += 1
                var closed = false
                while i < chars.count {
                    let d = chars[i]
                    if d == "\\", i + 1 < chars.count {
                        let e = chars[i + 1]
                        switch e {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        default: value.append(e)
                        }
                        i += 2
                        continue
                    }
                    if d == c {
                        closed = true
                        i += 1
                        break
                    }
                    value.append(d)
                    i += 1
                }
                guard closed else { throw ConditionSyntaxError(reason: "unterminated string", offset: start) }
                tokens.append(Token(kind: .quoted, text: value, offset: start))
            default:
                var word = ""
                var depth = 0
                while i < chars.count {
                    let d = chars[i]
                    if depth > 0 {
                        if d == "]" { depth -= 1 }
                        if d.isWhitespace { break }
                        word.append(d)
                        i += 1
                        continue
                    }
                    if d.isWhitespace || d == "(" || d == ")" || d == "," || d == "=" || d == "<" || d == ">"
                        || d == "\"" || d == "'"
                    {
                        break
                    }
                    if d == "!", i + 1 < chars.count, chars[i + 1] == "=" { break }
                    if d == "[" { depth += 1 }
                    word.append(d)
                    i += 1
                }
                tokens.append(Token(kind: .word, text: word, offset: start))
            }
        }
        return tokens
    }

    static func parse(_ text: String) throws(ConditionSyntaxError) -> Expr {
        var parser = Parser(tokens: try tokenize(text), length: text.count)
        let expr = try parser.parseOr()
        if let extra = parser.peek {
            throw ConditionSyntaxError(reason: "unexpected '\(extra.text)'", offset: extra.offset)
        }
        return expr
    }

    struct Parser {
        let tokens: [Token]
        let length: Int
        var position = 0

        var peek: Token? { position < tokens.count ? tokens[position] : nil }
        func peek(_ ahead: Int) -> Token? { position + ahead < tokens.count ? tokens[position + ahead] : nil }

        mutating func next() -> Token? {
            defer { position += 1 }
            return peek
        }

        func isKeyword(_ token: Token?, _ word: String) -> Bool { token?.kind == .word && token?.text == word }

        mutating func parseOr() throws(ConditionSyntaxError) -> Expr {
            var terms = [try parseAnd()]
            while isKeyword(peek, "or") {
                position += 1
                terms.append(try parseAnd())
            }
            return terms.count == 1 ? terms[0] : .or(terms)
        }

        mutating func parseAnd() throws(ConditionSyntaxError) -> Expr {
            var terms = [try parseNot()]
            while isKeyword(peek, "and") {
                position += 1
                terms.append(try parseNot())
            }
            return terms.count == 1 ? terms[0] : .and(terms)
        }

        mutating func parseNot() throws(ConditionSyntaxError) -> Expr {
            if isKeyword(peek, "not") {
                position += 1
                return .not(try parseNot())
            }
            return try parsePrimary()
        }

        func operatorAt(_ ahead: Int) -> ComparisonOperator? {
            guard let token = peek(ahead) else { return nil }
            if token.kind == .symbol { return ComparisonOperator(rawValue: token.text) }
            if token.kind == .word { return ComparisonOperator.wordOperators[token.text] }
            return nil
        }

        mutating func parsePrimary() throws(ConditionSyntaxError) -> Expr {
            guard let token = next() else {
                throw ConditionSyntaxError(reason: "unexpected end of condition", offset: length)
            }
            switch token.kind {
            case .open:
                let inner = try parseOr()
                guard let close = next(), close.kind == .close else {
                    throw ConditionSyntaxError(reason: "missing ')'", offset: peek(-1)?.offset ?? length)
                }
                _ = close
                return inner
            case .word:
                if ["and", "or"].contains(token.text) {
                    throw ConditionSyntaxError(reason: "'\(token.text)' needs an expression before it", offset: token.offset)
                }
                var negated = false
                if isKeyword(peek, "not"), let op = operatorAt(1), op != .exists {
                    negated = true
                    position += 1
                }
                guard let op = operatorAt(0) else {
                    return .macro(token.text, offset: token.offset)
                }
                position += 1
                if op == .exists {
                    return .compare(field: token.text, op: .exists, negated: negated, operand: nil, offset: token.offset)
                }
                let operand = try parseOperand(after: op)
                return .compare(field: token.text, op: op, negated: negated, operand: operand, offset: token.offset)
            default:
                throw ConditionSyntaxError(reason: "unexpected '\(token.text)'", offset: token.offset)
            }
        }

        mutating func parseOperand(after op: ComparisonOperator) throws(ConditionSyntaxError) -> Operand {
            guard let token = next() else {
                throw ConditionSyntaxError(reason: "'\(op.rawValue)' needs a value", offset: length)
            }
            switch token.kind {
            case .word: return .single(token.text, quoted: false)
            case .quoted: return .single(token.text, quoted: true)
            case .open:
                var items: [(text: String, quoted: Bool)] = []
                if peek?.kind == .close {
                    position += 1
                    return .list(items)
                }
                while true {
                    guard let item = next(), item.kind == .word || item.kind == .quoted else {
                        throw ConditionSyntaxError(reason: "expected a list item", offset: peek(-1)?.offset ?? length)
                    }
                    items.append((item.text, item.kind == .quoted))
                    guard let separator = next() else {
                        throw ConditionSyntaxError(reason: "missing ')' after list", offset: length)
                    }
                    if separator.kind == .close { break }
                    guard separator.kind == .comma else {
                        throw ConditionSyntaxError(
                            reason: "expected ',' or ')' in list, found '\(separator.text)'", offset: separator.offset)
                    }
                }
                return .list(items)
            default:
                throw ConditionSyntaxError(reason: "'\(op.rawValue)' needs a value, found '\(token.text)'", offset: token.offset)
            }
        }
    }
}

/// `%field` references in an output template; `%%` is a literal percent sign.
enum TemplateSegment: Sendable {
    case text(String)
    case field(String)
}

func parseTemplate(_ template: String) -> [TemplateSegment] {
    var segments: [TemplateSegment] = []
    var text = ""
    let chars = Array(template)
    var i = 0
    func isFieldChar(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == "." }
    while i < chars.count {
        let c = chars[i]
        if c == "%", i + 1 < chars.count {
            if chars[i + 1] == "%" {
                text.append("%")
                i += 2
                continue
            }
            var j = i + 1
            var name = ""
            while j < chars.count, isFieldChar(chars[j]) {
                name.append(chars[j])
                j += 1
            }
            if j < chars.count, chars[j] == "[", let close = chars[j...].firstIndex(of: "]") {
                name += String(chars[j...close])
                j = close + 1
            }
            // A sentence-ending dot is not part of the name.
            while name.hasSuffix(".") {
                name.removeLast()
                j -= 1
            }
            if name.isEmpty || !(name.first!.isLetter) {
                text.append(c)
                i += 1
                continue
            }
            if !text.isEmpty { segments.append(.text(text)) }
            text = ""
            segments.append(.field(name))
            i = j
            continue
        }
        text.append(c)
        i += 1
    }
    if !text.isEmpty { segments.append(.text(text)) }
    return segments
}
