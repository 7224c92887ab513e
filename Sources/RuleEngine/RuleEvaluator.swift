import Basics
import EventModel

private let auditIDPath = AuditFieldPath(["auditID"])

/// Evaluates events against a rule set. Holds the state of sequence rules, so use one per ingest worker.
///
/// Plain rules are stateless; only sequence rules keep state, in a table bounded by `maxSequenceStates`.
/// Expired entries are swept when the table is full; if it is still full the oldest-inserted entry is
/// evicted (counted in `sequenceEvictions`).
public struct RuleEvaluator: Sendable {
    public let ruleSet: RuleSet
    public let maxSequenceStates: Int
    /// Sequence progress dropped because the table was full.
    public private(set) var sequenceEvictions: UInt64 = 0

    struct SequenceKey: Hashable, Sendable {
        let rule: Int
        let key: String
    }

    struct SequenceState: Sendable {
        /// How many steps have matched.
        var progress: Int
        /// When the first step matched.
        var start: EpochNanoseconds
        var within: UInt64
    }

    private var states: [SequenceKey: SequenceState] = [:]
    /// `Scratch`'s audit slot arrays, kept between events.
    private var spareAuditStrings: [String?] = []
    private var spareAuditInts: [Int64?] = []
    private var spareAuditPlain: [AuditPlainValue] = []
    private let compiled: CompiledRules

    public init(ruleSet: RuleSet, maxSequenceStates: Int = 65_536) {
        self.ruleSet = ruleSet
        self.compiled = ruleSet.compiled
        self.maxSequenceStates = max(1, maxSequenceStates)
    }

    /// The number of sequences in progress.
    public var pendingSequences: Int { states.count }

    /// The alerts `event` raises. Only rules for the event's kind are visited.
    ///
    /// - Parameter profile: what the event's workload profile said about it, for the `profile.*` fields that
    ///   anomaly rules test; without it those fields are empty and anomaly rules stay silent.
    public mutating func evaluate(_ event: Event, profile: ProfileJudgement? = nil) -> [Alert] {
        withUnsafePointer(to: event) { evaluate(pointer: $0, profile: profile) }
    }

    private mutating func evaluate(pointer event: EventPointer, profile: ProfileJudgement?) -> [Alert] {
        let ordinal = kindOrdinal(event.pointee.kind)
        if ordinal == kindOrdinal(.audit) {
            // The document's bytes stay in hand for the whole evaluation, so the cached `ka.*` fields are compared
            // where they lie (`Scratch.withPlain`) instead of as String copies.
            return Event.withAuditPlainReader(event) { reader in
                evaluate(pointer: event, ordinal: ordinal, profile: profile, reader: reader)
            }
        }
        return evaluate(pointer: event, ordinal: ordinal, profile: profile, reader: nil)
    }

    private mutating func evaluate(
        pointer event: EventPointer, ordinal: Int, profile: ProfileJudgement?, reader: AuditPlainReader?
    ) -> [Alert] {
        var scratch = Scratch()
        scratch.profile = profile
        var alerts: [Alert] = []
        var rules: ContiguousArray<RuleSlot>
        let isAudit = ordinal == kindOrdinal(.audit)
        if isAudit {
            // The slot arrays of the last audit event are reused (their bits say nothing is resolved yet):
            // allocating them per event was a visible share of the audit path.
            swap(&scratch.auditStrings, &spareAuditStrings)
            swap(&scratch.auditInts, &spareAuditInts)
            swap(&scratch.auditPlain, &spareAuditPlain)
            scratch.plainReader = reader
            rules = compiled.auditRules(event, &scratch)
        } else {
            rules = compiled.plain[ordinal]
        }
        defer {
            if isAudit {
                swap(&scratch.auditStrings, &spareAuditStrings)
                swap(&scratch.auditInts, &spareAuditInts)
                swap(&scratch.auditPlain, &spareAuditPlain)
            }
        }
        rules.withUnsafeBufferPointer { slots in
            for index in slots.indices where slots[index].matches(event, &scratch) {
                if slots[index].hasException && slots[index].excepted(event, &scratch) { continue }
                alerts.append(Self.makeAlert(slots[index].rule, event, &scratch))
            }
        }
        let sequenceRules = compiled.sequences[ordinal]
        if !sequenceRules.isEmpty {
            for rule in sequenceRules {
                if let alert = advance(rule, rule.sequence!, event, ordinal, &scratch) { alerts.append(alert) }
            }
        }
        return alerts
    }

