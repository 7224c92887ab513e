import EventModel
import Testing

@testable import WireFormat

@Suite("Admin messages")
struct AdminMessagesTests {
    @Test("every admin message round-trips")
    func roundTrips() throws {
        let list = AdminListRequest(namespace: "shop", filter: "rule=R0001,since=5", limit: 7, pageToken: "p")
        #expect(try WireCodec.decodeAdminListRequest(WireCodec.encode(list)) == list)

        let table = AdminListReply(
            table: AdminTable(columns: ["A", "B"], rows: [["1", "ü"], ["", "x y"]]), nextPageToken: "n")
        #expect(try WireCodec.decodeAdminListReply(WireCodec.encode(table)) == table)
        let empty = AdminListReply(table: AdminTable(columns: []))
        #expect(try WireCodec.decodeAdminListReply(WireCodec.encode(empty)) == empty)

        let get = AdminGetRequest(name: "shop/Deployment/web", namespace: "", format: .json)
        #expect(try WireCodec.decodeAdminGetRequest(WireCodec.encode(get)) == get)
        let document = AdminDocument(name: "n", namespace: "ns", format: .yaml, body: "a: 1\n")
        #expect(try WireCodec.decodeAdminGetReply(WireCodec.encodeGetReply(document)) == document)

        let apply = AdminApplyRequest(documents: [document, AdminDocument(body: "{}")], dryRun: true)
        #expect(try WireCodec.decodeAdminApplyRequest(WireCodec.encode(apply)) == apply)
        let results = [
            AdminApplyResult(name: "a", namespace: "n", action: .created),
            AdminApplyResult(name: "b", action: .rejected, message: "f.yaml:3: bad"),
        ]
        #expect(try WireCodec.decodeAdminApplyReply(WireCodec.encode(results)) == results)

        let delete = AdminDeleteRequest(name: "x", namespace: "y")
        #expect(try WireCodec.decodeAdminDeleteRequest(WireCodec.encode(delete)) == delete)
        #expect(try WireCodec.decodeAdminDeleteReply(WireCodec.encodeDeleteReply(deleted: true)))
        #expect(try !WireCodec.decodeAdminDeleteReply(WireCodec.encodeDeleteReply(deleted: false)))

        let allow = AdminProfileAllowRequest(
            name: "Deployment/web", namespace: "shop", container: "app", kind: .exec,
            fields: ["path": "/bin/sh", "argc": "2", "arg.0": "sh", "arg.1": "-c"])
        #expect(try WireCodec.decodeAdminProfileAllowRequest(WireCodec.encode(allow)) == allow)
        let finalize = AdminProfileAllowRequest(
            name: "shop/Deployment/web", namespace: "", container: "", kind: nil, finalize: true)
        #expect(try WireCodec.decodeAdminProfileAllowRequest(WireCodec.encode(finalize)) == finalize)
        #expect(try WireCodec.decodeAdminProfileAllowReply(WireCodec.encodeProfileAllowReply(changed: true)))

        for start in [
            AdminStartScanRequest(node: "worker-1"),
            AdminStartScanRequest(node: "worker-1", path: "/srv/ü", containerID: "3f2a"),
        ] {
            #expect(try WireCodec.decodeAdminStartScanRequest(WireCodec.encode(start)) == start)
        }
        for started in [
            AdminStartScanReply(scanID: "scan-0123456789ab", sensors: ["sensor-a"]),
            AdminStartScanReply(scanID: "", sensors: []),
        ] {
            #expect(try WireCodec.decodeAdminStartScanReply(WireCodec.encode(started)) == started)
        }
    }

    @Test("malformed admin messages are errors, never traps")
    func malformed() {
        // Field 1 (table) claims 200 bytes but none follow.
        #expect(throws: WireFormatError.self) { try WireCodec.decodeAdminListReply([0x0A, 0xC8, 0x01]) }
        // A row with more cells than columns.
        var writer = ProtoWriter()
        writer.message(1) { table in
            table.string(1, "A")
            table.message(2) { row in
                row.string(1, "1")
                row.string(1, "2")
            }
        }
        #expect(throws: WireFormatError.self) { try WireCodec.decodeAdminListReply(writer.bytes) }
        // An unknown document format, and an allow without a kind that is not a finalize.
        var get = ProtoWriter()
        get.varint(3, 9)
        #expect(throws: WireFormatError.self) { try WireCodec.decodeAdminGetRequest(get.bytes) }
        var allow = ProtoWriter()
        allow.string(1, "shop/Deployment/web")
        #expect(throws: WireFormatError.self) { try WireCodec.decodeAdminProfileAllowRequest(allow.bytes) }
        // Invalid UTF-8 in a name.
        #expect(throws: WireFormatError.self) { try WireCodec.decodeAdminDeleteRequest([0x0A, 0x02, 0xC3, 0x28]) }
        // A method name that is not in admin.proto is a programmer error; the real ones resolve.
        #expect(RPCMethods.admin("ListProfiles") == "patrol.v1.AdminService/ListProfiles")
    }
}
