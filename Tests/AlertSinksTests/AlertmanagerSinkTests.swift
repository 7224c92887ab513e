import AlertSinks
import EventModel
import Foundation
import Logging
import OutboundHTTP
import TestSupport
import Testing

/// What a real Alertmanager reports back through `GET /api/v2/alerts`.
// Immutable after init (JSONSerialization's values are plain data).
struct ReceivedAlerts: @unchecked Sendable {
    let alerts: [[String: Any]]

    static func fetch(_ manager: AlertmanagerProcess, caFile: String? = nil) async throws -> ReceivedAlerts {
        let client = HTTPClient(configuration: .init(maxConcurrentRequests: 1, tls: TLSOptions(caFile: caFile)))
        defer { client.shutdown() }
        let response = try await client.get("\(manager.baseURL)/api/v2/alerts")
        guard response.status == 200 else { throw AlertSinksError(.rejected, "GET alerts: \(response.status)") }
        let parsed = try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] ?? []
        return ReceivedAlerts(alerts: parsed)
    }

    func labels(_ alert: [String: Any]) -> [String: String] { alert["labels"] as? [String: String] ?? [:] }
    func annotations(_ alert: [String: Any]) -> [String: String] { alert["annotations"] as? [String: String] ?? [:] }
    var ids: Set<String> { Set(alerts.compactMap { annotations($0)["alert_id"] }) }
    func alert(id: String) -> [String: Any]? { alerts.first { annotations($0)["alert_id"] == id } }
}

/// Parses Alertmanager's RFC 3339 times (it answers with milliseconds) to nanoseconds.
func nanoseconds(_ text: String?) -> UInt64? {
    guard let text else { return nil }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    guard let date = formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text) else { return nil }
    return UInt64((date.timeIntervalSince1970 * 1000).rounded()) * 1_000_000
}

@Suite struct AlertmanagerPayloadTests {
    @Test func labelsAreReferenceSetWithoutUnboundedValues() {
        let alert = AlertFixtures.alert()
        let labels = Dictionary(uniqueKeysWithValues: AlertmanagerSink.labels(alert))
        #expect(
            labels == [
                "alertname": "PatrolRuleViolated", "rule_id": "R1000", "rule_name": "Exec from malicious source",
                "severity": "high", "namespace": "default", "pod": "web.v2", "container": "web", "node": "node-1",
            ])
        let annotations = Dictionary(uniqueKeysWithValues: AlertmanagerSink.annotations(alert))
        #expect(annotations["summary"] == alert.message)
        #expect(annotations["fix"] == alert.fix)
        #expect(annotations["pid"] == "42")
        #expect(annotations["alert_id"] == "alert-0")
        #expect(annotations["description"]?.contains("default/web.v2") == true)
    }

    /// Rule fields are named like `proc.exe`; Alertmanager refuses annotation names that are not label names.
    @Test func fieldNamesBecomeValidAnnotationNames() {
        var alert = AlertFixtures.alert()
        alert.fields = ["proc.exe": "/dev/shm/x", "ka.user-name": "bob", "path": "/p"]
        let names = AlertmanagerSink.annotations(alert).map(\.0)
        #expect(
            names.contains("field_proc_exe") && names.contains("field_ka_user_name") && names.contains("field_path"))
        let valid = names.allSatisfy { name in
            name.unicodeScalars.allSatisfy {
                $0.isASCII && ($0.properties.isAlphabetic || $0 == "_" || ("0"..."9").contains($0))
            }
        }
        #expect(valid)
    }

    @Test func malwareAndHostAlerts() {
        var malware = AlertFixtures.alert()
        malware.eventKind = .scanResult
        #expect(AlertmanagerSink.labels(malware).first { $0.0 == "alertname" }?.1 == "PatrolMalwareDetected")
        var host = AlertFixtures.alert()
        host.container = nil
        // An empty label is an absent label to Alertmanager: host alerts carry no pod labels at all.
        #expect(
            Set(AlertmanagerSink.labels(host).map(\.0)) == ["alertname", "rule_id", "rule_name", "severity", "node"])
    }
}

@Suite(.serialized) struct AlertmanagerSinkTests {
    static let configuration = AlertmanagerSink.Configuration(
        generatorURL: "https://patrol.example/alerts", resolveAfter: .seconds(1800))

    func sink(_ index: Int, _ manager: AlertmanagerProcess, caFile: String? = nil, logger: Logger = quietLogger)
        -> AlertmanagerSink
    {
        AlertmanagerSink(
            name: "alertmanager[\(index)]",
            target: HTTPSinkTarget(url: manager.baseURL, tls: TLSOptions(caFile: caFile), timeout: .seconds(5)),
            configuration: Self.configuration, logger: logger)
    }

