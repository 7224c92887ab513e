import Basics
import EventModel
public import Logging
import OutboundHTTP

/// Posts alerts to one Alertmanager (`POST <url>/api/v2/alerts`, a JSON array of postable alerts).
///
/// An HA pair or cluster is fed by configuring one sink per instance, each with its own outbox cursor:
/// every instance receives every alert, and one that is down delays only itself (Alertmanager's own
/// gossip de-duplicates the notifications). Labels carry only bounded values (REFERENCE §7), so alerts
/// of one rule on one workload group into one series; pid, process and the alert id go into annotations.
public final class AlertmanagerSink: AlertSink {
    public struct Configuration: Sendable, Equatable {
        /// `generatorURL` of every alert (a link back to Patrol or a dashboard); nil leaves it out.
        public var generatorURL: String?
        /// `endsAt` is the delivery time plus this: Patrol alerts are one-shot, so without new occurrences
        /// Alertmanager resolves them after this long. Counted from delivery, not from the event, so that
        /// alerts delivered late (after an outage) still fire instead of arriving already resolved.
        public var resolveAfter: Duration

        public init(generatorURL: String? = nil, resolveAfter: Duration = .seconds(3600)) {
            self.generatorURL = generatorURL
            self.resolveAfter = resolveAfter
        }
    }

    public let name: String
    public let target: HTTPSinkTarget
    public let configuration: Configuration
    private let endpoint: String
    private let client: HTTPClient
    private let logger: Logger

    /// - Parameter name: the outbox cursor and metrics label, e.g. `alertmanager[0]`.
    public init(name: String, target: HTTPSinkTarget, configuration: Configuration = Configuration(), logger: Logger) {
        self.name = name
        self.target = target
        self.configuration = configuration
        self.endpoint = HTTPSinkTarget.trimmed(target.url) + "/api/v2/alerts"
        var logger = logger
        logger[metadataKey: "sink"] = "\(name)"
        self.logger = logger
        self.client = target.makeClient(logger: logger)
    }

    deinit { client.shutdown() }

    public func deliver(_ alerts: [Alert]) async throws(AlertSinksError) {
        guard !alerts.isEmpty else { return }
        let body = Self.payload(alerts, configuration: configuration, now: WallClock.now())
        let request = HTTPRequest(
            method: .post, url: endpoint, headers: ["Content-Type": "application/json"], body: Array(body.utf8))
        let response: HTTPResponse
        do {
            response = try await client.send(request)
        } catch {
            throw .http("POST \(endpoint)", error: error)
        }
        guard response.isSuccess else { throw .http("POST \(endpoint)", response: response) }
    }

    /// `alertname` by what fired: a ClamAV hit or a rule.
    static func alertName(_ alert: Alert) -> String {
        alert.eventKind == .scanResult ? "PatrolMalwareDetected" : "PatrolRuleViolated"
    }

    /// The labels: exactly REFERENCE §7's set, bounded values only. Empty values are left out, as
    /// Alertmanager treats an empty label as absent (a host alert has no namespace, pod or container).
    public static func labels(_ alert: Alert) -> [(String, String)] {
        let pairs: [(String, String)] = [
            ("alertname", alertName(alert)), ("rule_id", alert.ruleID), ("rule_name", alert.ruleName),
            ("severity", alert.severity.rawValue), ("namespace", alert.container?.namespace ?? ""),
            ("pod", alert.container?.podName ?? ""), ("container", alert.container?.containerName ?? ""),
            ("node", alert.node),
        ]
        return pairs.filter { !$0.1.isEmpty }
    }

    /// The annotations: `summary` (the rule's rendered message), `description` (where and which process),
    /// `fix`, and the unbounded details: the alert id (stable, so re-deliveries can be recognised), process,
    /// container id and image, event kind and time, occurrence count, and the rule's extra fields.
    public static func annotations(_ alert: Alert) -> [(String, String)] {
        let place: String
        if let container = alert.container {
            place = "pod \(container.namespace)/\(container.podName) container \(container.containerName)"
        } else {
            place = "the host"
        }
        let process = alert.process
        let description =
            "\(alert.ruleName) (\(alert.ruleID)) on node \(alert.node), \(place): process \(process.pid) "
            + "(\(process.comm), \(process.exe)) at \(alert.time.iso8601)"
        var pairs: [(String, String)] = [
            ("summary", alert.message), ("description", description), ("fix", alert.fix), ("alert_id", alert.id),
            ("event_kind", alert.eventKind.rawValue), ("event_time", alert.time.iso8601),
            ("pid", String(process.pid)), ("comm", process.comm), ("exe", process.exe),
            ("count", String(alert.count)),
        ]
        if let container = alert.container {
            pairs.append(("container_id", container.containerID))
            pairs.append(("image", container.image))
        }
        for key in alert.fields.keys.sorted() where !key.isEmpty {
            pairs.append(("field_" + annotationName(key), alert.fields[key]!))
        }
        return pairs.filter { !$0.1.isEmpty }
    }

    /// Alertmanager refuses the whole POST (400) when an annotation name is not a Prometheus label name
    /// (`[a-zA-Z_][a-zA-Z0-9_]*`), and rule fields are named like `proc.exe`: other characters become `_`.
    static func annotationName(_ key: String) -> String {
        String(
            String.UnicodeScalarView(
                key.unicodeScalars.map { scalar in
                    scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)) ? scalar : "_"
                }))
    }

    /// The request body for a batch.
    public static func payload(_ alerts: [Alert], configuration: Configuration, now: EpochNanoseconds) -> String {
        let resolve = configuration.resolveAfter.components
        let resolveNanos = UInt64(max(0, resolve.seconds)) * 1_000_000_000 + UInt64(resolve.attoseconds / 1_000_000_000)
        var json = JSONWriter()
        json.beginArray()
        for alert in alerts {
            json.beginObject()
            json.beginObject("labels")
            for (key, value) in labels(alert) { json.string(key, value) }
            json.endObject()
            json.beginObject("annotations")
            for (key, value) in annotations(alert) { json.string(key, value) }
            json.endObject()
            json.string("startsAt", alert.time.iso8601)
            json.string("endsAt", (max(alert.time, now) + resolveNanos).iso8601)
            if let url = configuration.generatorURL { json.string("generatorURL", url) }
            json.endObject()
        }
        json.endArray()
        return json.text
    }
}