    private mutating func advance(
        _ rule: CompiledRule, _ sequence: CompiledSequence, _ event: EventPointer, _ ordinal: Int, _ scratch: inout Scratch
    ) -> Alert? {
        var key: SequenceKey?
        for step in sequence.stepsByKind[ordinal] where sequence.steps[step](event, &scratch) {
            let stateKey = key ?? SequenceKey(rule: rule.index, key: Self.sequenceKey(sequence, event, &scratch))
            key = stateKey
            if step == 0 {
                if let existing = states[stateKey], existing.progress > 1,
                    event.pointee.time &- existing.start <= existing.within || existing.start > event.pointee.time
                {
                    return nil  // a later step is already pending; keep its window
                }
                insert(stateKey, SequenceState(progress: 1, start: event.pointee.time, within: sequence.within), now: event.pointee.time)
                return nil
            }
            guard let state = states[stateKey], state.progress == step else { continue }
            let elapsed = event.pointee.time >= state.start ? event.pointee.time - state.start : state.start - event.pointee.time
            guard elapsed <= sequence.within else {
                states[stateKey] = nil
                continue
            }
            if step + 1 == sequence.steps.count {
                states[stateKey] = nil
                if let exception = rule.exception, exception(event, &scratch) { return nil }
                return Self.makeAlert(rule, event, &scratch)
            }
            states[stateKey]!.progress = step + 1
            return nil
        }
        return nil
    }

    private mutating func insert(_ key: SequenceKey, _ state: SequenceState, now: EpochNanoseconds) {
        if states[key] == nil, states.count >= maxSequenceStates {
            states = states.filter { (_, state) in now < state.start || now - state.start <= state.within }
            if states.count >= maxSequenceStates {
                // Evict the oldest sequence.
                if let oldest = states.min(by: { $0.value.start < $1.value.start })?.key { states[oldest] = nil }
                sequenceEvictions += 1
            }
        }
        states[key] = state
    }

    /// Node and container always part of the key, then the rule's `by` fields.
    static func sequenceKey(_ sequence: CompiledSequence, _ event: EventPointer, _ scratch: inout Scratch) -> String {
        var key = event.pointee.node
        key += "\u{1F}"
        key += event.pointee.container?.containerID ?? ""
        for extractor in sequence.by {
            key += "\u{1F}"
            key += extractor.render(event, &scratch) ?? ""
        }
        return key
    }

    /// Builds the alert straight from the event behind the pointer: copying the whole `Event` first retained and
    /// released every one of its strings and its payload once more per alert.
    static func makeAlert(_ compiled: CompiledRule, _ event: EventPointer, _ scratch: inout Scratch) -> Alert {
        let rule = compiled.rule
        let outputFields = compiled.outputFields
        var fields: [String: String] = [:]
        var message = ""
        if outputFields.count == 1 {
            // The common template has one field: no array for the rendered values.
            let value = outputFields[0].extractor.render(event, &scratch)
            if let value { fields = [outputFields[0].name: value] }
            for segment in compiled.output {
                switch segment {
                case .text(let literal): message += literal
                case .field: message += value ?? "<NA>"
                }
            }
        } else {
            var values: [String?] = []
            if !outputFields.isEmpty {
                values.reserveCapacity(outputFields.count)
                fields = Dictionary(minimumCapacity: outputFields.count)
                for (name, extractor) in outputFields {
                    let value = extractor.render(event, &scratch)
                    values.append(value)
                    if let value { fields[name] = value }
                }
            }
            for segment in compiled.output {
                switch segment {
                case .text(let literal): message += literal
                case .field(let index): message += values[index] ?? "<NA>"
                }
            }
        }
        var hash = StableHash()
        hash.combine(rule.id)
        combineWorkloadIdentity(event, into: &hash)
        combineEventKey(event, into: &hash)
        var alert = Alert(
            id: hash.hex, ruleID: rule.id, ruleName: rule.name, severity: rule.severity, tags: rule.tags,
            message: message, fix: rule.fix, time: event.pointee.time, node: event.pointee.node,
            eventKind: event.pointee.kind, process: event.pointee.process, container: event.pointee.container,
            fields: fields, count: event.pointee.count)
        // A scanner finding carries its file to every sink (PatrolMalwareDetected, the malware CSV).
        if case .scanResult(let scan) = event.pointee.payload {
            alert.malware = MalwareDetails(
                signature: scan.signature, path: scan.path, sha256: scan.sha256, sizeBytes: scan.sizeBytes,
                inImage: scan.partOfImage)
        }
        return alert
    }

