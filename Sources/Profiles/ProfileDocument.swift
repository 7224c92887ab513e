import Basics
import EventModel
import Foundation
import Yams

/// Profiles as YAML in KubeCop's `ApplicationProfile` shape (`kubescape.io/v1`), so profiles move between
/// KubeCop, the cluster API and Patrol. Patrol's own state (learning, final, ...) travels in annotations,
/// which KubeCop ignores.
public enum ProfileDocument {
    static let apiVersion = "kubescape.io/v1"
    static let kind = "ApplicationProfile"
    static let workloadKindLabel = "kubescape.io/workload-kind"
    static let workloadNameLabel = "kubescape.io/workload-name"
    static let stateAnnotation = "patrol.io/state."
    static let learningEndsAnnotation = "patrol.io/learning-ends."
    static let failureAnnotation = "patrol.io/failure."
    static let incompleteAnnotation = "patrol.io/incomplete."
    static let learningStartedAnnotation = "patrol.io/learning-started."

    /// The profiles as one YAML stream, one document per workload, containers and entries in a stable order.
    public static func yaml(_ profiles: [ApplicationProfile]) throws(ProfilesError) -> String {
        let encoder = YAMLEncoder()
        var documents: [String] = []
        for profile in profiles {
            do {
                documents.append(try encoder.encode(Wire(profile)))
            } catch {
                throw ProfilesError(.badDocument, "cannot write the profile of \(profile.workload)", cause: .error(error))
            }
        }
        return documents.joined(separator: "---\n")
    }

