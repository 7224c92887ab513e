import Basics
import EventModel
import Foundation
import Logging
import Metrics
import Profiles
import RuleEngine
import SensorApp
import ServiceLifecycle
import Store
import Transport
import WireFormat
import Yams

#if canImport(Glibc)
    import Glibc
#endif

/// Who may use the admin service, and the check every request passes first.
///
/// - `ipc://`: the peer's uid as the kernel reports it (SO_PEERCRED through nng) must be root, the collector's
///   own user or one of `admin.allowedUIDs`. The socket file's mode (0600 by default) keeps others from even
///   connecting; the uid check still holds if the mode is loosened.
/// - `tls+tcp://`: nng refuses a handshake without a client certificate signed by `admin.tls.ca`; a request on
///   a connection whose certificate was not verified is refused here as well.
/// - `inproc://` (tests, in-process tools): the caller is this process.
struct AdminAuthorizer: Sendable {
    let address: String
    let allowedUIDs: Set<UInt32>

    init(address: String, allowedUIDs: [UInt32], ownUID: UInt32 = getuid()) {
        self.address = address
        self.allowedUIDs = Set([0, ownUID] + allowedUIDs)
    }

    /// Nil when `peer` may call; else the status and reason of the refusal.
    func refusal(_ peer: PeerInfo) -> (status: RPCStatus, reason: String)? {
        if address.hasPrefix("inproc://") { return nil }
        if address.hasPrefix("tls+tcp://") {
            return peer.tlsVerified ? nil : (.unauthenticated, "no verified client certificate")
        }
        if address.hasPrefix("ipc://") {
            guard let uid = peer.peerUID else { return (.unauthenticated, "the peer's credentials are not known") }
            return allowedUIDs.contains(uid) ? nil : (.permissionDenied, "uid \(uid) may not use the admin service")
        }
        return (.unauthenticated, "the admin service accepts only ipc:// and tls+tcp:// connections")
    }
}

/// Serves `patrol.v1.AdminService` for patrolctl: profiles, sensors, alerts, rules and bindings.
///
/// Every request is authorised first (`AdminAuthorizer`); a refused one is answered PERMISSION_DENIED or
/// UNAUTHENTICATED with the reason, logged (rate-limited) and counted in `patrol_admin_refused_total`.
struct AdminRPCHandler: Sendable {
    let profiles: ProfileRegistry
    let store: Store
    let ruleSet: RuleSet
    let bindings: BindingsController
    /// On-demand malware scans, shared with the sensor RPC handler that delivers them.
    let scans: ScanRegistry
    let authorizer: AdminAuthorizer
    let logger: Logger
    private let refusedLog = LogThrottle()

    init(
        profiles: ProfileRegistry, store: Store, ruleSet: RuleSet, bindings: BindingsController,
        scans: ScanRegistry = ScanRegistry(), authorizer: AdminAuthorizer, logger: Logger
    ) {
        self.bindings = bindings
        self.scans = scans
        self.profiles = profiles
        self.store = store
        self.ruleSet = ruleSet
        self.authorizer = authorizer
        self.logger = logger
    }

    /// Answers with a status and a reason for people; the payload is empty unless the status is OK.
    struct Failure: Error {
        let status: RPCStatus
        let message: String
        init(_ status: RPCStatus, _ message: String) {
            self.status = status
            self.message = message
        }
    }

    func handle(_ request: RPCRequest, _ peer: PeerInfo) async -> RPCReply {
        let method = request.method.split(separator: "/").last.map(String.init) ?? request.method
        if let (status, reason) = authorizer.refusal(peer) {
            Counter(
                label: "patrol_admin_refused_total",
                dimensions: [("reason", status == .permissionDenied ? "uid" : "unauthenticated")]
            )
            .increment()
            if let suppressed = refusedLog.admit() {
                logger.warning(
                    "admin request refused",
                    metadata: [
                        "method": "\(method)", "peer": "\(peer.remoteAddress)",
                        "uid": "\(peer.peerUID.map(String.init) ?? "-")",
                        "reason": "\(reason)", "suppressed_since_last": "\(suppressed)",
                    ])
            }
            return RPCReply(status: status, message: "admin request refused: \(reason)")
        }
        let reply: RPCReply
        do {
            reply = RPCReply(status: .ok, payload: try await dispatch(method: request.method, payload: request.payload))
        } catch let failure as Failure {
            reply = RPCReply(status: failure.status, message: failure.message)
        } catch let error as WireFormatError {
            reply = RPCReply(status: .invalidArgument, message: error.description)
        } catch {
            reply = RPCReply(status: .internal, message: "\(error)")
        }
        Counter(
            label: "patrol_admin_requests_total",
            // Only the service's own method names become labels, so a caller cannot grow the series without end.
            dimensions: [
                ("method", RPCMethods.adminService.contains(request.method) ? method : "unknown"),
                ("status", "\(reply.status)"),
            ]
        ).increment()
        if reply.status == .ok, !method.hasPrefix("List"), !method.hasPrefix("Get") {
            logger.info("admin change", metadata: ["method": "\(method)", "peer": "\(peer.remoteAddress)"])
        }
        return reply
    }

