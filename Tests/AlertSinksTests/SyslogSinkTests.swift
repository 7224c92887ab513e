import EventModel
import Foundation
import Logging
import TestSupport
import Testing

@testable import AlertSinks

@Suite struct SyslogFormatTests {
    @Test func headerAndStructuredDataFollowRFC5424() {
        var alert = AlertFixtures.alert()
        alert.fields = ["path": "/tmp/a b\"]\\c", "bad name=x": "v"]
        let text = String(decoding: SyslogFormat(facility: 16, procID: "77").message(alert), as: UTF8.self)
        // local0 (16) * 8 + error (3, for high) = 131.
        #expect(
            text.hasPrefix("<131>1 2023-11-14T22:13:20.123456Z node-1 patrol 77 R1000 [patrol@32473 id=\"alert-0\""))
        #expect(text.contains(#"[patrolFields@32473 bad_name_x="v" path="/tmp/a b\"\]\\c"]"#))
        #expect(text.hasSuffix(#"] Exec from /dev/shm: "true", pid 42"#))
    }

    @Test func severitiesMapToSyslogSeverities() {
        #expect(SyslogFormat.severityCode(.critical) == 2)
        #expect(SyslogFormat.severityCode(.medium) == 4)
        #expect(SyslogFormat.severityCode(.info) == 6)
        #expect(SyslogFormat(facility: 4).priority(.low) == 37)
    }

    @Test func longMessagesAreCutAtACharacterBoundaryKeepingTheStructuredData() {
        let alert = AlertFixtures.alert(message: String(repeating: "é", count: 3000))
        let format = SyslogFormat(maxMessageBytes: 1024)
        let bytes = format.message(alert)
        #expect(bytes.count <= 1024)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(!text.contains("\u{FFFD}"))
        #expect(text.contains("[patrol@32473 id=\"alert-0\""))
        #expect(text.contains("[patrolFields@32473 path=\"/dev/shm/true\"]"))
        // Too small even for the full alert element: the minimal one remains, marked truncated.
        let tiny = String(decoding: SyslogFormat(maxMessageBytes: 200).message(alert), as: UTF8.self)
        #expect(tiny.utf8.count <= 200)
        #expect(tiny.contains("truncated=\"true\""))
    }

    @Test func octetCountingFramesEachMessage() {
        let framed = SyslogSink.frame([Array("<1>1 - - - - - -".utf8), Array("ab".utf8)])
        #expect(String(decoding: framed, as: UTF8.self) == "16 <1>1 - - - - - -2 ab")
    }
}

/// Acceptance 2: a real rsyslogd with the RFC 5424 parser receives alerts over UDP, TCP and TLS, and every
/// header part and structured-data param comes out as sent.
@Suite(.serialized) struct SyslogSinkRsyslogTests {
    static let logger = Logger(label: "test.syslog")

