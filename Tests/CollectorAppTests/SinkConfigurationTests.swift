import AlertSinks
import Basics
import Foundation
import Logging
import OutboundHTTP
import TestSupport
import Testing

@testable import CollectorApp

@Suite struct SinkConfigurationTests {
    @Test func alertmanagerWebhookAndDeliveryPolicies() throws {
        let config = try CollectorConfiguration.parse(
            yaml: """
                sinks:
                  stdout: false
                  delivery: {batchSize: 200, maxBacklog: 100000, overflow: dropOldest}
                  alertmanager:
                    endpoints: [http://am-0:9093, https://am-1.example:9093/]
                    generatorURL: https://patrol.example
                    bearerTokenFile: /var/run/secrets/am-token
                    caFile: /etc/patrol/am-ca.pem
                    resolveAfterSeconds: 600
                    delivery: {ratePerSecond: 50, burst: 100, initialBackoffMs: 250, maxBackoffMs: 60000}
                  webhook:
                    url: https://hooks.example/patrol
                    headers: {X-Tenant: blue}
                    username: patrol
                    password: pw
                    delivery: {overflow: keep}
                """, source: "collector.yaml")
        let am = try #require(config.sinks.alertmanager)
        #expect(am.endpoints == ["http://am-0:9093", "https://am-1.example:9093/"])
        #expect(am.http.bearerTokenFile == "/var/run/secrets/am-token")
        #expect(am.http.caFile == "/etc/patrol/am-ca.pem")
        #expect(am.resolveAfterSeconds == 600)
        let amPolicy = config.sinks.policy(for: "alertmanager")
        // A sink's own delivery keys override the default's; the rest are inherited.
        #expect(amPolicy.batchSize == 200 && amPolicy.maxBacklog == 100000 && amPolicy.overflow == .dropOldest)
        #expect(amPolicy.rateLimit == .init(perSecond: 50, burst: 100))
        #expect(amPolicy.initialBackoff == .milliseconds(250) && amPolicy.maxBackoff == .seconds(60))
        let hook = try #require(config.sinks.webhook)
        #expect(hook.headers == ["X-Tenant": "blue"])
        #expect(hook.http.username == "patrol")
        #expect(config.sinks.policy(for: "webhook").overflow == .keep)
        #expect(config.sinks.policy(for: "webhook").maxBacklog == 100000)
        #expect(config.sinks.policy(for: "csv") == config.sinks.delivery)
    }

    /// Acceptance 5, at start-up: the error names the file, line and the exact setting.
    @Test(arguments: [
        (
            "sinks:\n  alertmanager:\n    endpoints:\n      - http://am-0:9093\n      - am-1:9093",
            "collector.yaml:5: sinks.alertmanager.endpoints[1]: 'am-1:9093' is not a URL"
        ),
        (
            "sinks:\n  alertmanager:\n    endpoints: [http://am-0:9093, 'http://am 1:9093']",
            "sinks.alertmanager.endpoints[1]: 'http://am 1:9093': the host contains a space"
        ),
        (
            "sinks:\n  alertmanager:\n    endpoints: [ftp://am-0:9093]",
            "sinks.alertmanager.endpoints[0]: 'ftp://am-0:9093': scheme must be http or https"
        ),
        (
            "sinks:\n  alertmanager:\n    endpoints: [http://am-0:99999]",
            "sinks.alertmanager.endpoints[0]: 'http://am-0:99999': bad port '99999'"
        ),
        (
            "sinks:\n  webhook:\n    url: http://:80/x",
            "collector.yaml:3: sinks.webhook.url: 'http://:80/x' has no host"
        ),
        (
            "sinks:\n  alertmanager:\n    endpoints: [http://a:1]\n    bearerToken: t\n    username: u",
            "sinks.alertmanager: give only one of username/password, bearerToken, bearerTokenFile"
        ),
        (
            "sinks:\n  webhook:\n    url: http://a:1\n    delivery: {overflow: spill}",
            "sinks.webhook.delivery.overflow: unknown policy 'spill' (expected one of: dropOldest, keep)"
        ),
        ("sinks:\n  delivery: {burst: 5}", "sinks.delivery.burst: needs ratePerSecond"),
        ("sinks:\n  alertmanager: {endpoints: []}", "sinks.alertmanager.endpoints: give at least one URL"),
    ])
    func misconfiguredSinksNameTheSetting(yaml: String, expected: String) {
        #expect {
            _ = try CollectorConfiguration.parse(yaml: yaml, source: "collector.yaml")
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    /// Certificate, key and token files are checked before the collector starts anything.
    @Test func missingOrWrongFilesStopTheStartNamingTheSetting() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let notACertificate = directory.file("garbage.pem")
        try "hello".write(toFile: notACertificate, atomically: true, encoding: .utf8)
        let emptyToken = directory.file("token")
        try "\n".write(toFile: emptyToken, atomically: true, encoding: .utf8)
        let cases: [(String, String)] = [
            (
                "alertmanager: {endpoints: [https://a:1], caFile: \(directory.file("missing.pem"))}",
                "sinks.alertmanager.caFile: file \(directory.file("missing.pem")) does not exist"
            ),
            (
                "alertmanager: {endpoints: [https://a:1], caFile: \(notACertificate)}",
                "sinks.alertmanager.caFile: \(notACertificate) holds no PEM certificate"
            ),
            (
                "webhook: {url: https://a:1, clientCertificate: \(notACertificate), clientKey: \(notACertificate)}",
                "sinks.webhook.clientCertificate: \(notACertificate) holds no PEM certificate"
            ),
            (
                "webhook: {url: https://a:1, bearerTokenFile: \(emptyToken)}",
                "sinks.webhook.bearerTokenFile: \(emptyToken) is empty"
            ),
        ]
        for (sinks, expected) in cases {
            let config = try CollectorConfiguration.parse(yaml: "sinks:\n  \(sinks)", source: "c.yaml")
            let collector = Collector(configuration: config, logger: Logger(label: "test"))
            #expect {
                _ = try collector.makeSinks()
            } throws: { error in
                "\(error)".contains(expected)
            }
        }
    }

    @Test func oneSinkPerAlertmanagerEndpoint() throws {
        let config = try CollectorConfiguration.parse(
            yaml: "sinks:\n  stdout: false\n  alertmanager: {endpoints: [http://a:9093, http://b:9093]}",
            source: "c.yaml")
        let sinks = try Collector(configuration: config, logger: Logger(label: "test")).makeSinks()
        #expect(sinks.map(\.0.name) == ["alertmanager[0]", "alertmanager[1]"])
    }
}