    private func dispatch(method: String, payload: [UInt8]) async throws -> [UInt8] {
        switch method {
        case RPCMethods.admin("ListBindings"):
            return WireCodec.encode(await listBindings(try WireCodec.decodeAdminListRequest(payload)))
        case RPCMethods.admin("GetBinding"):
            return WireCodec.encodeGetReply(try await getBinding(try WireCodec.decodeAdminGetRequest(payload)))
        case RPCMethods.admin("ApplyBindings"):
            return WireCodec.encode(await applyBindings(try WireCodec.decodeAdminApplyRequest(payload)))
        case RPCMethods.admin("DeleteBinding"):
            let request = try WireCodec.decodeAdminDeleteRequest(payload)
            return WireCodec.encodeDeleteReply(
                deleted: try await bindings.delete(name: request.name, namespace: request.namespace))
        case RPCMethods.admin("ListProfiles"):
            return WireCodec.encode(listProfiles(try WireCodec.decodeAdminListRequest(payload)))
        case RPCMethods.admin("GetProfile"):
            return WireCodec.encodeGetReply(try getProfile(try WireCodec.decodeAdminGetRequest(payload)))
        case RPCMethods.admin("ApplyProfiles"):
            return WireCodec.encode(try await applyProfiles(try WireCodec.decodeAdminApplyRequest(payload)))
        case RPCMethods.admin("DeleteProfile"):
            return WireCodec.encodeDeleteReply(
                deleted: try await deleteProfile(try WireCodec.decodeAdminDeleteRequest(payload)))
        case RPCMethods.admin("AllowInProfile"):
            let changed = try allow(try WireCodec.decodeAdminProfileAllowRequest(payload))
            // An operator's edit is written at once rather than with the next periodic save.
            if changed { _ = try await profiles.save(to: store) }
            return WireCodec.encodeProfileAllowReply(changed: changed)
        case RPCMethods.admin("ListSensors"):
            return WireCodec.encode(try await listSensors(try WireCodec.decodeAdminListRequest(payload)))
        case RPCMethods.admin("GetSensor"):
            return WireCodec.encodeGetReply(try await getSensor(try WireCodec.decodeAdminGetRequest(payload)))
        case RPCMethods.admin("ListAlerts"):
            return WireCodec.encode(try await listAlerts(try WireCodec.decodeAdminListRequest(payload)))
        case RPCMethods.admin("GetAlert"):
            return WireCodec.encodeGetReply(try await getAlert(try WireCodec.decodeAdminGetRequest(payload)))
        case RPCMethods.admin("ListRules"):
            return WireCodec.encode(listRules(try WireCodec.decodeAdminListRequest(payload)))
        case RPCMethods.admin("GetRule"):
            return WireCodec.encodeGetReply(try getRule(try WireCodec.decodeAdminGetRequest(payload)))
        case RPCMethods.admin("StartScan"):
            return WireCodec.encode(try await startScan(try WireCodec.decodeAdminStartScanRequest(payload)))
        case RPCMethods.admin("ListScans"):
            return WireCodec.encode(listScans(try WireCodec.decodeAdminListRequest(payload)))
        case RPCMethods.admin("GetScan"):
            return WireCodec.encodeGetReply(try getScan(try WireCodec.decodeAdminGetRequest(payload)))
        default:
            if RPCMethods.adminService.contains(method) {
                throw Failure(.unimplemented, "\(method) is not served by this collector")
            }
            throw Failure(.unimplemented, "unknown method '\(method)'")
        }
    }

    // MARK: Bindings

    private func listBindings(_ request: AdminListRequest) async -> AdminListReply {
        var table = AdminTable(columns: ["NAME", "NAMESPACE", "RULES", "SELECTOR", "APPLIED", "SOURCE"])
        for binding in await bindings.list(namespace: request.namespace.isEmpty ? nil : request.namespace) {
            table.rows.append([
                binding.name, binding.namespace, binding.rules.joined(separator: ","), binding.selector,
                Self.rfc3339(binding.appliedAt), binding.source,
            ])
        }
        return AdminListReply(table: table)
    }

