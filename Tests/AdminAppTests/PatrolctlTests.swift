import Foundation
import Testing

/// The repository root, from this file's path: the commands run there, so `--rules` defaults to its `rules/`.
private let repoRoot: String = {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

private let bindingFixtures = repoRoot + "/Tests/BindingsTests/Fixtures"

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the built `patrolctl` (from `$PATROL_BIN`, else beside the test bundle, i.e. `.build/debug`).
private func patrolctl(_ arguments: String...) throws -> Run { try patrolctl(arguments) }

private func patrolctl(_ arguments: [String]) throws -> Run {
    let directory =
        ProcessInfo.processInfo.environment["PATROL_BIN"].flatMap { $0.isEmpty ? nil : $0 }
        ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("patrolctl-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let out = scratch.appendingPathComponent("out")
    let err = scratch.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: directory + "/patrolctl")
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return Run(
        status: process.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8),
        stderr: try String(contentsOf: err, encoding: .utf8))
}

@Suite struct PatrolctlTests {
    @Test func helpAtEveryLevel() throws {
        for command in [
            [], ["bindings"], ["bindings", "validate"], ["rules"], ["rules", "list"], ["rules", "show"],
            ["rules", "validate"],
        ] {
            let run = try patrolctl(command + ["--help"])
            #expect(run.status == 0, "\(command)")
            #expect(run.stdout.contains("USAGE: patrolctl"), "\(command)")
        }
        let top = try patrolctl("--help")
        #expect(top.stdout.contains("bindings") && top.stdout.contains("rules"))
    }

    @Test func usageErrorsExitTwo() throws {
        let unknown = try patrolctl("rules", "lisst")
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("lisst"))
        let missing = try patrolctl("bindings", "validate")
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("-f"))
        #expect(try patrolctl("rules", "list", "-o", "xml").status == 2)
    }

    @Test func rulesListTableJSONAndYAML() throws {
        let table = try patrolctl("rules", "list")
        #expect(table.status == 0)
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("ID") == true)
        #expect(
            lines.contains { $0.hasPrefix("R1003") && $0.contains("Malicious SSH connection") && $0.contains("high") })

        let json = try patrolctl("rules", "list", "-o", "json")
        #expect(json.status == 0)
        let decoded = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        let r1003 = try #require(decoded?.first { $0["id"] as? String == "R1003" })
        #expect(r1003["severity"] as? String == "high")
        #expect((r1003["parameters"] as? [String: Any])?["allowedPorts"] as? [String] == ["22"])

        let yaml = try patrolctl("rules", "list", "-o", "yaml")
        #expect(yaml.status == 0)
        #expect(yaml.stdout.contains("- id: R1003"))
    }

    @Test func rulesShow() throws {
        let shown = try patrolctl("rules", "show", "R1003")
        #expect(shown.status == 0)
        #expect(shown.stdout.contains("Malicious SSH connection"))
        #expect(shown.stdout.contains("allowedPorts: [22]"))
        #expect(shown.stdout.contains("rules/runtime-signatures.yaml:"))
        let json = try patrolctl("rules", "show", "R1003", "-o", "json")
        let decoded = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(decoded?["id"] as? String == "R1003")
        #expect((decoded?["sequence"] as? [String: Any])?["by"] as? [String] == ["proc.pid"])

        let missing = try patrolctl("rules", "show", "r1003")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no rule with id 'r1003' (did you mean 'R1003'?)"))
    }

    @Test func rulesValidate() throws {
        let good = try patrolctl("rules", "validate", "-f", "rules/")
        #expect(good.status == 0)
        #expect(good.stdout.hasPrefix("valid: "))

        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "bad-rules-\(UUID().uuidString).yaml")
        try """
        - rule:
            id: X1
            name: Broken
            severity: high
            events: [exec]
            condition: proc.nmae = sh
            output: x
        """.write(to: scratch, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let bad = try patrolctl("rules", "validate", "-f", scratch.path)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("unknown field 'proc.nmae' (did you mean 'proc.name'?)"))
        #expect(bad.stdout.isEmpty)
        #expect(try patrolctl("rules", "validate", "-f", "/no/such/file.yaml").status == 1)
    }

    @Test func bindingsValidate() throws {
        let good = try patrolctl(
            "bindings", "validate", "-f", bindingFixtures + "/valid", "-f", "rules/bindings/default.yaml")
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.contains("miners-critical"))
        #expect(good.stdout.contains("patrol-default"))
        #expect(good.stdout.contains("billing"))

        let json = try patrolctl("bindings", "validate", "-f", bindingFixtures + "/valid/merge.yaml", "-o", "json")
        #expect(json.status == 0)
        let decoded = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        #expect(decoded?.map { $0["name"] as? String } == ["a-team-rules", "b-security-baseline"])

        let bad = try patrolctl("bindings", "validate", "-f", bindingFixtures + "/invalid/multi-document.yaml")
        #expect(bad.status == 1)
        #expect(bad.stdout.isEmpty)
        #expect(bad.stderr.contains("document 2 (second): spec.rules[1]: a rule entry has exactly one of ruleName"))
        #expect(bad.stderr.contains("document 3 (third): spec.rules[0].severity: bad severity 'urgent'"))
        #expect(bad.stderr.contains("2 problems; nothing applied"))

        #expect(try patrolctl("bindings", "validate", "-f", "/no/such/dir").status == 1)
    }
}
