/// Builds compact JSON text with members in the order written, for output whose layout users read and
/// diff (alert lines, documents). Faster than JSONEncoder and keeps key order stable.
public struct JSONWriter: Sendable {
    public private(set) var text = ""
    private var needsComma: [Bool] = [false]

    public init() {}

    private mutating func separate() {
        if needsComma[needsComma.count - 1] { text.append(",") }
        needsComma[needsComma.count - 1] = true
    }

    private mutating func key(_ name: String) {
        separate()
        Self.appendQuoted(name, to: &text)
        text.append(":")
    }

    public mutating func beginObject(_ name: String? = nil) {
        if let name { key(name) } else { separate() }
        text.append("{")
        needsComma.append(false)
    }

    public mutating func endObject() {
        needsComma.removeLast()
        text.append("}")
    }

    public mutating func beginArray(_ name: String? = nil) {
        if let name { key(name) } else { separate() }
        text.append("[")
        needsComma.append(false)
    }

    public mutating func endArray() {
        needsComma.removeLast()
        text.append("]")
    }

    public mutating func string(_ name: String, _ value: String) {
        key(name)
        Self.appendQuoted(value, to: &text)
    }

    public mutating func element(_ value: String) {
        separate()
        Self.appendQuoted(value, to: &text)
    }

    public mutating func number<N: BinaryInteger>(_ name: String, _ value: N) {
        key(name)
        text.append(String(value))
    }

    public mutating func bool(_ name: String, _ value: Bool) {
        key(name)
        text.append(value ? "true" : "false")
    }

    /// Inserts already-encoded JSON as a member.
    public mutating func raw(_ name: String, _ json: String) {
        key(name)
        text.append(json)
    }

    public static func appendQuoted(_ value: String, to output: inout String) {
        output.append("\"")
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output.append("\\\"")
            case "\\": output.append("\\\\")
            case "\n": output.append("\\n")
            case "\r": output.append("\\r")
            case "\t": output.append("\\t")
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            default: output.unicodeScalars.append(scalar)
            }
        }
        output.append("\"")
    }
}