    private func getBinding(_ request: AdminGetRequest) async throws -> AdminDocument {
        guard let yaml = await bindings.get(name: request.name, namespace: request.namespace) else {
            let key = request.namespace.isEmpty ? request.name : "\(request.namespace)/\(request.name)"
            throw Failure(.notFound, "no binding '\(key)' is applied")
        }
        if request.format == .json {
            return AdminDocument(
                name: request.name, namespace: request.namespace, format: .json, body: try Self.json(fromYAML: yaml))
        }
        return AdminDocument(name: request.name, namespace: request.namespace, format: .yaml, body: yaml)
    }

    private func applyBindings(_ request: AdminApplyRequest) async -> [AdminApplyResult] {
        let documents = request.documents.enumerated().map { index, document in
            (source: document.name.isEmpty ? "document \(index + 1)" : document.name, text: document.body)
        }
        return await bindings.apply(documents, dryRun: request.dryRun).map { result in
            let action: AdminApplyAction
            switch result.action {
            case .created: action = .created
            case .updated: action = .updated
            case .unchanged: action = .unchanged
            case .rejected: action = .rejected
            }
            return AdminApplyResult(
                name: result.name, namespace: result.namespace, action: action, message: result.message)
        }
    }

    // MARK: Profiles

    /// `namespace/Kind/name`, or `Kind/name` with the namespace given apart.
    static func workload(name: String, namespace: String) throws(Failure) -> WorkloadKey {
        let text = namespace.isEmpty ? name : "\(namespace)/\(name)"
        guard let key = WorkloadKey(parsing: text) else {
            throw Failure(
                .invalidArgument,
                "'\(text)' is not a workload; expected namespace/Kind/name (e.g. default/Deployment/web)")
        }
        return key
    }

    private func listProfiles(_ request: AdminListRequest) -> AdminListReply {
        var table = AdminTable(columns: [
            "WORKLOAD", "CONTAINER", "STATE", "EXECS", "OPENS", "SYSCALLS", "CAPABILITIES", "DNS", "ENDPOINTS",
            "LEARNING ENDS",
        ])
        for profile in profiles.profiles()
        where request.namespace.isEmpty || profile.workload.namespace == request.namespace {
            for container in profile.containers {
                let behaviour = container.behaviour
                table.rows.append([
                    profile.workload.description, container.name, container.state.rawValue,
                    String(behaviour.execs.values.reduce(0) { $0 + $1.count }), String(behaviour.opens.count),
                    String(behaviour.syscalls.count), String(behaviour.capabilities.count), String(behaviour.dns.count),
                    String(behaviour.outgoing.count + behaviour.incoming.count),
                    Self.rfc3339(container.learningEndsAt),
                ])
            }
        }
        if request.limit > 0, table.rows.count > Int(request.limit) {
            table.rows = Array(table.rows.prefix(Int(request.limit)))
        }
        return AdminListReply(table: table)
    }

    /// One workload's profile; with no name, every profile (of `namespace`, when given) as one YAML stream.
    private func getProfile(_ request: AdminGetRequest) throws -> AdminDocument {
        if request.name.isEmpty {
            let all = profiles.profiles().filter {
                request.namespace.isEmpty || $0.workload.namespace == request.namespace
            }
            let yaml = try ProfileDocument.yaml(all)
            if request.format == .json {
                return AdminDocument(format: .json, body: all.isEmpty ? "[]" : try Self.json(fromYAML: yaml))
            }
            return AdminDocument(format: .yaml, body: yaml)
        }
        let key = try Self.workload(name: request.name, namespace: request.namespace)
        guard let profile = profiles.profile(key) else { throw Failure(.notFound, "no profile for \(key)") }
        let yaml = try ProfileDocument.yaml([profile])
        if request.format == .json {
            return AdminDocument(name: key.description, format: .json, body: try Self.json(fromYAML: yaml))
        }
        return AdminDocument(name: key.description, format: .yaml, body: yaml)
    }

