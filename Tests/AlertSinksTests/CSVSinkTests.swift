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

    static func malwareAlert(index: Int) -> Alert {
        var alert = AlertFixtures.alert(index: index, ruleID: "PatrolMalwareDetected", message: "Eicar-Signature found")
        alert.malware = MalwareDetails(
            signature: "Eicar-Signature", path: "/var/lib/containers/x/merged/tmp/eicar, \"copy\".com",
            sha256: "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f", sizeBytes: 68, inImage: false)
        return alert
    }

    @Test func malwareAlertsGoToTheirOwnFileWithTheirOwnColumnsAndBothRotate() async throws {
        let dir = try TemporaryDirectory(prefix: "csv")
        defer { dir.remove() }
        let rules = dir.file("alerts.csv")
        let malware = dir.file("malware.csv")
        let sink = CSVSink(path: rules, malwarePath: malware, maxBytes: 3_000, keepFiles: 1)
        for index in 0..<20 {
            try await sink.deliver([AlertFixtures.alert(index: index), Self.malwareAlert(index: 100 + index)])
        }
        let malwareRecords = Self.parse(try String(contentsOfFile: malware, encoding: .utf8))
        #expect(malwareRecords.first == CSVSink.malwareColumns)
        let row = Dictionary(uniqueKeysWithValues: zip(CSVSink.malwareColumns, try #require(malwareRecords.last)))
        #expect(row["signature"] == "Eicar-Signature")
        #expect(row["path"] == "/var/lib/containers/x/merged/tmp/eicar, \"copy\".com")
        #expect(row["sha256"] == "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f")
        #expect(row["size_bytes"] == "68")
        #expect(row["in_image"] == "false")
        #expect(row["image"] == "busybox:1.36")
        #expect(row["container_id"] == "abc123")
        #expect(row["alert_id"] == "alert-119")
        // The rule file has only rule alerts, and each file rotated on its own, keeping its header.
        let ruleText = try String(contentsOfFile: rules, encoding: .utf8)
        #expect(!ruleText.contains("PatrolMalwareDetected"))
        for path in [rules, malware] {
            #expect(FileManager.default.fileExists(atPath: path + ".1"))
            #expect(!FileManager.default.fileExists(atPath: path + ".2"))
            let rotated = Self.parse(try String(contentsOfFile: path + ".1", encoding: .utf8))
            #expect(rotated.first == (path == rules ? CSVSink.columns : CSVSink.malwareColumns))
        }
        // Without a malware file, malware alerts stay in the rule file rather than being dropped.
        let single = dir.file("single.csv")
        try await CSVSink(path: single).deliver([Self.malwareAlert(index: 1)])
        #expect(Self.parse(try String(contentsOfFile: single, encoding: .utf8)).count == 2)
    }
}
