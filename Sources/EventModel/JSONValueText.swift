extension JSONValue {
    /// Parses JSON text; nil when it is not JSON.
    public static func parse(_ bytes: some Collection<UInt8>) -> JSONValue? {
        try? JSONText.parse(Array(bytes))
    }

    /// Compact JSON text with object keys sorted (`JSONText.serialize`): whole numbers within ±2^53 are written as
    /// integers, so epoch milliseconds and counts survive a round trip unchanged.
    public var jsonText: String { JSONText.serialize(self) }

    /// The members of an object, or nil.
    public var objectValue: [String: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// A number as an integer (truncated), or nil.
    public var intValue: Int? { numberValue.map { Int($0) } }
}
