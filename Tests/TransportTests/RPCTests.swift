import EventModel
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Transport

@Suite("RPC over NNG")
struct RPCTests {
    static func addresses() throws -> [String] {
        let directory = try TemporaryDirectory(prefix: "patrol-ipc")
        return [
            Ports.loopbackTCPAddress(), "ipc://\(directory.file("rpc.sock"))", "inproc://rpc-\(UUID().uuidString)",
        ]
    }

    @Test("round trip", arguments: try addresses())
    func roundTrip(address: String) async throws {
        let server = try RPCServer(configuration: RPCServerConfiguration(address: address)) { request, peer in
            #expect(!peer.tlsVerified)
            #expect(peer.remoteAddress != "unknown", "\(peer)")
            return RPCReply(status: .ok, message: request.method, payload: request.payload)
        }
        try await withServer(server) {
            let client = try RPCClient(configuration: RPCClientConfiguration(address: address))
            defer { client.close() }
            let reply = try await client.call(
                RPCRequest(method: "patrol.v1.Test/Echo", payload: payload(1000)), timeout: .seconds(60))
            #expect(reply.status == .ok)
            #expect(reply.message == "patrol.v1.Test/Echo")
            #expect(reply.payload == payload(1000))
            let empty = try await client.call(RPCRequest(method: "m", payload: []), timeout: .seconds(60))
            #expect(empty.payload.isEmpty)
        }
        #expect(server.stats.requestsServed == 2)
    }

    @Test("tcp port 0 reports the bound address")
    func boundPort() async throws {
        let server = try echoServer("tcp://127.0.0.1:0")
        #expect(!server.boundAddress.hasSuffix(":0"))
        try await withServer(server) {
            let client = try RPCClient(configuration: RPCClientConfiguration(address: server.boundAddress))
            defer { client.close() }
            let reply = try await client.call(RPCRequest(method: "m", payload: [1]), timeout: .seconds(60))
            #expect(reply.payload == [1])
        }
    }

