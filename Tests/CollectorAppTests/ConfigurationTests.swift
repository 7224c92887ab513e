import Basics
import EventModel
import Testing
@testable import CollectorApp

@Suite struct ConfigurationTests {
    @Test func fullFileIsRead() throws {
        let config = try CollectorConfiguration.parse(
            yaml: """
                listen: tls+tcp://0.0.0.0:7600
                store: /var/lib/patrol/patrol.db
                rules: [/etc/patrol/rules, /etc/patrol/local.yaml]
                tls: {certificate: c.pem, key: k.pem, ca: ca.pem}
                sinks:
                  stdout: false
                  csv: {path: /var/log/alerts.csv, maxBytes: 1000, keepFiles: 2}
                ingest: {maxMessageBytes: 1024, parallelRequests: 3}
                metrics: {listen: 127.0.0.1:9464}
                """, source: "collector.yaml")
        #expect(config.metricsListen == "127.0.0.1:9464")
        #expect(config.listen == "tls+tcp://0.0.0.0:7600")
        #expect(config.rulePaths == ["/etc/patrol/rules", "/etc/patrol/local.yaml"])
        #expect(config.tls == .init(certificate: "c.pem", key: "k.pem", ca: "ca.pem"))
        #expect(config.sinks.stdout == false)
        #expect(config.sinks.csvPath == "/var/log/alerts.csv")
        #expect(config.sinks.csvMaxBytes == 1000)
        #expect(config.ingest.parallelRequests == 3)
        #expect(config.storePath == "/var/lib/patrol/patrol.db")
        #expect(config.alertRetention.maxAgeNanoseconds == 7 * 86_400 * 1_000_000_000)
        #expect(config.alertRetention.maxAlerts == nil)
    }

