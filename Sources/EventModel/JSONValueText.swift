import Foundation

extension JSONValue {
    /// Parses JSON text; nil when it is not JSON.
    public static func parse(_ bytes: some Collection<UInt8>) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    /// Compact JSON text with object keys sorted. Whole numbers that fit a double exactly are written
    /// as integers, so epoch milliseconds and counts survive a round trip unchanged (`JSONEncoder`
    /// would be free to write them in exponent form).
    public var jsonText: String {
        var output = ""
        Self.render(self, into: &output)
        return output
    }

    static func render(_ value: JSONValue, into output: inout String) {
        switch value {
        case .null: output += "null"
        case .bool(let flag): output += flag ? "true" : "false"
        case .number(let number):
            if number.isFinite, number == number.rounded(), abs(number) < 9_007_199_254_740_992 {
                output += String(Int64(number))
            } else if number.isFinite {
                output += "\(number)"
            } else {
                output += "null"
            }
        case .string(let text): quote(text, into: &output)
        case .array(let items):
            output += "["
            for (index, item) in items.enumerated() {
                if index > 0 { output += "," }
                render(item, into: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { output += "," }
                quote(key, into: &output)
                output += ":"
                render(members[key]!, into: &output)
            }
            output += "}"
        }
    }

    static func quote(_ text: String, into output: inout String) {
        output += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }

    /// The members of an object, or nil.
    public var objectValue: [String: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// A number as an integer (truncated), or nil.
    public var intValue: Int? { numberValue.map { Int($0) } }
}