    @Test("concurrent calls run on separate contexts")
    func concurrentCalls() async throws {
        let address = Ports.loopbackTCPAddress()
        let active = Mutex((now: 0, peak: 0))
        let server = try RPCServer(configuration: RPCServerConfiguration(address: address, concurrency: 16)) {
            request, _ in
            active.withLock {
                $0.now += 1
                $0.peak = max($0.peak, $0.now)
            }
            try? await Task.sleep(for: .milliseconds(300))
            active.withLock { $0.now -= 1 }
            return RPCReply(status: .ok, payload: request.payload)
        }
        try await withServer(server) {
            let client = try RPCClient(configuration: RPCClientConfiguration(address: address))
            defer { client.close() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        let reply = try await client.call(
                            RPCRequest(method: "m", payload: [UInt8(index)]), timeout: .seconds(20))
                        #expect(reply.payload == [UInt8(index)])
                    }
                }
                try await group.waitForAll()
            }
            // The peak shows how many handlers ran at once; serially it would be 1.
            #expect(active.withLock { $0.peak } >= 8)
        }
    }

    @Test("several connections from one client")
    func severalConnections() async throws {
        let address = Ports.loopbackTCPAddress()
        let server = try echoServer(address)
        try await withServer(server) {
            let client = try RPCClient(configuration: RPCClientConfiguration(address: address, connections: 3))
            defer { client.close() }
            #expect(await eventually(timeout: .seconds(10)) { client.stats.connects == 3 })
            for index in 0..<9 {
                let reply = try await client.call(
                    RPCRequest(method: "m", payload: [UInt8(index)]), timeout: .seconds(60))
                #expect(reply.payload == [UInt8(index)])
            }
            #expect(server.stats.openConnections == 3)
        }
    }

    @Test("a client started before the server connects when it comes up")
    func clientBeforeServer() async throws {
        let address = Ports.loopbackTCPAddress()
        let client = try RPCClient(configuration: RPCClientConfiguration(address: address))
        defer { client.close() }
        await #expect(throws: TransportError.self) {
            _ = try await client.call(RPCRequest(method: "m", payload: []), timeout: .milliseconds(200))
        }
        let server = try echoServer(address)
        try await withServer(server) {
            let reply = try await client.call(RPCRequest(method: "m", payload: [9]), timeout: .seconds(10))
            #expect(reply.payload == [9])
        }
    }

    @Test("cancelling the caller's task ends its call with .cancelled, at once")
    func cancellation() async throws {
        let address = Ports.loopbackTCPAddress()
        let handlerFinished = Mutex(false)
        let server = try RPCServer(configuration: RPCServerConfiguration(address: address)) { request, _ in
            try? await Task.sleep(for: .seconds(30))
            handlerFinished.withLock { $0 = true }
            return RPCReply(status: .ok, payload: request.payload)
        }
        try await withServer(server) {
            let client = try RPCClient(configuration: RPCClientConfiguration(address: address))
            defer { client.close() }
            let call = Task {
                try await client.call(RPCRequest(method: "m", payload: [1]), timeout: .seconds(10))
            }
            try await Task.sleep(for: .milliseconds(200))
            call.cancel()
            let result = await call.result
            // The handler answers after 30 s; a cancelled call must not wait for that.
            #expect(!handlerFinished.withLock { $0 })
            if case .failure(let error) = result {
                #expect((error as? TransportError)?.code == .cancelled, "\(error)")
            } else {
                Issue.record("the cancelled call returned a reply")
            }
        }
    }

    @Test("cancelling the task that runs the server closes it")
    func serverCancellation() async throws {
        let address = Ports.loopbackTCPAddress()
        let server = try echoServer(address)
        let running = Task { await server.run() }
        try await Task.sleep(for: .milliseconds(100))
        running.cancel()
        await running.value
        let client = try RPCClient(configuration: RPCClientConfiguration(address: address))
        defer { client.close() }
        await #expect(throws: TransportError.self) {
            _ = try await client.call(RPCRequest(method: "m", payload: []), timeout: .milliseconds(300))
        }
    }

    @Test("timeout names the address")
    func timeout() async throws {
        let address = Ports.loopbackTCPAddress()
        let client = try RPCClient(configuration: RPCClientConfiguration(address: address))
        defer { client.close() }
        do {
            _ = try await client.call(RPCRequest(method: "m", payload: []), timeout: .milliseconds(100))
            Issue.record("expected a timeout")
        } catch {
            #expect(error.code == .timeout)
            #expect(error.message.contains(address))
            #expect(error.description.contains("nng"))
        }
    }

    @Test(
        "invalid addresses are refused with a message", arguments: ["http://x:1", "tcp://nohost", "", "tcp://h:port"])
    func invalidAddress(address: String) {
        #expect(throws: TransportError.self) {
            _ = try RPCClient(configuration: RPCClientConfiguration(address: address))
        }
        do {
            _ = try echoServer(address)
        } catch {
            #expect(error.code == .addressInvalid)
            #expect(error.message.contains("'\(address)'"))
        }
    }

    @Test("listening twice on one address fails with connectFailed")
    func addressInUse() throws {
        let address = Ports.loopbackTCPAddress()
        let first = try echoServer(address)
        defer { first.close() }
        do {
            _ = try echoServer(address)
            Issue.record("expected address in use")
        } catch {
            #expect(error.code == .connectFailed)
            #expect(error.message.contains(address))
        }
    }

    @Test("garbage is answered with INVALID_ARGUMENT and counted; others keep being served")
    func garbage() async throws {
        let address = Ports.loopbackTCPAddress()
        let server = try echoServer(address)
        try await withServer(server) {
            let good = try RPCClient(configuration: RPCClientConfiguration(address: address))
            let rogue = try RPCClient(configuration: RPCClientConfiguration(address: address))
            defer {
                good.close()
                rogue.close()
            }
            for garbage in [[0xde, 0xad, 0xbe, 0xef], [], Array("PRQ1".utf8) + [0xff, 0xff, 0xff, 0x7f]] as [[UInt8]] {
                let raw = try await rogue.rawCall(garbage, timeout: .seconds(60)).get()
                let reply = try Envelope.decodeReply(raw)
                #expect(reply.status == .invalidArgument)
                #expect(reply.message.contains("does not decode"))
                let fine = try await good.call(RPCRequest(method: "m", payload: [1, 2]), timeout: .seconds(60))
                #expect(fine.payload == [1, 2])
            }
            #expect(server.stats.decodeFailures == 3)
            #expect(server.stats.requestsServed == 3)
        }
    }

    @Test("with replyToUndecodable off, garbage is dropped without a reply, and counted")
    func garbageDropped() async throws {
        let address = Ports.loopbackTCPAddress()
        let server = try RPCServer(
            configuration: RPCServerConfiguration(address: address, replyToUndecodable: false)
        ) { request, _ in RPCReply(status: .ok, payload: request.payload) }
        try await withServer(server) {
            let good = try RPCClient(configuration: RPCClientConfiguration(address: address))
            let rogue = try RPCClient(configuration: RPCClientConfiguration(address: address))
            defer {
                good.close()
                rogue.close()
            }
            let result = await rogue.rawCall([1, 2, 3, 4, 5], timeout: .milliseconds(300))
            #expect(throws: TransportError.self) { try result.get() }
            let fine = try await good.call(RPCRequest(method: "m", payload: [8]), timeout: .seconds(60))
            #expect(fine.payload == [8])
            #expect(server.stats.decodeFailures >= 1)
            #expect(server.stats.replyFailures == 0)
        }
    }

    @Test("oversized frames are refused by closing the connection; others keep being served")
    func oversized() async throws {
        let address = Ports.loopbackTCPAddress()
        let server = try echoServer(address, maxMessageSize: 64 << 10)
        try await withServer(server) {
            let good = try RPCClient(configuration: RPCClientConfiguration(address: address))
            let rogue = try RPCClient(configuration: RPCClientConfiguration(address: address))
            defer {
                good.close()
                rogue.close()
            }
            _ = try await good.call(RPCRequest(method: "m", payload: [0]), timeout: .seconds(60))
            let big = Envelope.encode(RPCRequest(method: "m", payload: payload(256 << 10)))
            let result = await rogue.rawCall(big, timeout: .milliseconds(800))
            #expect(throws: TransportError.self) { try result.get() }
            #expect(server.stats.connectionsClosed >= 1)
            let fine = try await good.call(RPCRequest(method: "m", payload: [3]), timeout: .seconds(60))
            #expect(fine.payload == [3])
            #expect(server.stats.requestsServed == 2)
        }
    }
}