    /// Reads every `ApplicationProfile` document in `text`. `source` names the file in errors, which also
    /// give the document's number and the path of the offending field.
    public static func parse(_ text: String, source: String) throws(ProfilesError) -> [ApplicationProfile] {
        var nodes: [Node] = []
        do {
            // Parser.nextRoot, not compose_all: compose_all's sequence ends quietly at a syntax error.
            let parser = try Parser(yaml: text)
            while let node = try parser.nextRoot() { nodes.append(node) }
        } catch {
            throw ProfilesError(.badDocument, "\(source): not valid YAML: \(error)", cause: .error(error))
        }
        var profiles: [ApplicationProfile] = []
        for (index, node) in nodes.enumerated() {
            let place = "\(source): document \(index + 1)"
            let wire: Wire
            do {
                wire = try YAMLDecoder().decode(Wire.self, from: node)
            } catch let error as DecodingError {
                throw ProfilesError(.badDocument, "\(place): \(describe(error))", cause: .error(error))
            } catch {
                throw ProfilesError(.badDocument, "\(place): \(error)", cause: .error(error))
            }
            profiles.append(try wire.profile(place: place))
        }
        return profiles
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
            return text.isEmpty ? "top level" : text
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context.codingPath + [key])): missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    // MARK: The document's shape

    struct Wire: Codable {
        var apiVersion: String
        var kind: String
        var metadata: Metadata
        var spec: Spec

        struct Metadata: Codable {
            var name: String
            var namespace: String?
            var labels: SortedMap?
            var annotations: SortedMap?
        }

        struct Spec: Codable {
            var containers: [Container]
        }

        struct Container: Codable {
            var name: String
            var execs: [ExecCall]?
            var opens: [OpenCall]?
            var syscalls: [String]?
            var capabilities: [CapabilityCall]?
            var dns: [DNSCall]?
            var networkActivity: NetworkActivity?
        }

        struct ExecCall: Codable { var path: String; var args: [String]? }
        struct OpenCall: Codable { var path: String; var flags: [String]? }
        struct CapabilityCall: Codable { var syscall: String; var caps: [String] }
        struct DNSCall: Codable { var dnsName: String; var addresses: [String]? }
        struct NetworkActivity: Codable { var incoming: [NetworkCall]?; var outgoing: [NetworkCall]? }
        struct NetworkCall: Codable { var `protocol`: String; var port: UInt16; var dstEndpoint: String? }

        init(_ profile: ApplicationProfile) {
            apiVersion = ProfileDocument.apiVersion
            kind = ProfileDocument.kind
            var annotations: [String: String] = [:]
            for container in profile.containers {
                annotations[stateAnnotation + container.name] = container.state.rawValue
                annotations[learningStartedAnnotation + container.name] = container.learningStartedAt.iso8601
                annotations[learningEndsAnnotation + container.name] = container.learningEndsAt.iso8601
                if container.incomplete { annotations[incompleteAnnotation + container.name] = "true" }
                if let reason = container.failureReason { annotations[failureAnnotation + container.name] = reason }
            }
            metadata = Metadata(
                name: profile.workload.objectName, namespace: profile.workload.namespace,
                labels: SortedMap([workloadKindLabel: profile.workload.kind, workloadNameLabel: profile.workload.name]),
                annotations: SortedMap(annotations))
            spec = Spec(containers: profile.containers.sorted { $0.name < $1.name }.map(Container.init))
        }

        func profile(place: String) throws(ProfilesError) -> ApplicationProfile {
            func bad(_ what: String) -> ProfilesError { ProfilesError(.badDocument, "\(place): \(what)") }
            guard apiVersion == ProfileDocument.apiVersion else {
                throw bad("apiVersion: expected \(ProfileDocument.apiVersion), found '\(apiVersion)'")
            }
            guard kind == ProfileDocument.kind else { throw bad("kind: expected ApplicationProfile, found '\(kind)'") }
            guard let namespace = metadata.namespace, !namespace.isEmpty else { throw bad("metadata.namespace: missing") }
            let labels = metadata.labels?.values ?? [:]
            let workload: WorkloadKey
            if let kind = labels[workloadKindLabel], let name = labels[workloadNameLabel] {
                workload = WorkloadKey(namespace: namespace, kind: kind, name: name)
            } else if let parsed = Self.workload(fromObjectName: metadata.name, namespace: namespace) {
                workload = parsed
            } else {
                throw bad(
                    "metadata.name: '\(metadata.name)' does not name a workload as <kind>-<name> "
                        + "(deployment-web, statefulset-db, ...) and the \(workloadKindLabel) and "
                        + "\(workloadNameLabel) labels are missing")
            }
            let annotations = metadata.annotations?.values ?? [:]
            var containers: [ContainerProfile] = []
            for (index, container) in spec.containers.enumerated() {
                let field = "spec.containers[\(index)]"
                guard !container.name.isEmpty else { throw bad("\(field).name: empty") }
                guard !containers.contains(where: { $0.name == container.name }) else {
                    throw bad("\(field).name: container '\(container.name)' is listed twice")
                }
                var profile = ContainerProfile(
                    name: container.name, state: .final, learningStartedAt: 0, learningEndsAt: 0,
                    behaviour: try container.behaviour(field: field, bad: bad))
                if let text = annotations[stateAnnotation + container.name] {
                    guard let state = ProfileState(rawValue: text) else {
                        throw bad("metadata.annotations.\(stateAnnotation + container.name): unknown state '\(text)'")
                    }
                    profile.state = state
                }
                for (prefix, keyPath) in [
                    (learningStartedAnnotation, \ContainerProfile.learningStartedAt),
                    (learningEndsAnnotation, \ContainerProfile.learningEndsAt),
                ] {
                    guard let text = annotations[prefix + container.name] else { continue }
                    guard let time = AuditMapping.parseRFC3339(text) else {
                        throw bad("metadata.annotations.\(prefix + container.name): '\(text)' is not an RFC 3339 time")
                    }
                    profile[keyPath: keyPath] = time
                }
                profile.incomplete = annotations[incompleteAnnotation + container.name] == "true"
                profile.failureReason = annotations[failureAnnotation + container.name]
                containers.append(profile)
            }
            return ApplicationProfile(workload: workload, containers: containers)
        }

        static let objectNameKinds = [
            "deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet",
            "cronjob": "CronJob", "job": "Job", "replicaset": "ReplicaSet", "pod": "Pod",
        ]

        static func workload(fromObjectName name: String, namespace: String) -> WorkloadKey? {
            guard let dash = name.firstIndex(of: "-"), let kind = objectNameKinds[String(name[..<dash])] else { return nil }
            let rest = String(name[name.index(after: dash)...])
            return rest.isEmpty ? nil : WorkloadKey(namespace: namespace, kind: kind, name: rest)
        }
    }
}