    private func applyProfiles(_ request: AdminApplyRequest) async throws -> [AdminApplyResult] {
        // Everything is read before anything is installed, so a bad document changes nothing.
        var parsed: [ApplicationProfile] = []
        var results: [AdminApplyResult] = []
        for (index, document) in request.documents.enumerated() {
            let source = document.name.isEmpty ? "document \(index + 1)" : document.name
            do {
                let text = document.format == .json ? try Self.yaml(fromJSON: document.body) : document.body
                parsed += try ProfileDocument.parse(text, source: source)
            } catch let error as ProfilesError {
                results.append(AdminApplyResult(name: source, action: .rejected, message: error.message))
            } catch let failure as Failure {
                results.append(
                    AdminApplyResult(name: source, action: .rejected, message: "\(source): \(failure.message)"))
            }
        }
        if !results.isEmpty { return results }
        for profile in parsed {
            let existing = profiles.profile(profile.workload)
            let action: AdminApplyAction = existing == nil ? .created : existing == profile ? .unchanged : .updated
            if !request.dryRun, action != .unchanged { profiles.install(profile) }
            results.append(
                AdminApplyResult(
                    name: profile.workload.description, namespace: profile.workload.namespace, action: action))
        }
        if !request.dryRun { _ = try await profiles.save(to: store) }
        return results
    }

    private func deleteProfile(_ request: AdminDeleteRequest) async throws -> Bool {
        let key = try Self.workload(name: request.name, namespace: request.namespace)
        return try await profiles.reset(key, in: store)
    }

    private func allow(_ request: AdminProfileAllowRequest) throws -> Bool {
        let workload = try Self.workload(name: request.name, namespace: request.namespace)
        guard profiles.profile(workload) != nil else { throw Failure(.notFound, "no profile for \(workload)") }
        if request.finalize {
            return !profiles.finalize(workload, container: request.container.isEmpty ? nil : request.container).isEmpty
        }
        guard !request.container.isEmpty else { throw Failure(.invalidArgument, "allow needs the container's name") }
        let item = try Self.item(request)
        let key = ProfileKey(workload: workload, container: request.container)
        guard let container = profiles.profile(workload)?.container(request.container) else {
            throw Failure(.notFound, "the profile of \(workload) has no container '\(request.container)'")
        }
        if container.behaviour.allows(item, compareArgs: true) { return false }
        return profiles.allow(item, in: key)
    }

    /// The behaviour of an allow request, from the fields patrolctl sends (docs/patrolctl.md).
    static func item(_ request: AdminProfileAllowRequest) throws(Failure) -> ProfileItem {
        let fields = request.fields
        func field(_ name: String) throws(Failure) -> String {
            guard let value = fields[name], !value.isEmpty else {
                throw Failure(.invalidArgument, "allow \(request.kind?.rawValue ?? "?") needs '\(name)'")
            }
            return value
        }
        func syscall(_ name: String) throws(Failure) -> UInt32 {
            if let number = LinuxNames.syscallNumber(name) ?? UInt32(name) { return number }
            throw Failure(.invalidArgument, "unknown syscall '\(name)'")
        }
        func endpoint(_ text: String) throws(Failure) -> Endpoint {
            guard let endpoint = Endpoint(url: text) else {
                throw Failure(
                    .invalidArgument, "'\(text)' is not an endpoint; expected proto://host:port (tcp://10.0.0.1:443)")
            }
            return endpoint
        }
        switch request.kind {
        case .exec:
            let count = Int(fields["argc"] ?? "0") ?? -1
            guard count >= 0 else { throw Failure(.invalidArgument, "argc must be a number") }
            var argv: [String] = []
            for index in 0..<count {
                guard let arg = fields["arg.\(index)"] else {
                    throw Failure(.invalidArgument, "arg.\(index) is missing")
                }
                argv.append(arg)
            }
            return .exec(path: try field("path"), argv: argv)
        case .open:
            let names = try field("flags").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            switch OpenMask.of(names: names) {
            case .success(let mask): return .open(path: try field("path"), flags: mask)
            case .failure(let unknown): throw Failure(.invalidArgument, "unknown open flag '\(unknown.name)'")
            }
        case .syscalls: return .syscall(try syscall(try field("syscall")))
        case .capability:
            let name = try field("capability").uppercased()
            let wanted = name.hasPrefix("CAP_") ? name : "CAP_" + name
            guard let number = (0..<64).first(where: { LinuxNames.capability(UInt32($0)) == wanted }) else {
                throw Failure(.invalidArgument, "unknown capability '\(name)'")
            }
            return .capability(syscall: try syscall(try field("syscall")), capability: UInt32(number))
        case .dns: return .dns(normalisedDNSName(try field("name")))
        case .connect: return .outgoing(try endpoint(try field("endpoint")))
        case .accept: return .incoming(try endpoint(try field("endpoint")))
        default:
            throw Failure(
                .invalidArgument,
                "profiles hold exec, open, syscalls, capability, dns, connect and accept, not "
                    + (request.kind?.rawValue ?? "nothing")
            )
        }
    }

