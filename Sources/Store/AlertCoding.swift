import Basics
import EventModel
import Foundation

/// The outbox's encoding of an alert: a version byte, then every field in declaration order — strings as
/// a varint length plus UTF-8, integers as varints, maps sorted by key.
///
/// Foundation's JSONEncoder/JSONDecoder cost tens of microseconds per alert on Linux, which made the outbox
/// (written on the ingest path, read by every sink) the slowest step of alert delivery. Rows written before
/// this format are JSON (they start with `{`) and still decode. `StoreTests` pins the field counts of
/// `Alert`, `ProcessInfo` and `ContainerRef`, so a field added there fails the build's tests until it is
/// added here too (and the version byte is bumped).
enum AlertCoding {
    /// 2 added `firstSeen`, `lastSeen` and `malware`; version 1 rows (without them) still decode.
    static let version: UInt8 = 2

    static func encode(_ alert: Alert) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + alert.message.utf8.count + alert.fix.utf8.count)
        out.append(version)
        string(alert.id, &out)
        string(alert.ruleID, &out)
        string(alert.ruleName, &out)
        string(alert.severity.rawValue, &out)
        varint(UInt64(alert.tags.count), &out)
        for tag in alert.tags { string(tag, &out) }
        string(alert.message, &out)
        string(alert.fix, &out)
        varint(alert.time, &out)
        string(alert.node, &out)
        string(alert.eventKind.rawValue, &out)
        let process = alert.process
        varint(UInt64(UInt32(bitPattern: process.pid)), &out)
        varint(UInt64(UInt32(bitPattern: process.ppid)), &out)
        varint(UInt64(UInt32(bitPattern: process.tid)), &out)
        varint(UInt64(process.uid), &out)
        varint(UInt64(process.gid), &out)
        string(process.comm, &out)
        string(process.exe, &out)
        string(process.cwd, &out)
        varint(process.mountNamespace, &out)
        if let container = alert.container {
            out.append(1)
            string(container.runtime, &out)
            string(container.containerID, &out)
            string(container.podUID, &out)
            string(container.podName, &out)
            string(container.namespace, &out)
            string(container.containerName, &out)
            string(container.image, &out)
            map(container.labels, &out)
            string(container.ownerKind, &out)
            string(container.ownerName, &out)
        } else {
            out.append(0)
        }
        map(alert.fields, &out)
        varint(UInt64(alert.count), &out)
        optionalTime(alert.firstSeen, &out)
        optionalTime(alert.lastSeen, &out)
        if let malware = alert.malware {
            out.append(1)
            string(malware.signature, &out)
            string(malware.path, &out)
            string(malware.sha256, &out)
            varint(malware.sizeBytes, &out)
            out.append(malware.inImage ? 1 : 0)
        } else {
            out.append(0)
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) throws(StoreError) -> Alert {
        guard let first = bytes.first else { throw StoreError(.corrupt, "an outbox entry is empty") }
        if first == UInt8(ascii: "{") { return try decodeJSON(bytes) }
        guard first == version || first == 1 else {
            throw StoreError(.corrupt, "an outbox entry has unknown format version \(first)")
        }
        var reader = Reader(bytes: bytes, offset: 1)
        do {
            let id = try reader.string()
            let ruleID = try reader.string()
            let ruleName = try reader.string()
            let severityName = try reader.string()
            guard let severity = Severity(rawValue: severityName) else { throw Reader.Failure() }
            var tags: [String] = []
            for _ in 0..<(try reader.count()) { tags.append(try reader.string()) }
            let message = try reader.string()
            let fix = try reader.string()
            let time = try reader.varint()
            let node = try reader.string()
            guard let eventKind = EventKind(rawValue: try reader.string()) else { throw Reader.Failure() }
            let process = EventModel.ProcessInfo(
                pid: Int32(bitPattern: UInt32(truncatingIfNeeded: try reader.varint())),
                ppid: Int32(bitPattern: UInt32(truncatingIfNeeded: try reader.varint())),
                tid: Int32(bitPattern: UInt32(truncatingIfNeeded: try reader.varint())),
                uid: UInt32(truncatingIfNeeded: try reader.varint()),
                gid: UInt32(truncatingIfNeeded: try reader.varint()),
                comm: try reader.string(), exe: try reader.string(), cwd: try reader.string(),
                mountNamespace: try reader.varint())
            var container: ContainerRef?
            if try reader.byte() == 1 {
                container = ContainerRef(
                    runtime: try reader.string(), containerID: try reader.string(), podUID: try reader.string(),
                    podName: try reader.string(), namespace: try reader.string(), containerName: try reader.string(),
                    image: try reader.string(), labels: try reader.map(), ownerKind: try reader.string(),
                    ownerName: try reader.string())
            }
            let fields = try reader.map()
            let count = UInt32(truncatingIfNeeded: try reader.varint())
            var alert = Alert(
                id: id, ruleID: ruleID, ruleName: ruleName, severity: severity, tags: tags, message: message, fix: fix,
                time: time, node: node, eventKind: eventKind, process: process, container: container, fields: fields,
                count: count)
            if first >= 2 {
                alert.firstSeen = try reader.optionalTime()
                alert.lastSeen = try reader.optionalTime()
                if try reader.byte() == 1 {
                    alert.malware = MalwareDetails(
                        signature: try reader.string(), path: try reader.string(), sha256: try reader.string(),
                        sizeBytes: try reader.varint(), inImage: try reader.byte() == 1)
                }
            }
            return alert
        } catch {
            throw StoreError(.corrupt, "an outbox entry is not a valid alert (truncated or bad field)")
        }
    }

    private static func decodeJSON(_ bytes: [UInt8]) throws(StoreError) -> Alert {
        do {
            return try JSONDecoder().decode(Alert.self, from: Data(bytes))
        } catch {
            throw StoreError(.corrupt, "an outbox entry is not a valid alert", cause: .error(error))
        }
    }

    private static func varint(_ value: UInt64, _ out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    /// 0 for none, else 1 and the time.
    private static func optionalTime(_ value: EpochNanoseconds?, _ out: inout [UInt8]) {
        guard let value else { return out.append(0) }
        out.append(1)
        varint(value, &out)
    }

    private static func string(_ value: String, _ out: inout [UInt8]) {
        // One memcpy from the string's contiguous UTF-8 (appending `utf8` goes byte by byte).
        var value = value
        value.withUTF8 { bytes in
            varint(UInt64(bytes.count), &out)
            out.append(contentsOf: bytes)
        }
    }

    private static func map(_ value: [String: String], _ out: inout [UInt8]) {
        varint(UInt64(value.count), &out)
        for (key, element) in value.sorted(by: { $0.key < $1.key }) {
            string(key, &out)
            string(element, &out)
        }
    }

    struct Reader {
        struct Failure: Error {}
        let bytes: [UInt8]
        var offset: Int

        mutating func byte() throws(Failure) -> UInt8 {
            guard offset < bytes.count else { throw Failure() }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func varint() throws(Failure) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let next = try byte()
                guard shift < 64 else { throw Failure() }
                result |= UInt64(next & 0x7F) << shift
                if next < 0x80 { return result }
                shift += 7
            }
        }

        mutating func optionalTime() throws(Failure) -> EpochNanoseconds? {
            try byte() == 0 ? nil : try varint()
        }

        mutating func count() throws(Failure) -> Int {
            let value = try varint()
            guard value <= UInt64(bytes.count - offset) else { throw Failure() }
            return Int(value)
        }

        mutating func string() throws(Failure) -> String {
            let length = try count()
            defer { offset += length }
            // Through a buffer pointer: decoding an ArraySlice takes String's generic, much slower path.
            return bytes.withUnsafeBufferPointer { buffer in
                String(decoding: UnsafeBufferPointer(rebasing: buffer[offset..<offset + length]), as: UTF8.self)
            }
        }

        mutating func map() throws(Failure) -> [String: String] {
            var result: [String: String] = [:]
            for _ in 0..<(try count()) {
                let key = try string()
                result[key] = try string()
            }
            return result
        }
    }
}
