import Basics
import EventModel
import Foundation
import Logging
import Profiles
import RuleEngine
import Store
import TestSupport
import Testing
import Transport
import WireFormat

@testable import CollectorApp

/// The admin handler on its own, with the shipped rules and a real store: the methods patrolctl has no command
/// for (rules), and what every caller gets for bad requests.
@Suite struct AdminHandlerTests {
    static let rulesDirectory: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/rules"
    }()

    func withHandler(_ body: (AdminRPCHandler) async throws -> Void) async throws {
        let directory = try TemporaryDirectory(prefix: "patrol-admin-handler")
        defer { directory.remove() }
        let store = try await Store.open(path: directory.file("patrol.db"))
        let logger = Logger(label: "test")
        let ruleSet = try RuleSet.load(files: try RuleFiles.expand([Self.rulesDirectory]))
        let bindings = try await BindingsController.load(
            ruleSet: ruleSet, seedPaths: nil, rulePaths: [Self.rulesDirectory], store: store, logger: logger)
        let handler = AdminRPCHandler(
            profiles: ProfileRegistry(), store: store, ruleSet: ruleSet, bindings: bindings,
            authorizer: AdminAuthorizer(address: "ipc:///unused", allowedUIDs: [], ownUID: 4242), logger: logger)
        try await body(handler)
        await store.close()
    }

    let root = PeerInfo(connectionID: 1, remoteAddress: "ipc:///unused", peerUID: 0)

    @Test func rulesFromTheLoadedSet() async throws {
        try await withHandler { handler in
            let list = await handler.handle(
                RPCRequest(method: RPCMethods.admin("ListRules"), payload: WireCodec.encode(AdminListRequest())), root)
            #expect(list.status == .ok)
            let table = try WireCodec.decodeAdminListReply(list.payload).table
            #expect(table.columns == ["ID", "SEVERITY", "ENABLED", "EVENTS", "NAME"])
            #expect(table.rows.contains { $0[0] == "R0001" && $0[3] == "exec" })

            let anomalies = await handler.handle(
                RPCRequest(
                    method: RPCMethods.admin("ListRules"),
                    payload: WireCodec.encode(AdminListRequest(filter: "anomaly"))),
                root)
            let anomalyIDs = try WireCodec.decodeAdminListReply(anomalies.payload).table.rows.map { $0[0] }
            #expect(anomalyIDs.contains("R0001") && !anomalyIDs.contains("R1000"))

            let rule = await handler.handle(
                RPCRequest(
                    method: RPCMethods.admin("GetRule"), payload: WireCodec.encode(AdminGetRequest(name: "R0001"))),
                root)
            #expect(rule.status == .ok)
            let document = try WireCodec.decodeAdminGetReply(rule.payload)
            #expect(
                document.body.contains("needsProfile: true") && document.body.contains("id: R0001"), "\(document.body)")

            let missing = await handler.handle(
                RPCRequest(
                    method: RPCMethods.admin("GetRule"), payload: WireCodec.encode(AdminGetRequest(name: "R9999"))),
                root)
            #expect(missing.status == .notFound && missing.message.contains("R9999"))
        }
    }

    @Test func badRequestsGetAStatusAndAReason() async throws {
        try await withHandler { handler in
            let garbage = await handler.handle(
                RPCRequest(method: RPCMethods.admin("GetProfile"), payload: [0x0A, 0xFF]), root)
            #expect(garbage.status == .invalidArgument, "\(garbage.message)")
            let unknown = await handler.handle(RPCRequest(method: "patrol.v1.AdminService/Nope", payload: []), root)
            #expect(unknown.status == .unimplemented)
            let ack = await handler.handle(RPCRequest(method: RPCMethods.admin("AckAlerts"), payload: []), root)
            #expect(ack.status == .unimplemented && ack.message.contains("not served"))
            // No sensor has said hello: a scan has nowhere to go.
            let scan = await handler.handle(
                RPCRequest(
                    method: RPCMethods.admin("StartScan"),
                    payload: WireCodec.encode(AdminStartScanRequest(node: "worker-1", path: "/srv"))),
                root)
            #expect(scan.status == .notFound)
            #expect(scan.message == "no sensor on node 'worker-1' has connected to this collector")
            let noNode = await handler.handle(
                RPCRequest(
                    method: RPCMethods.admin("StartScan"), payload: WireCodec.encode(AdminStartScanRequest(node: ""))),
                root)
            #expect(noNode.status == .invalidArgument)
            let unknownScan = await handler.handle(
                RPCRequest(
                    method: RPCMethods.admin("GetScan"), payload: WireCodec.encode(AdminGetRequest(name: "scan-x"))),
                root)
            #expect(unknownScan.status == .notFound && unknownScan.message.contains("no scan 'scan-x'"))
            // Refused before any work, whatever the method.
            let stranger = PeerInfo(connectionID: 2, remoteAddress: "ipc:///unused", peerUID: 1234)
            let refused = await handler.handle(RPCRequest(method: RPCMethods.admin("ListRules"), payload: []), stranger)
            #expect(refused.status == .permissionDenied && refused.payload.isEmpty)
            #expect(refused.message == "admin request refused: uid 1234 may not use the admin service")
        }
    }
}
