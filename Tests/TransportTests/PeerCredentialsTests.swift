import EventModel
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// The admin service authorises ipc:// callers by uid and relies on the socket file's mode: both come from here.
@Suite("Peer credentials on ipc")
struct PeerCredentialsTests {
    @Test("an ipc peer's uid is reported; tcp peers have none")
    func peerUID() async throws {
        let directory = try TemporaryDirectory(prefix: "patrol-peer")
        defer { directory.remove() }
        for address in ["ipc://\(directory.file("peer.sock"))", Ports.loopbackTCPAddress()] {
            let seen = Mutex<PeerInfo?>(nil)
            let server = try RPCServer(configuration: RPCServerConfiguration(address: address)) { request, peer in
                seen.withLock { $0 = peer }
                return RPCReply(status: .ok, payload: request.payload)
            }
            try await withServer(server) {
                let client = try RPCClient(configuration: RPCClientConfiguration(address: address))
                defer { client.close() }
                _ = try await client.call(RPCRequest(method: "m", payload: [1]), timeout: .seconds(30))
            }
            let peer = try #require(seen.withLock { $0 })
            if address.hasPrefix("ipc://") {
                #expect(peer.peerUID == getuid(), "\(peer)")
            } else {
                #expect(peer.peerUID == nil, "\(peer)")
            }
        }
    }

    @Test("ipcPermissions sets the socket file's mode")
    func socketMode() async throws {
        let directory = try TemporaryDirectory(prefix: "patrol-peer-mode")
        defer { directory.remove() }
        for mode in [0o600, 0o660] {
            let path = directory.file("mode-\(mode).sock")
            let server = try RPCServer(
                configuration: RPCServerConfiguration(address: "ipc://\(path)", ipcPermissions: mode)
            ) {
                request, _ in RPCReply(status: .ok, payload: request.payload)
            }
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == mode)
            server.close()
        }
    }
}