    // MARK: Sensors

    private func listSensors(_ request: AdminListRequest) async throws -> AdminListReply {
        var table = AdminTable(columns: [
            "SENSOR", "NODE", "VERSION", "LAST SEEN", "DROPS", "HOOKS LOADED", "HOOKS FAILED",
        ])
        for sensor in try await store.sensors() where request.filter.isEmpty || sensor.node == request.filter {
            table.rows.append([
                sensor.sensorID, sensor.node, sensor.version, Self.rfc3339(sensor.lastSeen),
                String(sensor.drops.values.reduce(0, +)), String(sensor.hooksLoaded.count),
                sensor.hooksFailed.isEmpty ? "0" : sensor.hooksFailed.keys.sorted().joined(separator: ","),
            ])
        }
        return AdminListReply(table: table)
    }

    private func getSensor(_ request: AdminGetRequest) async throws -> AdminDocument {
        guard let sensor = try await store.sensors().first(where: { $0.sensorID == request.name }) else {
            throw Failure(.notFound, "no sensor '\(request.name)'")
        }
        let node: Node = [
            "sensorID": Node(sensor.sensorID), "bootID": Node(sensor.bootID), "node": Node(sensor.node),
            "version": Node(sensor.version), "kernel": Node(sensor.kernel), "peer": Node(sensor.peer),
            "firstSeen": Node(Self.rfc3339(sensor.firstSeen)), "lastSeen": Node(Self.rfc3339(sensor.lastSeen)),
            "lastStatus": Node(Self.rfc3339(sensor.lastStatus)),
            "hooksLoaded": Node(sensor.hooksLoaded.map { Node($0) }),
            "hooksFailed": Self.node(sensor.hooksFailed), "drops": Self.node(sensor.drops.mapValues(String.init)),
            "counters": Self.node(sensor.counters.mapValues(String.init)),
            "queueDepths": Self.node(sensor.queueDepths.mapValues(String.init)),
            "scanner": Node(
                Self.scannerLine(
                    sensor.counters[ScannerCounter.health], scans.scannerReason(sensorID: sensor.sensorID))),
        ]
        return try Self.document(name: sensor.sensorID, node: node, format: request.format)
    }

    /// `healthy`, `degraded: <reason>`, `unhealthy: <reason>`, or `off` (no scanner reported). The reason is held in
    /// memory only: after a collector restart it is back with the sensor's next status.
    static func scannerLine(_ health: UInt64?, _ reason: String?) -> String {
        let word: String
        switch health {
        case nil: return "off"
        case 0?: return "healthy"
        case 1?: word = "degraded"
        default: word = "unhealthy"
        }
        guard let reason, !reason.isEmpty else { return word }
        return "\(word): \(reason)"
    }

    // MARK: Scans

    private func startScan(_ request: AdminStartScanRequest) async throws -> AdminStartScanReply {
        let candidates = try await store.sensors().map {
            ScanRegistry.Candidate(
                sensorID: $0.sensorID, node: $0.node, lastSeen: $0.lastSeen,
                scannerHealth: $0.counters[ScannerCounter.health])
        }
        switch scans.start(
            node: request.node, path: request.path, containerID: request.containerID, candidates: candidates,
            now: WallClock.now())
        {
        case .success(let scan):
            logger.info(
                "scan queued",
                metadata: [
                    "scan": "\(scan.id)", "node": "\(scan.node)", "sensor": "\(scan.sensorID)",
                    "target": "\(scan.target)",
                ])
            return AdminStartScanReply(scanID: scan.id, sensors: [scan.sensorID])
        case .failure(.noSensor(let message)): throw Failure(.notFound, message)
        case .failure(.scannerUnavailable(let message)): throw Failure(.failedPrecondition, message)
        case .failure(.invalid(let message)): throw Failure(.invalidArgument, message)
        }
    }

    /// Scans, newest first; `filter` is a node.
    private func listScans(_ request: AdminListRequest) -> AdminListReply {
        var table = AdminTable(columns: [
            "ID", "NODE", "TARGET", "STATE", "STARTED", "FINISHED", "SEEN", "SCANNED", "UNCHANGED", "SKIPPED",
            "FINDINGS",
        ])
        let now = WallClock.now()
        for scan in scans.scans(node: request.filter.isEmpty ? nil : request.filter).reversed() {
            let report = scan.report
            table.rows.append([
                scan.id, scan.node, scan.target, scan.state(now: now, grace: scans.findingsGrace).rawValue,
                Self.rfc3339(report?.startedAt ?? 0), Self.rfc3339(report?.finishedAt ?? 0),
                String(report?.filesSeen ?? 0), String(report?.filesScanned ?? 0),
                String(report?.filesUnchanged ?? 0), String((report?.filesSkipped ?? 0) + (report?.filesFailed ?? 0)),
                String(max(report?.findings ?? 0, UInt64(scan.findings.count))),
            ])
        }
        if request.limit > 0, table.rows.count > Int(request.limit) {
            table.rows = Array(table.rows.prefix(Int(request.limit)))
        }
        return AdminListReply(table: table)
    }

