import ArgumentParser
import Basics
import Foundation
import Yams

/// `-o table|json|yaml`.
public enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json, yaml
}

/// A small ordered document, rendered as JSON or YAML with keys in the order given (not sorted), so the
/// machine-readable output reads like the table.
indirect enum OutputValue: Sendable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case list([OutputValue])
    case object([(String, OutputValue)])

    var json: String {
        var text = ""
        writeJSON(into: &text, indent: 0)
        return text
    }

    private func writeJSON(into text: inout String, indent: Int) {
        let pad = String(repeating: "  ", count: indent + 1)
        let close = String(repeating: "  ", count: indent)
        switch self {
        case .string(let value): JSONWriter.appendQuoted(value, to: &text)
        case .int(let value): text += String(value)
        case .bool(let value): text += value ? "true" : "false"
        case .list(let items):
            if items.isEmpty {
                text += "[]"
                return
            }
            text += "[\n"
            for (index, item) in items.enumerated() {
                text += pad
                item.writeJSON(into: &text, indent: indent + 1)
                text += index == items.count - 1 ? "\n" : ",\n"
            }
            text += close + "]"
        case .object(let members):
            if members.isEmpty {
                text += "{}"
                return
            }
            text += "{\n"
            for (index, (key, value)) in members.enumerated() {
                text += pad
                JSONWriter.appendQuoted(key, to: &text)
                text += ": "
                value.writeJSON(into: &text, indent: indent + 1)
                text += index == members.count - 1 ? "\n" : ",\n"
            }
            text += close + "}"
        }
    }

    var yamlNode: Node {
        switch self {
        case .string(let value):
            // Quote text that YAML would otherwise read back as a number, bool or null (a port "22", "true").
            let plain = Node(value)
            let style: Node.Scalar.Style = Resolver.default.resolveTag(of: plain) == .str ? .any : .doubleQuoted
            return Node(value, Tag(.str), style)
        case .int(let value): return Node(String(value), Tag(.int))
        case .bool(let value): return Node(value ? "true" : "false", Tag(.bool))
        case .list(let items): return Node(items.map(\.yamlNode))
        case .object(let members): return Node(members.map { (Node($0.0, Tag(.str)), $0.1.yamlNode) })
        }
    }

    var yaml: String {
        (try? Yams.serialize(node: yamlNode, width: -1, allowUnicode: true)) ?? ""
    }
}

/// Fixed-width columns; the last column is not padded.
struct Table {
    var header: [String]
    var rows: [[String]] = []

    var text: String {
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        var lines: [String] = []
        for row in [header] + rows {
            var line = ""
            for (index, cell) in row.enumerated() {
                if index == row.count - 1 {
                    line += cell
                } else {
                    line += cell + String(repeating: " ", count: widths[index] - cell.count + 3)
                }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}

enum Console {
    static func out(_ text: String) {
        print(text)
    }

    /// Errors and diagnostics go to stderr, so `-o json` output stays parseable.
    static func error(_ text: String) {
        var line = text
        if !line.hasSuffix("\n") { line += "\n" }
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func render(_ format: OutputFormat, table: () -> Table, value: () -> OutputValue) {
        switch format {
        case .table: out(table().text)
        case .json: out(value().json)
        case .yaml: out(value().yaml.hasSuffix("\n") ? String(value().yaml.dropLast()) : value().yaml)
        }
    }
}

/// Input was read and found invalid; the details are already on stderr. Exit status 1.
struct InvalidInput: Error {}
