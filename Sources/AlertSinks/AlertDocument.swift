import Basics
import EventModel

/// The one JSON rendering of an alert, shared by stdout, files and HTTP sinks (docs/alerts.md).
public enum AlertDocument {
    public static func json(_ alert: Alert) -> String {
        var json = JSONWriter()
        json.beginObject()
        json.string("id", alert.id)
        json.string("time", alert.time.iso8601)
        json.number("time_ns", alert.time)
        json.string("rule_id", alert.ruleID)
        json.string("rule_name", alert.ruleName)
        json.string("severity", alert.severity.rawValue)
        json.string("message", alert.message)
        json.string("fix", alert.fix)
        json.beginArray("tags")
        for tag in alert.tags { json.element(tag) }
        json.endArray()
        json.string("event_kind", alert.eventKind.rawValue)
        json.string("node", alert.node)
        if let container = alert.container {
            json.beginObject("container")
            json.string("id", container.containerID)
            json.string("name", container.containerName)
            json.string("runtime", container.runtime)
            json.string("image", container.image)
            json.string("namespace", container.namespace)
            json.string("pod", container.podName)
            json.string("pod_uid", container.podUID)
            // From the Kubernetes API; left out when the sensor has none (or does not know the pod yet).
            if !container.labels.isEmpty {
                json.beginObject("labels")
                for (key, value) in container.labels.sorted(by: { $0.key < $1.key }) { json.string(key, value) }
                json.endObject()
            }
            if !container.ownerKind.isEmpty || !container.ownerName.isEmpty {
                json.beginObject("owner")
                json.string("kind", container.ownerKind)
                json.string("name", container.ownerName)
                json.endObject()
            }
            json.endObject()
        }
        json.beginObject("process")
        json.number("pid", alert.process.pid)
        json.number("ppid", alert.process.ppid)
        json.number("uid", alert.process.uid)
        json.number("gid", alert.process.gid)
        json.string("comm", alert.process.comm)
        json.string("exe", alert.process.exe)
        json.string("cwd", alert.process.cwd)
        json.number("mount_ns", alert.process.mountNamespace)
        json.endObject()
        json.beginObject("fields")
        for key in alert.fields.keys.sorted() { json.string(key, alert.fields[key]!) }
        json.endObject()
        json.number("count", alert.count)
        // Always present, so a consumer never has to know whether this is a cooldown summary.
        json.string("first_seen", alert.firstSeenTime.iso8601)
        json.string("last_seen", alert.lastSeenTime.iso8601)
        json.string("alertname", alert.alertName)
        if let malware = alert.malware {
            json.beginObject("malware")
            json.string("signature", malware.signature)
            json.string("path", malware.path)
            json.string("sha256", malware.sha256)
            json.number("size_bytes", malware.sizeBytes)
            json.bool("in_image", malware.inImage)
            json.endObject()
        }
        json.endObject()
        return json.text
    }
}
