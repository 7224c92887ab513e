import Basics
import EventModel
import Testing

// The audit path indexes each document (JSONIndex) instead of building a tree. What a user sees must not change:
// the same documents are accepted with the same values, the same ones are refused with the same message.

/// The tree parser's verdict and the index's, side by side.
private func bothParse(_ bytes: [UInt8]) -> (tree: Result<JSONValue, JSONText.ParseError>, index: Result<JSONValue, JSONText.ParseError>) {
    let tree: Result<JSONValue, JSONText.ParseError>
    do throws(JSONText.ParseError) { tree = .success(try JSONText.parse(bytes)) } catch { tree = .failure(error) }
    let index: Result<JSONValue, JSONText.ParseError>
    do throws(JSONText.ParseError) { index = .success(try JSONIndex(bytes: bytes).materialize()) } catch { index = .failure(error) }
    return (tree, index)
}

@Suite struct JSONIndexTests {
    static let wellFormed: [String] = [
        #"{"kind":"Event","verb":"get","user":{"username":"alice","groups":["a","b"]},"code":403}"#,
        #"[]"#, #"{}"#, #"  {"a" : [ 1 , 2 , {"b":null} ] }  "#, #"true"#, #"null"#, #""just text""#,
        #"{"esc":"line\nbreak \"quoted\" back\\slash \/ tab\t \u00e9 \ud83d\ude00","plain":"héllo 😀"}"#,
        #"[0,-0,1.5,-2.5E-3,1e3,12345678901234567890,9007199254740993,0.1]"#,
        #"{"dup":1,"dup":2}"#, #"{"a\u0062":"escaped name"}"#, #"{"":"empty name"}"#,
    ]

    @Test(arguments: wellFormed)
    func sameValueAsTheTreeParser(_ text: String) throws {
        let (tree, index) = bothParse(Array(text.utf8))
        #expect(try index.get() == tree.get())
    }

    static let malformed: [String] = [
        "", "   ", #"{"a":"#, #"{"a":"b"#, #"{"a":"b\"#, "[1,2", #"{"a" 1}"#, #"{"a":1,}"#, #"{1:2}"#, "[1 2]",
        #"{"a":1} x"#, "01", "-", "1.", "1e", "1e+", "+1", "nul", "tru", "[fals]", #""\x""#, #""\u12G4""#,
        #""\ud800""#, #""\udc00x""#, #""\ud800\u0041""#, "\"a\tb\"", "\"a\u{1}\"", "[\"\\u00", "{\"a\":[}",
    ]

    @Test(arguments: malformed)
    func refusedWithTheTreeParsersReasonAndOffset(_ text: String) {
        let (tree, index) = bothParse(Array(text.utf8))
        guard case .failure(let expected) = tree, case .failure(let actual) = index else {
            Issue.record("'\(text)': tree \(tree), index \(index)")
            return
        }
        #expect(actual == expected, "'\(text)'")
        #expect(!actual.description.isEmpty)
    }

    @Test func truncatedAtEveryByteIsAnErrorNotACrash() {
        let text = Array(Self.wellFormed[7].utf8)
        for length in 0..<text.count {
            let (tree, index) = bothParse(Array(text[..<length]))
            if case .success = index { Issue.record("prefix of \(length) bytes accepted") }
            if case .failure(let expected) = tree, case .failure(let actual) = index { #expect(actual == expected) }
        }
    }

    @Test func deepNestingIsRefusedLikeTheTree() {
        let deep = Array(String(repeating: "[", count: 5000).utf8) + Array(String(repeating: "]", count: 5000).utf8)
        let (tree, index) = bothParse(deep)
        guard case .failure(let error) = index else {
            Issue.record("5000 levels accepted")
            return
        }
        #expect(error.reason.contains("nesting deeper than"))
        #expect(tree.map { _ in 0 } == index.map { _ in 0 })
        let allowed = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: Never.self) { try JSONIndex(allowed) }
    }

    @Test func invalidUTF8InAStringIsRepairedAsTheTreeDoes() throws {
        // 0xFF never occurs in UTF-8; 0xC3 alone is a truncated sequence.
        let bytes: [UInt8] = Array(#"{"name":"a"#.utf8) + [0xFF, 0xC3] + Array(#"b"}"#.utf8)
        let (tree, index) = bothParse(bytes)
        #expect(try index.get() == tree.get())
        #expect(try index.get()["name"]?.stringValue == "a\u{FFFD}\u{FFFD}b")
    }

    @Test func pathsResolveWithoutTheTree() throws {
        let index = try JSONIndex(#"{"user":{"username":"alice","groups":["dev","ops"]},"dup":1,"dup":"last","n":-2.5e1}"#)
        let user = try #require(index.member(JSONIndex.root, "user"))
        #expect(index.member(user, "username").flatMap { index.string($0) } == "alice")
        #expect(index.stringEquals(try #require(index.member(user, "username")), "alice"))
        #expect(!index.stringEquals(try #require(index.member(user, "username")), "alicia"))
        let groups = try #require(index.member(user, "groups"))
        #expect(index.element(groups, 1).flatMap { index.string($0) } == "ops")
        #expect(index.element(groups, 2) == nil)
        #expect(index.elements(groups).count == 2)
        // A repeated name: the last one wins, as in the tree.
        #expect(index.member(JSONIndex.root, "dup").flatMap { index.string($0) } == "last")
        #expect(index.member(JSONIndex.root, "n").flatMap { index.number($0) } == -25)
        #expect(index.member(JSONIndex.root, "missing") == nil)
        #expect(index.member(groups, "user") == nil)  // not an object
    }
}
