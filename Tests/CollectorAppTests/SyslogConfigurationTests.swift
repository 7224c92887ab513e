import AlertSinks
import Foundation
import Logging
import Testing

@testable import CollectorApp

/// `sinks.syslog` as an operator writes it: parsed with its defaults, and mistakes refused at start-up.
@Suite struct SyslogConfigurationTests {
    @Test func parsesEveryKeyAndBuildsTheSink() throws {
        let config = try CollectorConfiguration.parse(
            yaml: """
                sinks:
                  syslog:
                    address: "127.0.0.1:6514"
                    protocol: tcp
                    facility: daemon
                    enterpriseNumber: "1.2.3"
                    appName: guard
                    maxMessageBytes: 4096
                    utf8BOM: true
                """, source: "t.yaml")
        let settings = try #require(config.sinks.syslog)
        #expect(settings.protocol == "tcp" && settings.facility == "daemon" && settings.enterpriseNumber == "1.2.3")
        let sink = try Collector.syslogSink(settings, logger: Logger(label: "test"))
        #expect(sink.name == "syslog")
        let defaults = try #require(
            try CollectorConfiguration.parse(yaml: "sinks: {syslog: {address: 'h:514'}}", source: "t").sinks.syslog)
        #expect(defaults.protocol == "udp" && defaults.facility == "local0" && defaults.enterpriseNumber == "32473")
    }

    @Test func mistakesNameTheSetting() {
        for (yaml, needle) in [
            ("sinks: {syslog: {address: 'h:514', protocol: quic}}", "sinks.syslog.protocol"),
            ("sinks: {syslog: {address: 'h:514', facility: local9}}", "sinks.syslog.facility"),
            ("sinks: {syslog: {address: 'h:514', enterpriseNumber: acme}}", "sinks.syslog.enterpriseNumber"),
            ("sinks: {syslog: {adress: 'h:514'}}", "sinks.syslog"),
            ("sinks: {syslog: {address: 'h:514', maxMessageBytes: 100}}", "sinks.syslog.maxMessageBytes"),
        ] {
            do {
                _ = try CollectorConfiguration.parse(yaml: yaml, source: "t.yaml")
                Issue.record("accepted: \(yaml)")
            } catch {
                #expect(error.message.contains(needle), "\(error.message)")
            }
        }
        // A TLS sink without its CA, or with an unreadable file, is refused when the collector builds its sinks.
        let noCA = CollectorConfiguration.SyslogSettings(address: "127.0.0.1:6514")
        var tls = noCA
        tls.protocol = "tls"
        #expect(throws: AlertSinksError.self) { _ = try Collector.syslogSink(tls, logger: Logger(label: "test")) }
        tls.caFile = "/nonexistent/ca.pem"
        #expect(throws: AlertSinksError.self) { _ = try Collector.syslogSink(tls, logger: Logger(label: "test")) }
    }
}
