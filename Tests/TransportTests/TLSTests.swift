import EventModel
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Transport

@Suite("Mutual TLS")
struct TLSTests {
    let directory: TemporaryDirectory
    let certificates: TestCertificates

    init() async throws {
        let directory = try TemporaryDirectory(prefix: "patrol-tls")
        self.directory = directory
        certificates = try await offPool { try TestCertificates(in: directory.path) }
    }

    var serverTLS: TLSConfiguration {
        TLSConfiguration(
            certificateFile: certificates.serverCertificate, privateKeyFile: certificates.serverKey,
            caFile: certificates.caCertificate)
    }

    @Test("a client with a certificate from the CA is served, and the handler sees a verified peer")
    func success() async throws {
        let address = Ports.loopbackTCPAddress(scheme: "tls+tcp")
        let peers = Mutex<[PeerInfo]>([])
        let server = try RPCServer(configuration: RPCServerConfiguration(address: address, tls: serverTLS)) {
            request, peer in
            peers.withLock { $0.append(peer) }
            return RPCReply(status: .ok, payload: request.payload)
        }
        try await withServer(server) {
            let client = try RPCClient(
                configuration: RPCClientConfiguration(
                    address: address,
                    tls: TLSConfiguration(
                        certificateFile: certificates.clientCertificate, privateKeyFile: certificates.clientKey,
                        caFile: certificates.caCertificate, serverName: "localhost")))
            defer { client.close() }
            let reply = try await client.call(RPCRequest(method: "m", payload: [4, 2]), timeout: .seconds(10))
            #expect(reply.payload == [4, 2])
        }
        #expect(server.stats.tlsRefusals == 0)
        let peer = try #require(peers.withLock { $0.first })
        #expect(peer.tlsVerified)
        #expect(peer.remoteAddress.hasPrefix("127.0.0.1:"))
        #expect(peer.connectionID > 0)
    }

    @Test("clients without a certificate or from another CA are refused, logged and counted")
    func refusals() async throws {
        let address = Ports.loopbackTCPAddress(scheme: "tls+tcp")
        let server = try echoServer(address, tls: serverTLS)
        try await withServer(server) {
            let noCertificate = try RPCClient(
                configuration: RPCClientConfiguration(
                    address: address, tls: TLSConfiguration(caFile: certificates.caCertificate, serverName: "localhost")
                ))
            defer { noCertificate.close() }
            do {
                _ = try await noCertificate.call(RPCRequest(method: "m", payload: [1]), timeout: .seconds(1))
                Issue.record("a client without a certificate was served")
            } catch let error as TransportError {
                #expect(error.code == .tls, "\(error)")
                let stats = noCertificate.stats
                #expect(stats.tlsFailures + stats.dialsDisconnected + stats.dialsFailedOther >= 1, "\(stats)")
                #expect(stats.connects == 0)
            }
            noCertificate.close()
            #expect(await eventually(timeout: .seconds(5)) { server.stats.tlsRefusals >= 1 })
            let before = server.stats.tlsRefusals

            let rogue = try RPCClient(
                configuration: RPCClientConfiguration(
                    address: address,
                    tls: TLSConfiguration(
                        certificateFile: certificates.rogueClientCertificate,
                        privateKeyFile: certificates.rogueClientKey,
                        caFile: certificates.caCertificate, serverName: "localhost")))
            defer { rogue.close() }
            do {
                _ = try await rogue.call(RPCRequest(method: "m", payload: [1]), timeout: .seconds(1))
                Issue.record("a client with a certificate from another CA was served")
            } catch let error as TransportError {
                #expect(error.code == .tls, "\(error)")
            }
            rogue.close()
            #expect(await eventually(timeout: .seconds(5)) { server.stats.tlsRefusals > before })

            let good = try RPCClient(
                configuration: RPCClientConfiguration(
                    address: address,
                    tls: TLSConfiguration(
                        certificateFile: certificates.clientCertificate, privateKeyFile: certificates.clientKey,
                        caFile: certificates.caCertificate, serverName: "localhost")))
            defer { good.close() }
            let reply = try await good.call(RPCRequest(method: "m", payload: [5]), timeout: .seconds(10))
            #expect(reply.payload == [5])
        }
        #expect(server.stats.requestsServed == 1)
    }

    @Test("a client that does not trust the server's CA does not connect")
    func clientDistrustsServer() async throws {
        let address = Ports.loopbackTCPAddress(scheme: "tls+tcp")
        let server = try echoServer(address, tls: serverTLS)
        try await withServer(server) {
            let client = try RPCClient(
                configuration: RPCClientConfiguration(
                    address: address,
                    tls: TLSConfiguration(
                        certificateFile: certificates.clientCertificate, privateKeyFile: certificates.clientKey,
                        caFile: certificates.rogueCACertificate, serverName: "localhost")))
            defer { client.close() }
            do {
                _ = try await client.call(RPCRequest(method: "m", payload: [1]), timeout: .seconds(1))
                Issue.record("a client accepted a server certificate from an untrusted CA")
            } catch let error as TransportError {
                #expect(error.code == .tls, "\(error)")
            }
        }
        #expect(server.stats.requestsServed == 0)
    }

    @Test("a client checks that the server's certificate names the host it dialed, not only its CA")
    func clientChecksTheDialedName() async throws {
        // The certificate names localhost and 127.0.0.1. 127.0.0.2 is loopback too, but not in it: a certificate
        // from the right CA for another name must not pass (another sensor's, posing as the collector).
        let address = "tls+tcp://127.0.0.2:\(Ports.freeTCPPort())"
        let server = try echoServer(address, tls: serverTLS)
        try await withServer(server) {
            for serverName in [nil, "collector.example"] {
                let client = try RPCClient(
                    configuration: RPCClientConfiguration(
                        address: address,
                        tls: TLSConfiguration(
                            certificateFile: certificates.clientCertificate, privateKeyFile: certificates.clientKey,
                            caFile: certificates.caCertificate, serverName: serverName)))
                defer { client.close() }
                do {
                    _ = try await client.call(RPCRequest(method: "m", payload: [1]), timeout: .seconds(1))
                    Issue.record("a client accepted a certificate that does not name \(serverName ?? "127.0.0.2")")
                } catch let error as TransportError {
                    #expect(error.code == .tls, "\(error)")
                }
            }
            // Told the name the certificate does carry, the same client connects.
            let client = try RPCClient(
                configuration: RPCClientConfiguration(
                    address: address,
                    tls: TLSConfiguration(
                        certificateFile: certificates.clientCertificate, privateKeyFile: certificates.clientKey,
                        caFile: certificates.caCertificate, serverName: "localhost")))
            defer { client.close() }
            let reply = try await client.call(RPCRequest(method: "m", payload: [1]), timeout: .seconds(5))
            #expect(reply.status == .ok)
        }
        #expect(server.stats.requestsServed == 1)
    }

    @Test("missing certificate files are a tls error naming the file")
    func missingFiles() {
        do {
            _ = try echoServer(
                Ports.loopbackTCPAddress(scheme: "tls+tcp"),
                tls: TLSConfiguration(certificateFile: "/nonexistent/cert.pem", privateKeyFile: "/nonexistent/key.pem"))
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .tls)
            #expect(error.message.contains("/nonexistent/cert.pem"))
        }
    }
}