    /// Hashes `workloadIdentity(event)` without building the string (same bytes, so the same alert ids).
    static func combineWorkloadIdentity(_ event: EventPointer, into hash: inout StableHash) {
        if let container = event.pointee.container {
            if container.podName.isEmpty {
                hash.append("container:")
                hash.append(container.containerID)
            } else {
                hash.append(container.namespace)
                hash.append("/")
                hash.append(container.podName)
                hash.append("/")
                hash.append(container.containerName)
            }
        } else {
            hash.append("node:")
            hash.append(event.pointee.node)
        }
        hash.endField()
    }

    /// Hashes `eventKey(event)`, without building the string for the common kinds.
    static func combineEventKey(_ event: EventPointer, into hash: inout StableHash) {
        switch event.pointee.payload {
        case .exec(let exec):
            hash.append("exec:")
            hash.append(exec.path)
        case .open(let open):
            hash.append("open:")
            hash.append(open.path)
        case .audit(let record):
            // Most alerts of an audit stream come from here; the joined string was an allocation per alert.
            hash.append("audit:")
            hash.append(record.string(at: auditIDPath) ?? record.sourceID)
        default:
            hash.append(eventKey(event.pointee))
        }
        hash.endField()
    }

    /// `namespace/pod/container` for containers, `node:<name>` for the host.
    static func workloadIdentity(_ event: Event) -> String {
        if let container = event.container {
            if container.podName.isEmpty { return "container:" + container.containerID }
            return container.namespace + "/" + container.podName + "/" + container.containerName
        }
        return "node:" + event.node
    }

    /// What the event is about, so the same behaviour maps to the same alert id.
    static func eventKey(_ event: Event) -> String {
        switch event.payload {
        case .exec(let exec): return "exec:" + exec.path
        case .exit: return "exit:" + event.process.exe
        case .open(let open): return "open:" + open.path
        case .connect(let flow): return "connect:\(flow.remoteAddress):\(flow.remotePort)"
        case .accept(let flow): return "accept:\(flow.localAddress):\(flow.localPort)"
        case .dns(let query): return "dns:" + normalisedDNSName(query.name)
        case .syscalls(let set): return "syscalls:" + set.syscalls.map { String($0) }.joined(separator: ",")
        case .capability(let use): return "capability:\(use.capability):\(use.syscall)"
        case .moduleLoad(let load): return "module:" + load.name
        case .ptrace(let attach): return "ptrace:\(attach.targetPid)"
        case .namespaceChange(let change): return "ns:\(change.syscall):\(change.source):\(change.target)"
        case .memfd(let memfd): return "memfd:" + memfd.name
        case .link(let link): return "link:\(link.linkPath)->\(link.target)"
        case .bpf(let call): return "bpf:\(call.command)"
        case .scanResult(let scan): return "scan:\(scan.path):\(scan.sha256)"
        case .audit(let record):
            return "audit:" + (record.string(at: auditIDPath) ?? record.sourceID)
        }
    }
}