    @Test func storeAsAMappingCarriesTheAlertRetention() throws {
        let config = try CollectorConfiguration.parse(
            yaml: """
                store: {path: /data/patrol.db, alertRetention: 2d, maxAlerts: 500000, pruneInterval: 2s}
                sinks:
                  syslog: {address: "127.0.0.1:514", protocol: tcp, confirmAfterMs: 5000}
                """, source: "collector.yaml")
        #expect(config.storePath == "/data/patrol.db")
        #expect(config.alertRetention.maxAgeNanoseconds == 2 * 86_400 * 1_000_000_000)
        #expect(config.alertRetention.maxAlerts == 500_000)
        #expect(config.alertRetention.pruneIntervalNanoseconds == 2_000_000_000)
        #expect(config.sinks.syslog?.confirmAfterMs == 5000)
        let unlimited = try CollectorConfiguration.parse(
            yaml: "store: {alertRetention: 0}", source: "collector.yaml")
        #expect(unlimited.alertRetention.maxAgeNanoseconds == nil)
        #expect(unlimited.alertRetention.pruneIntervalNanoseconds == 30_000_000_000)
        #expect(unlimited.storePath == "patrol.db")
        #expect {
            _ = try CollectorConfiguration.parse(yaml: "store: {retention: 7d}", source: "collector.yaml")
        } throws: { "\($0)".contains("store: unknown key 'retention'") }
    }

    @Test(arguments: [
        ("listn: tcp://x", "collector.yaml:1: top level: unknown key 'listn'"),
        ("sinks:\n  csv: {maxBytes: 10}", "collector.yaml:2: sinks.csv: missing required key 'path'"),
        ("sinks:\n  stdout: maybe", "collector.yaml:2: sinks.stdout: expected true or false, found 'maybe'"),
        ("ingest:\n  parallelRequests: -2", "collector.yaml:2: ingest.parallelRequests: expected a non-negative integer"),
        ("listen: [a, b]", "collector.yaml:1: listen: expected a string"),
        ("metrics:\n  port: 9464", "collector.yaml:2: metrics: unknown key 'port'"),
        ("listen: 'unterminated", "collector.yaml is not valid YAML"),
    ])
    func badFilesNameFileLineAndKey(yaml: String, expected: String) {
        #expect {
            _ = try CollectorConfiguration.parse(yaml: yaml, source: "collector.yaml")
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func flagsOverrideTheFile() throws {
        let command = try CollectorCommand.parse(["--listen", "ipc:///tmp/c.sock", "--no-stdout", "--csv", "/tmp/a.csv", "--rules", "r1", "--rules", "r2"])
        let config = try command.resolvedConfiguration()
        #expect(config.listen == "ipc:///tmp/c.sock")
        #expect(config.sinks.stdout == false)
        #expect(config.sinks.csvPath == "/tmp/a.csv")
        #expect(config.rulePaths == ["r1", "r2"])
    }

    @Test func elasticsearchSinkFromFileAndFlags() throws {
        let yaml = """
            sinks:
              elasticsearch: {url: "https://es:9200", indexPrefix: k8s-alerts, apiKey: abc, caFile: /ca.pem}
            """
        let config = try CollectorConfiguration.parse(yaml: yaml, source: "collector.yaml")
        #expect(config.sinks.elasticsearch?.url == "https://es:9200")
        #expect(config.sinks.elasticsearch?.indexPrefix == "k8s-alerts")
        #expect(config.sinks.elasticsearch?.apiKey == "abc")
        #expect(config.sinks.elasticsearch?.caFile == "/ca.pem")
        #expect(throws: (any Error).self) {
            _ = try CollectorConfiguration.parse(
                yaml: "sinks:\n  elasticsearch: {url: x, apiKey: a, bearerToken: b}", source: "c.yaml")
        }
        #expect(throws: (any Error).self) {
            _ = try CollectorConfiguration.parse(yaml: "sinks:\n  elasticsearch: {indexPrefix: a}", source: "c.yaml")
        }
        let command = try CollectorCommand.parse(["--elasticsearch", "10.0.0.5:9200", "--elasticsearch-alerts", "alerts"])
        let flags = try command.resolvedConfiguration()
        #expect(flags.sinks.elasticsearch?.url == "10.0.0.5:9200")
        #expect(flags.sinks.elasticsearch?.indexPrefix == "alerts")
        let orphan = try CollectorCommand.parse(["--elasticsearch-alerts", "x"])
        #expect(throws: (any Error).self) { try orphan.resolvedConfiguration() }
    }

    @Test func auditElasticsearchSection() throws {
        let yaml = """
            audit:
              elasticsearch: {url: "es:9200", indexPrefix: logstash, start: "2024-03-01T00:00:00Z", lagSeconds: 30}
            """
        let config = try CollectorConfiguration.parse(yaml: yaml, source: "collector.yaml")
        #expect(config.audit?.elasticsearch.indexPrefix == "logstash")
        #expect(config.audit?.lagSeconds == 30)
        #expect(config.audit?.start == "2024-03-01T00:00:00Z")
        #expect(config.audit?.layout == .fluentd)
        let agent = try CollectorConfiguration.parse(
            yaml: "audit:\n  elasticsearch: {url: x, indexPrefix: logs-kubernetes.audit_logs, layout: elastic-agent}",
            source: "c.yaml")
        #expect(agent.audit?.layout == .elasticAgent)
        #expect(throws: (any Error).self) {
            _ = try CollectorConfiguration.parse(
                yaml: "audit:\n  elasticsearch: {url: x, indexPrefix: l, layout: logstash}", source: "c.yaml")
        }
        #expect(throws: (any Error).self) {
            _ = try CollectorConfiguration.parse(yaml: "audit:\n  elasticsearch: {url: x}", source: "c.yaml")
        }
        #expect(throws: (any Error).self) {
            _ = try CollectorConfiguration.parse(
                yaml: "audit:\n  elasticsearch: {url: x, indexPrefix: l, lag: 3}", source: "c.yaml")
        }
    }

    @Test func tlsFlagsMustComeTogether() throws {
        let command = try CollectorCommand.parse(["--tls-cert", "c.pem"])
        #expect(throws: (any Error).self) { try command.resolvedConfiguration() }
    }
}