extension ProfileDocument.Wire.Container {
    init(_ profile: ContainerProfile) {
        let behaviour = profile.behaviour
        name = profile.name
        execs = behaviour.execs.keys.sorted().flatMap { path in
            behaviour.execs[path]!.sorted { $0.lexicographicallyPrecedes($1) }.map { ProfileDocument.Wire.ExecCall(path: path, args: $0) }
        }
        opens = behaviour.opens.keys.sorted().map { ProfileDocument.Wire.OpenCall(path: $0, flags: OpenMask.flagNames(behaviour.opens[$0]!)) }
        syscalls = behaviour.syscalls.sorted().map(LinuxNames.syscall)
        var capabilities: [UInt32: [UInt32]] = [:]
        for pair in behaviour.capabilities { capabilities[UInt32(pair >> 32), default: []].append(UInt32(pair & 0xffff_ffff)) }
        self.capabilities = capabilities.keys.sorted().map { syscall in
            ProfileDocument.Wire.CapabilityCall(syscall: LinuxNames.syscall(syscall), caps: capabilities[syscall]!.sorted().map(LinuxNames.capability))
        }
        dns = behaviour.dns.keys.sorted().map { ProfileDocument.Wire.DNSCall(dnsName: $0, addresses: behaviour.dns[$0]!.sorted()) }
        func calls(_ endpoints: Set<Endpoint>) -> [ProfileDocument.Wire.NetworkCall] {
            endpoints.sorted().map {
                ProfileDocument.Wire.NetworkCall(protocol: $0.proto.rawValue.uppercased(), port: $0.port, dstEndpoint: $0.address.isEmpty ? nil : $0.address)
            }
        }
        networkActivity = ProfileDocument.Wire.NetworkActivity(incoming: calls(behaviour.incoming), outgoing: calls(behaviour.outgoing))
    }

    func behaviour(field: String, bad: (String) -> ProfilesError) throws(ProfilesError) -> Behaviour {
        var behaviour = Behaviour()
        for (index, exec) in (execs ?? []).enumerated() {
            guard !exec.path.isEmpty else { throw bad("\(field).execs[\(index)].path: empty") }
            behaviour.execs[exec.path, default: []].insert(exec.args ?? [])
        }
        for (index, open) in (opens ?? []).enumerated() {
            guard !open.path.isEmpty else { throw bad("\(field).opens[\(index)].path: empty") }
            switch OpenMask.of(names: open.flags ?? []) {
            case .success(let mask): behaviour.opens[open.path, default: 0] |= mask
            case .failure(let unknown): throw bad("\(field).opens[\(index)].flags: unknown open flag '\(unknown.name)'")
            }
        }
        for (index, name) in (syscalls ?? []).enumerated() {
            guard let number = LinuxNames.syscallNumber(name) else {
                throw bad("\(field).syscalls[\(index)]: unknown syscall '\(name)'")
            }
            behaviour.syscalls.insert(number)
        }
        for (index, call) in (capabilities ?? []).enumerated() {
            guard let syscall = LinuxNames.syscallNumber(call.syscall) else {
                throw bad("\(field).capabilities[\(index)].syscall: unknown syscall '\(call.syscall)'")
            }
            for (capIndex, cap) in call.caps.enumerated() {
                let name = cap.hasPrefix("CAP_") ? cap : "CAP_" + cap  // kubescape writes SETUID for CAP_SETUID
                guard let number = LinuxNames.capabilities.firstIndex(of: name.uppercased()) else {
                    throw bad("\(field).capabilities[\(index)].caps[\(capIndex)]: unknown capability '\(cap)'")
                }
                behaviour.capabilities.insert(UInt64(syscall) << 32 | UInt64(number))
            }
        }
        for (index, call) in (dns ?? []).enumerated() {
            let name = normalisedDNSName(call.dnsName)
            guard !name.isEmpty else { throw bad("\(field).dns[\(index)].dnsName: empty") }
            behaviour.dns[name, default: []].formUnion(call.addresses ?? [])
        }
        func endpoints(_ calls: [ProfileDocument.Wire.NetworkCall]?, _ list: String, incoming: Bool) throws(ProfilesError) -> Set<Endpoint> {
            var result: Set<Endpoint> = []
            for (index, call) in (calls ?? []).enumerated() {
                guard let proto = TransportProtocol(rawValue: call.protocol.lowercased()), proto != .unspecified else {
                    throw bad("\(field).networkActivity.\(list)[\(index)].protocol: expected TCP or UDP, found '\(call.protocol)'")
                }
                result.insert(Endpoint(proto: proto, address: incoming ? "" : call.dstEndpoint ?? "", port: call.port))
            }
            return result
        }
        behaviour.incoming = try endpoints(networkActivity?.incoming, "incoming", incoming: true)
        behaviour.outgoing = try endpoints(networkActivity?.outgoing, "outgoing", incoming: false)
        return behaviour
    }
}

/// A string map written with its keys sorted, so exported YAML is the same for the same profile.
struct SortedMap: Codable {
    var values: [String: String]

    init(_ values: [String: String]) { self.values = values }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        var values: [String: String] = [:]
        for key in container.allKeys { values[key.stringValue] = try container.decode(String.self, forKey: key) }
        self.values = values
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for key in values.keys.sorted() { try container.encode(values[key]!, forKey: Key(stringValue: key)) }
    }
}
