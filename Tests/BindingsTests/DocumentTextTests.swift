import Bindings
import Testing

/// `BindingLoader.documentTexts`: each binding of a multi-document file is stored and shown as its own document.
@Suite struct DocumentTextTests {
    @Test func documentsAreCutAtTheirMarkersKeepingComments() throws {
        let yaml = """
            # header: stays with the first document
            apiVersion: kubescape.io/v1
            kind: RuntimeRuleAlertBinding
            metadata: {name: one}
            spec:
              rules: [{ruleID: R1000}]
            ---
            # second
            apiVersion: kubescape.io/v1
            kind: RuntimeRuleAlertBinding
            metadata: {name: two}
            spec:
              rules: [{ruleID: R1007}]

            """
        let texts = BindingLoader.documentTexts(yaml)
        #expect(texts.count == 2)
        #expect(texts[0].hasPrefix("# header: stays with the first document\napiVersion"))
        #expect(texts[0].contains("name: one") && !texts[0].contains("name: two"))
        #expect(texts[1].hasPrefix("---\n# second\n") && texts[1].contains("name: two"))
        // Each text on its own parses to the same binding, numbered as the whole file numbers it.
        let whole = try BindingLoader.parse(yaml: yaml)
        #expect(try BindingLoader.parse(yaml: texts[1]).map(\.name) == [whole[1].name])
    }

    @Test func aLeadingMarkerAndAnEmptyTrailingDocumentKeepTheNumbering() {
        let texts = BindingLoader.documentTexts("---\na: 1\n---\nb: 2\n---\n")
        #expect(texts == ["---\na: 1\n", "---\nb: 2\n", "---\n"])
    }

    /// A directive between documents (after `...`) makes a piece that does not parse on its own; the documents
    /// are then written from their parsed form, comments dropped but content kept.
    @Test func piecesThatDoNotParseAloneFallBackToTheParsedDocuments() {
        let texts = BindingLoader.documentTexts("# gone\na: 1\n...\n%YAML 1.1\n---\nb: 2\n")
        #expect(texts.count == 2)
        #expect(texts[0].contains("a: 1") && !texts[0].contains("# gone"))
        #expect(texts[1].contains("b: 2") && !texts[1].contains("a: 1"))
    }
}
