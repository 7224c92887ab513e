import EventModel
import Foundation
import Testing
import TestSupport
@testable import AlertSinks

@Suite struct CSVSinkTests {
    /// Parses RFC 4180 text into records, the way a spreadsheet would.
    static func parse(_ text: String) -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var quoted = false
        var chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if quoted {
                if c == "\"" {
                    if i + 1 < chars.count, chars[i + 1] == "\"" { field.append("\""); i += 1 } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                record.append(field); field = ""
            } else if c == "\r\n" || c == "\n" {
                record.append(field); field = ""; records.append(record); record = []
            } else { field.append(c) }
            i += 1
        }
        chars.removeAll()
        return records
    }

    @Test func writesHeaderOnceAndQuotesPerRFC4180() async throws {
        let dir = try TemporaryDirectory(prefix: "csv")
        defer { dir.remove() }
        let path = dir.file("alerts.csv")
        let sink = CSVSink(path: path)
        try await sink.deliver([AlertFixtures.alert(index: 0)])
        // A second sink instance on the same file (a restart) must not write the header again.
        try await CSVSink(path: path).deliver([AlertFixtures.alert(index: 1)])
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let records = Self.parse(text)
        #expect(records.count == 3)
        #expect(records[0] == CSVSink.columns)
        let row = Dictionary(uniqueKeysWithValues: zip(records[1].indices.map { CSVSink.columns[$0] }, records[1]))
        #expect(row["message"] == "Exec from /dev/shm: \"true\", pid 42")
        #expect(row["fix"] == "Remove the binary,\nthen rebuild the image")
        #expect(row["timestamp"] == "2023-11-14T22:13:20.123456Z")
        #expect(row["pod"] == "web.v2")
        #expect(row["rule_id"] == "R1000")
        #expect(row["severity"] == "high")
        #expect(row["pid"] == "42")
        #expect(records[2].last == "alert-1")
    }

    @Test func rotatesBySize() async throws {
        let dir = try TemporaryDirectory(prefix: "csv")
        defer { dir.remove() }
        let path = dir.file("alerts.csv")
        let sink = CSVSink(path: path, maxBytes: 2_000, keepFiles: 2)
        for index in 0..<40 { try await sink.deliver([AlertFixtures.alert(index: index)]) }
        let current = try String(contentsOfFile: path, encoding: .utf8)
        let rotated = try String(contentsOfFile: path + ".1", encoding: .utf8)
        #expect(FileManager.default.fileExists(atPath: path + ".2"))
        #expect(!FileManager.default.fileExists(atPath: path + ".3"))
        // Every file starts with its own header and stays under the bound.
        for text in [current, rotated] {
            #expect(Self.parse(text).first == CSVSink.columns)
            #expect(text.utf8.count <= 2_000)
        }
        #expect(Self.parse(current).last?.last == "alert-39")
    }

    @Test func unwritablePathNamesTheFile() async throws {
        let sink = CSVSink(path: "/nonexistent-dir/alerts.csv")
        await #expect(throws: AlertSinksError.self) { try await sink.deliver([AlertFixtures.alert()]) }
        do { try await sink.deliver([AlertFixtures.alert()]) } catch {
            #expect(error.description.contains("/nonexistent-dir/alerts.csv"))
        }
    }
}