    private func getScan(_ request: AdminGetRequest) throws -> AdminDocument {
        guard let scan = scans.scan(id: request.name) else {
            throw Failure(
                .notFound, "no scan '\(request.name)' (scans are kept in the collector's memory until it restarts)")
        }
        let report = scan.report
        func number(_ value: UInt64?) -> Node { Node(String(value ?? 0), Tag(.int)) }
        let findings: [Node] = scan.findings.map { finding in
            var members: [(Node, Node)] = [
                (Node("path"), Node(finding.path)), (Node("signature"), Node(finding.signature)),
                (Node("sha256"), Node(finding.sha256)), (Node("sizeBytes"), number(finding.sizeBytes)),
                (Node("partOfImage"), Node(finding.partOfImage ? "true" : "false", Tag(.bool))),
            ]
            if let container = finding.container {
                var fields: [(Node, Node)] = [
                    (Node("id"), Node(container.containerID)), (Node("pod"), Node(container.podName)),
                    (Node("namespace"), Node(container.namespace)), (Node("name"), Node(container.containerName)),
                    (Node("image"), Node(container.image)),
                ]
                if !container.labels.isEmpty { fields.append((Node("labels"), Self.node(container.labels))) }
                members.append((Node("container"), Node(fields)))
            }
            return Node(members)
        }
        let node = Node([
            (Node("id"), Node(scan.id)), (Node("node"), Node(scan.node)), (Node("sensor"), Node(scan.sensorID)),
            (Node("target"), Node(scan.target)), (Node("path"), Node(scan.path)),
            (Node("containerID"), Node(scan.containerID)),
            (Node("state"), Node(scan.state(now: WallClock.now(), grace: scans.findingsGrace).rawValue)),
            (Node("requested"), Node(Self.rfc3339(scan.requestedAt))),
            (Node("started"), Node(Self.rfc3339(report?.startedAt ?? 0))),
            (Node("finished"), Node(Self.rfc3339(report?.finishedAt ?? 0))),
            (
                Node("progress"),
                Node([
                    (Node("filesSeen"), number(report?.filesSeen)),
                    (Node("filesScanned"), number(report?.filesScanned)),
                    (Node("filesUnchanged"), number(report?.filesUnchanged)),
                    (Node("filesSkipped"), number(report?.filesSkipped)),
                    (Node("filesFailed"), number(report?.filesFailed)),
                    (Node("bytesScanned"), number(report?.bytesScanned)),
                ])
            ),
            (Node("findingsCount"), number(max(report?.findings ?? 0, UInt64(scan.findings.count)))),
            (Node("findings"), Node(findings)),
            (Node("error"), Node(scan.error)),
        ])
        return try Self.document(name: scan.id, node: node, format: request.format)
    }

    // MARK: Alerts

    /// The alert filter: `rule=R0001,since=<ns since the epoch>` (patrolctl builds it).
    struct AlertFilter {
        var rule: String?
        var since: EpochNanoseconds?

        init(_ text: String) throws(Failure) {
            for part in text.split(separator: ",") where !part.isEmpty {
                let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2 else {
                    throw Failure(.invalidArgument, "bad alert filter '\(part)'; expected key=value")
                }
                switch pair[0] {
                case "rule": rule = pair[1]
                case "since":
                    guard let value = EpochNanoseconds(pair[1]) else {
                        throw Failure(
                            .invalidArgument, "alert filter since=\(pair[1]) is not nanoseconds since the epoch")
                    }
                    since = value
                default:
                    throw Failure(.invalidArgument, "unknown alert filter key '\(pair[0])'; expected rule or since")
                }
            }
        }
    }