    /// Values chosen to break naive escaping: quotes, closing brackets, backslashes, spaces, non-ASCII.
    static func alerts(prefix: String) -> [Alert] {
        (0..<3).map { index in
            var alert = AlertFixtures.alert(
                index: index, ruleID: "R100\(index)", message: "\(prefix) message \(index): \"quoted\" ] \\ ü",
                time: 1_764_130_000_123_456_000 + UInt64(index) * 1_000_000_000)
            alert.id = "\(prefix)-\(index)"
            alert.severity = [.critical, .medium, .info][index]
            alert.fix = #"set "x" to \y ] done"#
            alert.process.comm = #"we"ird]\"#
            alert.fields = ["path": #"/tmp/"q"/]x\y"#, "ka.uri": "/api/v1/pods?x=[1]"]
            return alert
        }
    }

    static func check(_ records: [RsyslogServer.Record], against alerts: [Alert], format: SyslogFormat) {
        #expect(records.count == alerts.count)
        for (record, alert) in zip(records, alerts) {
            #expect(record.pri == String(format.priority(alert.severity)))
            #expect(record.timestamp == alert.time.iso8601)
            #expect(record.hostname == alert.node)
            #expect(record.appName == "patrol")
            #expect(record.procID == format.procID)
            #expect(record.msgID == alert.ruleID)
            #expect(record.message == alert.message)
            guard let elements = record.elements() else {
                Issue.record("structured data does not parse: \(record.structuredData)")
                continue
            }
            let sent = SyslogFormat.alertParams(alert)
            let received = elements[format.alertSDID] ?? []
            #expect(received.map(\.0) == sent.map(\.0))
            #expect(received.map(\.1) == sent.map(\.1))
            let fields = Dictionary(uniqueKeysWithValues: elements[format.fieldsSDID] ?? [])
            #expect(fields == alert.fields)
        }
    }

    @Test func udpTCPAndTLSArriveIntact() async throws {
        guard RsyslogServer.isAvailable else {
            print("skipping: \(RsyslogServer.binary) is not installed (scripts/bootstrap installs rsyslog)")
            return
        }
        let certificateDirectory = try TemporaryDirectory(prefix: "syslog-certs")
        defer { certificateDirectory.remove() }
        let certificates = try await offPool { try TestCertificates(in: certificateDirectory.path) }
        let server = try await offPool { try RsyslogServer(certificates: certificates) }
        defer { server.stop() }
        let format = SyslogFormat(facility: 20, procID: "4242")

        let udp = try SyslogSink(
            configuration: .init(address: "127.0.0.1:\(server.udpPort)", transport: .udp, format: format),
            logger: Self.logger)
        let udpAlerts = Self.alerts(prefix: "udp")
        // One at a time: datagrams may be reordered or, in theory, dropped; the comparison wants order.
        for (index, alert) in udpAlerts.enumerated() {
            try await udp.deliver([alert])
            _ = await server.waitForRecords(index + 1)
        }
        var records = await server.waitForRecords(3)
        Self.check(records, against: udpAlerts, format: format)

        let tcp = try SyslogSink(
            configuration: .init(address: "127.0.0.1:\(server.tcpPort)", transport: .tcp, format: format),
            logger: Self.logger)
        let tcpAlerts = Self.alerts(prefix: "tcp")
        try await tcp.deliver(tcpAlerts)
        records = await server.waitForRecords(6)
        Self.check(Array(records.dropFirst(3)), against: tcpAlerts, format: format)

        let tls = try SyslogSink(
            configuration: .init(
                address: "127.0.0.1:\(server.tlsPort)", transport: .tls, format: format,
                caFile: certificates.caCertificate, serverName: "localhost"),
            logger: Self.logger)
        let tlsAlerts = Self.alerts(prefix: "tls")
        try await tls.deliver(tlsAlerts)
        records = await server.waitForRecords(9)
        Self.check(Array(records.dropFirst(6)), against: tlsAlerts, format: format)
        try await tcp.flush()
        try await tls.flush()
    }

    @Test func tlsWithClientCertificateAndARefusedServer() async throws {
        guard RsyslogServer.isAvailable else {
            print("skipping: \(RsyslogServer.binary) is not installed")
            return
        }
        let certificateDirectory = try TemporaryDirectory(prefix: "syslog-certs")
        defer { certificateDirectory.remove() }
        let certificates = try await offPool { try TestCertificates(in: certificateDirectory.path) }
        let server = try await offPool { try RsyslogServer(certificates: certificates, requireClientCertificate: true) }
        defer { server.stop() }

        // A server certificate from another CA is refused: the alert is not sent and the sink says why.
        let wrongCA = try SyslogSink(
            configuration: .init(
                address: "127.0.0.1:\(server.tlsPort)", transport: .tls, caFile: certificates.rogueCACertificate,
                certificateFile: certificates.clientCertificate, keyFile: certificates.clientKey,
                serverName: "localhost"),
            logger: Self.logger)
        await #expect(throws: AlertSinksError.self) { try await wrongCA.deliver(Self.alerts(prefix: "bad")) }

        // nng's TLS (mbedtls) matches the server name against DNS names only, so the test certificate's
        // `localhost` is named rather than its IP address.
        let sink = try SyslogSink(
            configuration: .init(
                address: "127.0.0.1:\(server.tlsPort)", transport: .tls, caFile: certificates.caCertificate,
                certificateFile: certificates.clientCertificate, keyFile: certificates.clientKey,
                serverName: "localhost"),
            logger: Self.logger)
        let alerts = Self.alerts(prefix: "mtls")
        try await sink.deliver(alerts)
        let records = await server.waitForRecords(3)
        #expect(records.map(\.message) == alerts.map(\.message))
    }

    /// At least once over TCP: a server restart between batches loses nothing, because the sink notices the
    /// closed connection and reconnects (the outbox's retry covers a failure in the middle of a write).
    @Test func tcpReconnectsAfterTheServerRestarts() async throws {
        guard RsyslogServer.isAvailable else {
            print("skipping: \(RsyslogServer.binary) is not installed")
            return
        }
        let first = try await offPool { try RsyslogServer() }
        // nng's TLS (mbedtls) matches the server name against DNS names only, so the test certificate's
        // `localhost` is named rather than its IP address.
        let sink = try SyslogSink(
            configuration: .init(address: "127.0.0.1:\(first.tcpPort)", transport: .tcp), logger: Self.logger)
        try await sink.deliver(Self.alerts(prefix: "before"))
        #expect(await first.waitForRecords(3).count == 3)
        first.stop()
        // Nothing listens now. Either the write fails at once, or (when the close has not reached the sink yet and
        // the bytes went into the dead socket, as a loaded machine allows) the sink refuses to confirm them as
        // soon as it sees the close: either way the outbox sends them again, and nothing counts as delivered.
        var refused = false
        do { try await sink.deliver(Self.alerts(prefix: "down")) } catch { refused = true }
        let deadline = ContinuousClock.now + .seconds(10)
        while !refused && ContinuousClock.now < deadline {
            do {
                let confirmed = try await sink.settled(sentThrough: 1)
                #expect(confirmed < 1, "alerts written to a stopped server were confirmed")
                try await Task.sleep(for: .milliseconds(20))
            } catch is AlertSinksError {
                refused = true
            }
        }
        #expect(refused, "the sink neither failed the write nor refused to confirm it")
        let second = try await offPool {
            try RsyslogServer(ports: (udp: first.udpPort, tcp: first.tcpPort, tls: first.tlsPort))
        }
        defer { second.stop() }
        let after = Self.alerts(prefix: "after")
        try await sink.deliver(after)
        #expect(await second.waitForRecords(3).map(\.message) == after.map(\.message))
    }

    /// The case plain TCP cannot see: rsyslog is frozen, the sink's writes succeed into the kernel's socket
    /// buffers, and then rsyslog is SIGKILLed and those buffers are gone. Through the outbox nothing is lost:
    /// the sink had not confirmed those alerts (the connection broke within `confirmAfter`), so they are sent
    /// again to the restarted server, and the re-sends are counted as redelivered.
    @Test func alertsInAKilledServersSocketBufferAreSentAgain() async throws {
        guard RsyslogServer.isAvailable else {
            print("skipping: \(RsyslogServer.binary) is not installed")
            return
        }
        let first = try await offPool { try RsyslogServer() }
        let rig = try await DeliveryRig.make()
        // A long confirmation window, so the kill certainly comes before the alerts could count as delivered.
        let sink = try SyslogSink(
            configuration: .init(
                address: "127.0.0.1:\(first.tcpPort)", transport: .tcp, confirmAfter: .seconds(60)),
            logger: Self.logger)
        let delivery = rig.delivery(sink)
        let alerts = (0..<300).map { AlertFixtures.alert(index: $0) }
        let (firstIDs, secondIDs) = try await rig.running([delivery]) { () async throws -> ([String], [String]) in
            try await rig.commit(Array(alerts[..<100]))
            #expect(await first.waitForRecords(100).count == 100)
            kill(first.processIdentifier, SIGSTOP)
            try await rig.commit(Array(alerts[100...]))
            // Written: the sink's writes returned, the bytes sit in rsyslog's unread socket buffer.
            #expect(await eventually { delivery.statistics.delivered == 300 })
            try await offPool { first.stop() }
            let second = try await offPool {
                try RsyslogServer(ports: (udp: first.udpPort, tcp: first.tcpPort, tls: first.tlsPort))
            }
            defer { second.stop() }
            // Everything not confirmed (here: all 300, with the 60 s window) comes again.
            _ = await second.waitForRecords(300, timeout: .seconds(60))
            return (Self.ids(first.records()), Self.ids(second.records()))
        }
        await rig.close()
        #expect(
            Set(firstIDs + secondIDs) == Set(alerts.map(\.id)), "first \(firstIDs.count), second \(secondIDs.count)")
        #expect(Set(firstIDs).count < 300, "rsyslog processed what it could not have read")
        let duplicates = firstIDs.count + secondIDs.count - 300
        #expect(duplicates <= delivery.statistics.redelivered, "redelivered \(delivery.statistics.redelivered)")
        print("syslog kill: first server \(firstIDs.count), second \(secondIDs.count), redelivered "
            + "\(delivery.statistics.redelivered)")
    }

    static func ids(_ records: [RsyslogServer.Record]) -> [String] {
        records.compactMap { record in
            record.elements()?.first { $0.key.hasPrefix("patrol@") }?.value.first { $0.0 == "id" }?.1
        }
    }

    @Test func badConfigurationIsRefusedAtStart() {
        #expect(throws: AlertSinksError.self) {
            _ = try SyslogSink(configuration: .init(address: "localhost", transport: .udp), logger: Self.logger)
        }
        #expect(throws: AlertSinksError.self) {
            _ = try SyslogSink(
                configuration: .init(address: "127.0.0.1:6514", transport: .tls, caFile: "/nonexistent/ca.pem"),
                logger: Self.logger)
        }
        // TLS without a CA would trust any server: refused at start rather than sent unverified.
        #expect(throws: AlertSinksError.self) {
            _ = try SyslogSink(configuration: .init(address: "127.0.0.1:6514", transport: .tls), logger: Self.logger)
        }
    }
}