    /// Acceptance 1: two real Alertmanagers as two endpoints; each reports every alert back with the labels,
    /// annotations and times Patrol sent.
    @Test func twoAlertmanagersEachReceiveEveryAlert() async throws {
        guard AlertmanagerProcess.available else {
            print("skipped: \(AlertmanagerProcess.binary) is not installed (scripts/bootstrap)")
            return
        }
        let managers = try await offPool { [try AlertmanagerProcess(), try AlertmanagerProcess()] }
        let rig = try await DeliveryRig.make()
        var alerts = distinctAlerts(30)
        // Real rule alerts carry fields named like `proc.exe`.
        for index in alerts.indices { alerts[index].fields["proc.exe"] = "/dev/shm/true" }
        let sentAfter = UInt64(Date().timeIntervalSince1970 * 1000) * 1_000_000
        try await rig.commit(alerts)
        let deliveries = managers.enumerated().map { rig.delivery(sink($0.offset, $0.element)) }
        let received = try await rig.running(deliveries) {
            var result: [ReceivedAlerts] = []
            for manager in managers {
                _ = try await eventually { try await ReceivedAlerts.fetch(manager).alerts.count >= alerts.count }
                result.append(try await ReceivedAlerts.fetch(manager))
            }
            return result
        }
        let sentBefore = UInt64(Date().timeIntervalSince1970 * 1000) * 1_000_000
        for (index, got) in received.enumerated() {
            #expect(got.alerts.count == alerts.count, "alertmanager \(index)")
            #expect(got.ids == Set(alerts.map(\.id)), "alertmanager \(index)")
            let sent = alerts[7]
            let back = try #require(got.alert(id: sent.id))
            #expect(
                got.labels(back) == [
                    "alertname": "PatrolRuleViolated", "rule_id": "R1000", "rule_name": "Exec from malicious source",
                    "severity": "high", "namespace": "default", "pod": "web-7", "container": "web",
                    "node": "node-1",
                ])
            let annotations = got.annotations(back)
            #expect(annotations["summary"] == sent.message)
            #expect(annotations["fix"] == sent.fix)
            #expect(annotations["description"]?.contains("default/web-7") == true)
            #expect(annotations["pid"] == "42")
            #expect(annotations["field_proc_exe"] == "/dev/shm/true")
            #expect(back["generatorURL"] as? String == "https://patrol.example/alerts")
            // startsAt is the event time; endsAt is the delivery time plus resolveAfter.
            // (Alertmanager answers in milliseconds.)
            #expect(nanoseconds(back["startsAt"] as? String) == sent.time / 1_000_000 * 1_000_000)
            let endsAt = try #require(nanoseconds(back["endsAt"] as? String))
            #expect(endsAt >= sentAfter + 1_800_000_000_000 && endsAt <= sentBefore + 1_800_000_000_000)
            #expect((back["status"] as? [String: Any])?["state"] as? String == "active")
        }
        for delivery in deliveries { #expect(delivery.statistics.delivered == alerts.count) }
        await rig.close()
        for manager in managers { manager.stop() }
    }

    /// One endpoint down never holds up the other; when it comes back it gets its whole backlog.
    @Test func aDownEndpointDelaysOnlyItselfAndCatchesUpAfterRestart() async throws {
        guard AlertmanagerProcess.available else {
            print("skipped: \(AlertmanagerProcess.binary) is not installed (scripts/bootstrap)")
            return
        }
        let (up, down) = try await offPool { (try AlertmanagerProcess(), try AlertmanagerProcess()) }
        try await offPool { down.stop() }
        let rig = try await DeliveryRig.make()
        let deliveries = [rig.delivery(sink(0, up)), rig.delivery(sink(1, down))]
        let first = distinctAlerts(20)
        let second = distinctAlerts(15, from: 20)
        try await rig.running(deliveries) {
            try await rig.commit(first)
            #expect(try await eventually { try await ReceivedAlerts.fetch(up).ids == Set(first.map(\.id)) })
            try await rig.commit(second)
            let all = Set((first + second).map(\.id))
            #expect(try await eventually { try await ReceivedAlerts.fetch(up).ids == all })
            // The down endpoint has been failing all along, counted, and has every alert still ahead of it.
            #expect(deliveries[1].statistics.failedAttempts > 0)
            #expect(deliveries[1].statistics.delivered == 0)
            try await offPool { try down.start() }
            #expect(try await eventually { try await ReceivedAlerts.fetch(down).ids == all })
        }
        #expect(deliveries[0].statistics.delivered == 35)
        #expect(deliveries[0].statistics.failedAttempts == 0)
        #expect(deliveries[1].statistics.delivered == 35)
        await rig.close()
        up.stop()
        down.stop()
    }

    /// Acceptance 5, at run time: an endpoint whose certificate does not verify against the configured CA
    /// fails with a TLS error in the log and the failure counter, while the correctly configured one
    /// (same server, right CA) delivers everything.
    @Test func aCertificateThatDoesNotVerifyIsReportedAndBlocksNothing() async throws {
        guard AlertmanagerProcess.available else {
            print("skipped: \(AlertmanagerProcess.binary) is not installed (scripts/bootstrap)")
            return
        }
        let certificates = try await offPool {
            let directory = try TemporaryDirectory(prefix: "patrol-am-tls")
            return try TestCertificates(in: directory.path)
        }
        let manager = try await offPool {
            try AlertmanagerProcess(tls: (certificates.serverCertificate, certificates.serverKey))
        }
        let handler = RecordingLogHandler()
        handler.logLevel = .warning
        let logger = Logger(label: "test") { _ in handler }
        let rig = try await DeliveryRig.make()
        let good = rig.delivery(sink(0, manager, caFile: certificates.caCertificate))
        let wrongCA = rig.delivery(sink(1, manager, caFile: certificates.rogueCACertificate), logger: logger)
        let alerts = distinctAlerts(10)
        try await rig.running([good, wrongCA]) {
            try await rig.commit(alerts)
            #expect(
                try await eventually {
                    try await ReceivedAlerts.fetch(manager, caFile: certificates.caCertificate).ids
                        == Set(alerts.map(\.id))
                })
            #expect(await eventually { wrongCA.statistics.failedAttempts >= 2 })
        }
        #expect(good.statistics.delivered == alerts.count)
        #expect(wrongCA.statistics.delivered == 0)
        let warning = handler.records.withLock { records in
            records.first { $0.message.contains("sink delivery failed") }
        }
        let text = "\(warning?.metadata["error"] ?? "")"
        #expect(text.contains("(tls)"), "logged: \(text)")
        #expect(text.contains(manager.baseURL), "logged: \(text)")
        #expect("\(warning?.metadata["sink"] ?? "")" == "alertmanager[1]")
        await rig.close()
        manager.stop()
    }
}