    /// Matching alerts from the store's outbox, newest first, at most `limit` (default 100).
    private func alerts(_ request: AdminListRequest) async throws -> [OutboxEntry] {
        let filter = try AlertFilter(request.filter)
        let limit = request.limit == 0 ? 100 : Int(request.limit)
        var matched: [OutboxEntry] = []
        var position: Int64 = 0
        while true {
            let page = try await store.outbox(after: position, limit: 1000)
            guard let last = page.last else { break }
            position = last.position
            for entry in page {
                let alert = entry.alert
                if let rule = filter.rule, alert.ruleID != rule, alert.ruleName != rule { continue }
                if let since = filter.since, alert.lastSeenTime < since { continue }
                if !request.namespace.isEmpty, alert.container?.namespace != request.namespace { continue }
                matched.append(entry)
            }
            // Only the newest `limit` are answered; keep memory bounded on a long outbox.
            if matched.count > 4 * limit { matched.removeFirst(matched.count - limit) }
        }
        return Array(matched.suffix(limit).reversed())
    }

    private func listAlerts(_ request: AdminListRequest) async throws -> AdminListReply {
        var table = AdminTable(columns: ["ID", "TIME", "RULE", "SEVERITY", "NAMESPACE", "POD", "CONTAINER", "MESSAGE"])
        for entry in try await alerts(request) {
            let alert = entry.alert
            table.rows.append([
                alert.id, Self.rfc3339(alert.time), alert.ruleID, alert.severity.rawValue,
                alert.container?.namespace ?? "", alert.container?.podName ?? "", alert.container?.containerName ?? "",
                alert.message,
            ])
        }
        return AdminListReply(table: table)
    }

    private func getAlert(_ request: AdminGetRequest) async throws -> AdminDocument {
        var position: Int64 = 0
        while true {
            let page = try await store.outbox(after: position, limit: 1000)
            guard let last = page.last else { break }
            position = last.position
            if let entry = page.first(where: { $0.alert.id == request.name }) {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let json = String(decoding: try encoder.encode(entry.alert), as: UTF8.self)
                if request.format == .json { return AdminDocument(name: request.name, format: .json, body: json) }
                return AdminDocument(name: request.name, format: .yaml, body: try Self.yaml(fromJSON: json))
            }
        }
        throw Failure(.notFound, "no alert '\(request.name)' in the store")
    }

    // MARK: Rules

    private func listRules(_ request: AdminListRequest) -> AdminListReply {
        var table = AdminTable(columns: ["ID", "SEVERITY", "ENABLED", "EVENTS", "NAME"])
        for rule in ruleSet.rules where request.filter.isEmpty || rule.tags.contains(request.filter) {
            table.rows.append([
                rule.id, rule.severity.rawValue, rule.enabled ? "yes" : "no",
                rule.events.map(\.rawValue).joined(separator: ","), rule.name,
            ])
        }
        return AdminListReply(table: table)
    }

    private func getRule(_ request: AdminGetRequest) throws -> AdminDocument {
        guard let rule = ruleSet.rules.first(where: { $0.id == request.name || $0.name == request.name }) else {
            throw Failure(.notFound, "no rule '\(request.name)' is loaded")
        }
        let node: Node = [
            "id": Node(rule.id), "name": Node(rule.name), "severity": Node(rule.severity.rawValue),
            "enabled": Node(rule.enabled ? "true" : "false", Tag(.bool)),
            "events": Node(rule.events.map { Node($0.rawValue) }), "tags": Node(rule.tags.map { Node($0) }),
            "needsProfile": Node(rule.needsProfile ? "true" : "false", Tag(.bool)),
            "description": Node(rule.description), "condition": Node(rule.condition), "output": Node(rule.output),
            "fix": Node(rule.fix), "file": Node("\(rule.location)"),
        ]
        return try Self.document(name: rule.id, node: node, format: request.format)
    }

    // MARK: Helpers

    static func rfc3339(_ time: EpochNanoseconds) -> String {
        guard time > 0 else { return "-" }
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date(timeIntervalSince1970: Double(time) / 1e9))
    }

    static func node(_ map: [String: String]) -> Node {
        Node(map.keys.sorted().map { (Node($0), Node(map[$0]!)) })
    }

    static func document(name: String, node: Node, format: AdminDocumentFormat) throws -> AdminDocument {
        let yaml = try Yams.serialize(node: node, width: -1, allowUnicode: true)
        if format == .json { return AdminDocument(name: name, format: .json, body: try json(fromYAML: yaml)) }
        return AdminDocument(name: name, format: .yaml, body: yaml)
    }

    static func json(fromYAML yaml: String) throws -> String {
        var objects: [Any] = []
        for document in try Yams.load_all(yaml: yaml) { objects.append(jsonSafe(document)) }
        let value: Any = objects.count == 1 ? objects[0] : objects
        let data = try JSONSerialization.data(
            withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// YAML reads an unquoted `2026-11-26T10:41:07Z` back as a date, which JSONSerialization refuses: dates become
    /// RFC 3339 text again.
    static func jsonSafe(_ value: Any) -> Any {
        switch value {
        case let date as Date: return ISO8601DateFormatter().string(from: date)
        case let list as [Any]: return list.map(jsonSafe)
        case let object as [String: Any]: return object.mapValues(jsonSafe)
        case let object as [AnyHashable: Any]:
            return Dictionary(object.map { ("\($0.key.base)", jsonSafe($0.value)) }, uniquingKeysWith: { $1 })
        default: return value
        }
    }

    static func yaml(fromJSON json: String) throws -> String {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(json.utf8))
        } catch {
            throw Failure(.invalidArgument, "not valid JSON: \(error.localizedDescription)")
        }
        let items = (object as? [Any]) ?? [object]
        return try items.map { try Yams.dump(object: $0, width: -1, allowUnicode: true) }.joined(separator: "---\n")
    }
}

