import Basics
import Testing
import Transport

@testable import CollectorApp

/// The `admin` key and `--admin-listen`, and who the admin service lets in.
@Suite struct AdminConfigurationTests {
    @Test func defaultsAndAFullSection() throws {
        let defaults = CollectorConfiguration()
        #expect(defaults.admin.listen == "ipc:///run/patrol/admin.sock")
        #expect(defaults.admin.socketMode == 0o600)
        #expect(!defaults.admin.explicit)

        let config = try CollectorConfiguration.parse(
            yaml: """
                admin:
                  listen: tls+tcp://0.0.0.0:7601
                  allowedUIDs: [1000, 1001]
                  socketMode: "0660"
                  tls: {certificate: a.pem, key: a.key, ca: clients.pem}
                """, source: "collector.yaml")
        #expect(config.admin.listen == "tls+tcp://0.0.0.0:7601")
        #expect(config.admin.allowedUIDs == [1000, 1001])
        #expect(config.admin.socketMode == 0o660)
        #expect(config.admin.tls == .init(certificate: "a.pem", key: "a.key", ca: "clients.pem"))
        #expect(config.admin.explicit)
    }

    @Test(arguments: [
        ("admin: {listen: tcp://0.0.0.0:7601}", "admin.listen: 'tcp://0.0.0.0:7601' is neither ipc:// nor tls+tcp://"),
        ("admin: {listen: tls+tcp://0.0.0.0:7601}", "admin.tls: tls+tcp:// needs admin.tls"),
        ("admin: {socketMode: \"0999\"}", "admin.socketMode: expected an octal file mode such as 0600, found '0999'"),
        ("admin: {allowedUIDs: root}", "admin.allowedUIDs: expected a list of uids"),
        ("admin: {port: 1}", "admin: unknown key 'port'"),
    ])
    func badAdminSectionsNameTheKey(yaml: String, expected: String) {
        #expect {
            _ = try CollectorConfiguration.parse(yaml: yaml, source: "collector.yaml")
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func adminListenFlag() throws {
        var command = try CollectorCommand.parse(["--admin-listen", "ipc:///tmp/x/admin.sock"])
        var config = try command.resolvedConfiguration()
        #expect(config.admin.listen == "ipc:///tmp/x/admin.sock" && config.admin.explicit)
        command = try CollectorCommand.parse(["--admin-listen", ""])
        config = try command.resolvedConfiguration()
        #expect(config.admin.listen.isEmpty)
        command = try CollectorCommand.parse(["--admin-listen", "tcp://127.0.0.1:1"])
        #expect(throws: (any Error).self) { try command.resolvedConfiguration() }
    }

    @Test func authorisationByUIDAndCertificate() {
        let ipc = AdminAuthorizer(address: "ipc:///run/patrol/admin.sock", allowedUIDs: [1000], ownUID: 999)
        for uid: UInt32 in [0, 999, 1000] {
            #expect(ipc.refusal(PeerInfo(connectionID: 1, remoteAddress: "ipc://x", peerUID: uid)) == nil)
        }
        let stranger = ipc.refusal(PeerInfo(connectionID: 1, remoteAddress: "ipc://x", peerUID: 65534))
        #expect(stranger?.status == .permissionDenied && stranger?.reason.contains("uid 65534") == true)
        #expect(ipc.refusal(PeerInfo(connectionID: 1, remoteAddress: "ipc://x"))?.status == .unauthenticated)

        let tls = AdminAuthorizer(address: "tls+tcp://0.0.0.0:7601", allowedUIDs: [])
        #expect(tls.refusal(PeerInfo(connectionID: 1, remoteAddress: "10.0.0.1:5", tlsVerified: true)) == nil)
        #expect(tls.refusal(PeerInfo(connectionID: 1, remoteAddress: "10.0.0.1:5"))?.status == .unauthenticated)
    }
}