/// The admin RPC server as a Service: stops accepting on graceful shutdown.
struct AdminService: Service {
    let server: RPCServer

    func run() async throws {
        await withGracefulShutdownHandler {
            await server.run()
        } onGracefulShutdown: {
            server.close()
        }
    }

    /// Listens on `settings.listen`: an ipc socket gets its directory (0755) and its file mode; TLS requires and
    /// verifies client certificates.
    static func listen(
        _ settings: CollectorConfiguration.AdminSettings, handler: AdminRPCHandler, logger: Logger
    ) throws -> RPCServer {
        let address = settings.listen
        if address.hasPrefix("ipc://") {
            let path = String(address.dropFirst("ipc://".count))
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            }
        }
        let tls = settings.tls.map {
            TLSConfiguration(
                certificateFile: $0.certificate, privateKeyFile: $0.key, caFile: $0.ca, requireClientCertificate: true)
        }
        return try RPCServer(
            configuration: RPCServerConfiguration(
                address: address, tls: tls, concurrency: 4, maxMessageSize: 32 << 20,
                ipcPermissions: settings.socketMode),
            logger: logger, handler: handler.handle)
    }
}

extension CollectorConfiguration.AdminSettings {
    /// The `admin` mapping of the configuration file (docs/configuration.md#admin).
    static func parse(_ node: Node, reader: ConfigReader) throws(BasicsError) -> Self {
        var settings = Self()
        let admin = try reader.mapping(node, path: "admin", allowed: ["listen", "allowedUIDs", "socketMode", "tls"])
        if let n = admin["listen"] {
            settings.listen = try reader.string(n, path: "admin.listen")
            settings.explicit = true
        }
        if let n = admin["allowedUIDs"] {
            guard case .sequence(let items) = n else {
                throw reader.fail(n, "admin.allowedUIDs", "expected a list of uids")
            }
            for item in items {
                let uid = try reader.int(item, path: "admin.allowedUIDs")
                guard uid <= Int(UInt32.max) else {
                    throw reader.fail(item, "admin.allowedUIDs", "\(uid) is not a uid")
                }
                settings.allowedUIDs.append(UInt32(uid))
            }
        }
        if let n = admin["socketMode"] {
            let text = try reader.string(n, path: "admin.socketMode")
            let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
            guard let mode = Int(digits, radix: 8), (0...0o777).contains(mode) else {
                throw reader.fail(n, "admin.socketMode", "expected an octal file mode such as 0600, found '\(text)'")
            }
            settings.socketMode = mode
        }
        if let n = admin["tls"] {
            let tls = try reader.mapping(n, path: "admin.tls", allowed: ["certificate", "key", "ca"])
            func file(_ key: String) throws(BasicsError) -> String {
                try reader.string(try reader.required(tls, key, in: "admin.tls", at: n), path: "admin.tls.\(key)")
            }
            settings.tls = CollectorConfiguration.TLSFiles(
                certificate: try file("certificate"), key: try file("key"), ca: try file("ca"))
        }
        let listen = settings.listen
        let schemes = ["ipc://", "tls+tcp://", "inproc://"]
        if !listen.isEmpty, !schemes.contains(where: { listen.hasPrefix($0) }) {
            throw reader.fail(
                node, "admin.listen",
                "'\(listen)' is neither ipc:// nor tls+tcp://; the admin service needs an authenticated transport")
        }
        if listen.hasPrefix("tls+tcp://"), settings.tls == nil {
            throw reader.fail(node, "admin.tls", "tls+tcp:// needs admin.tls with certificate, key and ca")
        }
        return settings
    }
}
