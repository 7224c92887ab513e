#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EventModel

/// A rule compiled to closures, ready to evaluate.
final class CompiledRule: Sendable {
    let rule: Rule
    /// Position in `RuleSet.rules`.
    let index: Int
    let condition: Matcher
    /// True when an exception row matches (the rule then stays quiet).
    let exception: Matcher?
    let output: [CompiledSegment]
    /// The fields the output references, copied into `Alert.fields`.
    let outputFields: [(name: String, extractor: Extractor)]
    let sequence: CompiledSequence?
    /// The `ka.verb` values without which the condition cannot hold (nil: any verb), for the audit index.
    let requiredVerbs: Set<String>?
    /// The same for `ka.target.resource`.
    let requiredResources: Set<String>?
    /// `condition` and `exception` (or `{ false }`) boxed, for `RuleSlot`'s unretained references.
    let conditionBox: MatcherBox
    let exceptionBox: MatcherBox

    init(
        rule: Rule, index: Int, condition: @escaping Matcher, exception: Matcher?, output: [CompiledSegment],
        outputFields: [(name: String, extractor: Extractor)], sequence: CompiledSequence?,
        requiredVerbs: Set<String>? = nil, requiredResources: Set<String>? = nil
    ) {
        self.requiredVerbs = requiredVerbs
        self.requiredResources = requiredResources
        self.rule = rule
        self.index = index
        self.condition = condition
        self.exception = exception
        self.output = output
        self.outputFields = outputFields
        self.sequence = sequence
        conditionBox = MatcherBox(condition)
        exceptionBox = MatcherBox(exception ?? { _, _ in false })
    }
}

/// A matcher in a box, so the evaluator's hot loop can call it through an unretained reference.
final class MatcherBox: Sendable {
    let run: Matcher
    init(_ run: @escaping Matcher) { self.run = run }
}

enum CompiledSegment: Sendable {
    case text(String)
    /// An index into the rule's `outputFields`: each field is rendered once per alert, for both the message and
    /// the alert's structured fields.
    case field(Int)
}

struct CompiledSequence: Sendable {
    let by: [Extractor]
    let within: UInt64
    /// Step predicates, in order.
    let steps: [Matcher]
    /// Which steps apply to each kind (indexed by kind ordinal), highest step first.
    let stepsByKind: [[Int]]
}

/// Index of an event kind in `EventKind.allCases`, for array-based dispatch.
@inline(__always)
func kindOrdinal(_ kind: EventKind) -> Int {
    switch kind {
    case .exec: return 0
    case .exit: return 1
    case .open: return 2
    case .connect: return 3
    case .accept: return 4
    case .dns: return 5
    case .syscalls: return 6
    case .capability: return 7
    case .moduleLoad: return 8
    case .ptrace: return 9
    case .namespaceChange: return 10
    case .memfd: return 11
    case .link: return 12
    case .bpf: return 13
    case .scanResult: return 14
    case .audit: return 15
    }
}

let kindCount = EventKind.allCases.count

/// What the hot loop needs for one rule, stored inline so the loop touches one small array.
///
/// Every reference here is unretained (`CompiledRules.all` keeps the rules and their boxes alive for as long as
/// the slots exist): with a closure or a strong reference in the slot, the hot loop retained and released it
/// around every condition call, about 3 % of the audit path.
struct RuleSlot: @unchecked Sendable {
    let condition: Unmanaged<MatcherBox>
    let hasException: Bool
    /// `{ false }` when the rule has no exceptions (not an Optional: see `Compiler.chain`).
    let exception: Unmanaged<MatcherBox>
    unowned(unsafe) let rule: CompiledRule

    init(_ rule: CompiledRule) {
        condition = .passUnretained(rule.conditionBox)
        hasException = rule.exception != nil
        exception = .passUnretained(rule.exceptionBox)
        self.rule = rule
    }

    @inline(__always)
    func matches(_ event: EventPointer, _ scratch: inout Scratch) -> Bool {
        condition._withUnsafeGuaranteedRef { $0.run(event, &scratch) }
    }

    @inline(__always)
    func excepted(_ event: EventPointer, _ scratch: inout Scratch) -> Bool {
        exception._withUnsafeGuaranteedRef { $0.run(event, &scratch) }
    }
}

/// The compiled, kind-indexed form shared by every evaluator of a rule set.
final class CompiledRules: Sendable {
    let all: [CompiledRule]
    /// Enabled plain (non-sequence) rules per kind ordinal.
    let plain: [ContiguousArray<RuleSlot>]
    /// Enabled sequence rules per kind ordinal.
    let sequences: [ContiguousArray<CompiledRule>]
    /// Audit events: the plain audit rules that can match each verb and resource, in rule order, so a `get` of
    /// a ConfigMap skips the rules whose condition requires `ka.verb in (create, update, ...)` or
    /// `ka.target.resource = secrets`. Verbs no rule names (and events without a verb) get `auditOtherVerbs`;
    /// within a verb, resources no rule names get that verb's `otherResources`. Empty when no audit rule
    /// requires a verb or a resource.
    let auditByVerb: PlainKeyedTable<AuditResourceIndex>
    let auditOtherVerbs: AuditResourceIndex
    let verb: StringGetter?
    let resource: StringGetter?
    let verbField: PlainField
    let resourceField: PlainField

    init(all: [CompiledRule]) {
        self.all = all
        var plain = Array(repeating: ContiguousArray<RuleSlot>(), count: kindCount)
        var sequences = Array(repeating: ContiguousArray<CompiledRule>(), count: kindCount)
        for compiled in all where compiled.rule.enabled {
            for kind in compiled.rule.events {
                if compiled.sequence != nil {
                    sequences[kindOrdinal(kind)].append(compiled)
                } else {
                    plain[kindOrdinal(kind)].append(
                        RuleSlot(compiled))
                }
            }
        }
        self.plain = plain
        self.sequences = sequences
        let audit = plain[kindOrdinal(.audit)]
        let verbs = Set(audit.compactMap(\.rule.requiredVerbs).joined())
        var byVerb: [String: AuditResourceIndex] = [:]
        for verb in verbs {
            byVerb[verb] = AuditResourceIndex(audit.filter { $0.rule.requiredVerbs.map { $0.contains(verb) } ?? true })
        }
        auditByVerb = PlainKeyedTable(byVerb)
        auditOtherVerbs = AuditResourceIndex(audit.filter { $0.rule.requiredVerbs == nil })
        func getter(_ field: String) -> StringGetter? {
            guard case .success(let (_, extractor)) = FieldRegistry.resolve(field), case .string(let get) = extractor
            else { return nil }
            return get
        }
        verb = verbs.isEmpty ? nil : getter("ka.verb")
        resource = audit.contains { $0.rule.requiredResources != nil } ? getter("ka.target.resource") : nil
        verbField = FieldRegistry.plainField("ka.verb")!
        resourceField = FieldRegistry.plainField("ka.target.resource")!
    }

    /// The audit rules to visit for this event: all of them, narrowed by its verb and resource when indexed.
    /// The verb and resource are read through the same cached fields the rules read, so this changes no alert.
    @inline(__always)
    func auditRules(_ event: EventPointer, _ scratch: inout Scratch) -> ContiguousArray<RuleSlot> {
        guard verb != nil || resource != nil else { return plain[kindOrdinal(.audit)] }
        var byResource = auditOtherVerbs
        if let verb, let found = auditByVerb.lookup(verbField, verb, event, &scratch) { byResource = found }
        if let resource, let found = byResource.byResource.lookup(resourceField, resource, event, &scratch) {
            return found
        }
        return byResource.otherResources
    }
}

/// A table keyed by the values of one cached audit field, looked up by the value's bytes in the document when it is
/// a plain ASCII string (no String copy, no String hashing), else by the `String` the field's getter returns.
///
/// A class: the lookup runs per event, and copying a struct of tables retained each of them.
final class PlainKeyedTable<Value: Sendable>: Sendable {
    let byString: [String: Value]
    /// The keys for byte lookups; nil when one is not ASCII (String equality is then not byte equality).
    private let keys: ByteStringSet?
    /// `values[i]` belongs to the `i`th key given to `keys`.
    private let values: [Value]

    init(_ table: [String: Value]) {
        byString = table
        let names = Array(table.keys)
        if names.allSatisfy({ $0.utf8.allSatisfy { $0 < 0x80 } }) {
            keys = ByteStringSet(names)
            values = names.map { table[$0]! }
        } else {
            keys = nil
            values = []
        }
    }

    @inline(__always)
    func lookup(_ field: PlainField, _ get: StringGetter, _ event: EventPointer, _ scratch: inout Scratch) -> Value? {
        if let keys, case .plain(let start, let end) = scratch.plainValue(field) {
            return keys.index(of: scratch.plainBytes(start, end)).map { values[$0] }
        }
        guard let value = get(event, &scratch) else { return nil }
        return byString[value]
    }
}

/// One verb's audit rules, split by the `ka.target.resource` values they require. A class: the evaluator picks one
/// per event, and copying a struct of tables retained each of its arrays.
final class AuditResourceIndex: Sendable {
    /// For each resource some rule requires: the rules that require it or no resource, in rule order.
    let byResource: PlainKeyedTable<ContiguousArray<RuleSlot>>
    /// The rules that require no resource (for events whose resource no rule names, or that have none).
    let otherResources: ContiguousArray<RuleSlot>

    init(_ rules: ContiguousArray<RuleSlot>) {
        var byResource: [String: ContiguousArray<RuleSlot>] = [:]
        for resource in Set(rules.compactMap(\.rule.requiredResources).joined()) {
            byResource[resource] = rules.filter { $0.rule.requiredResources.map { $0.contains(resource) } ?? true }
        }
        self.byResource = PlainKeyedTable(byResource)
        otherResources = rules.filter { $0.rule.requiredResources == nil }
    }
}

/// A loaded, compiled set of rules. Immutable and shareable; evaluate with a `RuleEvaluator`.
public struct RuleSet: Sendable {
    /// Every rule, in load order, including disabled ones.
    public let rules: [Rule]
    /// The overrides the rules were compiled with.
    public let parameterOverrides: ParameterOverrides
    let document: RuleDocument
    let compiled: CompiledRules

    /// Loads rule files in order (later files may `append`/`override` earlier ones). All-or-nothing.
    public static func load(files: [String], parameters: ParameterOverrides = [:]) throws(RuleEngineError) -> RuleSet {
        var sources: [(fileName: String, yaml: String)] = []
        for file in files { sources.append((file, try readFile(file))) }
        return try load(sources: sources, parameters: parameters)
    }

    /// Loads one YAML text (possibly several `---` documents); `fileName` is used in errors.
    public static func load(
        yaml: String, fileName: String = "<inline>", parameters: ParameterOverrides = [:]
    ) throws(RuleEngineError) -> RuleSet {
        try load(sources: [(fileName, yaml)], parameters: parameters)
    }

    /// Loads several YAML texts in order, as if they were files. All-or-nothing.
    public static func load(
        sources: [(fileName: String, yaml: String)], parameters: ParameterOverrides = [:]
    ) throws(RuleEngineError) -> RuleSet {
        var reader = DocumentReader()
        for source in sources { try reader.read(yaml: source.yaml, file: source.fileName) }
        return try RuleSet(document: reader.document, overrides: parameters)
    }

    /// The same rules recompiled with different parameter overrides (e.g. from a binding).
    public func withParameters(_ overrides: ParameterOverrides) throws(RuleEngineError) -> RuleSet {
        try RuleSet(document: document, overrides: overrides)
    }

    /// The same compiled rules with only those for which `isIncluded` is true enabled.
    public func enabling(where isIncluded: (Rule) -> Bool) -> RuleSet {
        var document = self.document
        for index in document.rules.indices { document.rules[index].enabled = isIncluded(document.rules[index]) }
        var rules = self.rules
        var all: [CompiledRule] = []
        for compiled in compiled.all {
            var rule = compiled.rule
            rule.enabled = isIncluded(compiled.rule)
            rules[compiled.index].enabled = rule.enabled
            all.append(
                CompiledRule(
                    rule: rule, index: compiled.index, condition: compiled.condition, exception: compiled.exception,
                    output: compiled.output, outputFields: compiled.outputFields, sequence: compiled.sequence,
                    requiredVerbs: compiled.requiredVerbs, requiredResources: compiled.requiredResources))
        }
        return RuleSet(rules: rules, parameterOverrides: parameterOverrides, document: document, compiled: CompiledRules(all: all))
    }

    /// The rule with this id.
    public func rule(id: String) -> Rule? { document.ruleIndex[id].map { rules[$0] } }

    private init(rules: [Rule], parameterOverrides: ParameterOverrides, document: RuleDocument, compiled: CompiledRules) {
        self.rules = rules
        self.parameterOverrides = parameterOverrides
        self.document = document
        self.compiled = compiled
    }

    init(document: RuleDocument, overrides: ParameterOverrides) throws(RuleEngineError) {
        // Lists: expand references to other lists.
        var lists: [String: [String]] = [:]
        func expand(_ name: String, _ stack: [String]) throws(RuleEngineError) -> [String] {
            if let done = lists[name] { return done }
            let list = document.lists[name]!
            guard !stack.contains(name) else {
                throw RuleEngineError(
                    .macroCycle, "list cycle: " + (stack + [name]).joined(separator: " -> "), at: list.location,
                    rule: "list '\(name)'")
            }
            var items: [String] = []
            for item in list.items {
                if document.lists[item] != nil { items += try expand(item, stack + [name]) } else { items.append(item) }
            }
            lists[name] = items
            return items
        }
        for name in document.lists.keys.sorted() { _ = try expand(name, []) }

        // Macros: parse now, so a syntax error points at the macro.
        var macros: [String: MacroDefinition] = [:]
        for (name, var macro) in document.macros {
            do {
                macro.expr = try ConditionParser.parse(macro.condition)
            } catch {
                throw RuleEngineError(
                    .badCondition, "\(error.reason) (at column \(error.offset + 1) of the condition)",
                    at: macro.conditionLocation, rule: "macro '\(name)'")
            }
            macros[name] = macro
        }
        // Unused macros are checked too: their names and fields must resolve.
        for name in macros.keys.sorted() {
            try Self.checkReferences(macros[name]!.expr, macros: macros, location: macros[name]!.conditionLocation, macro: name)
        }

        for ruleID in overrides.keys where document.ruleIndex[ruleID] == nil {
            throw RuleEngineError(
                .overrideTarget, "parameters given for unknown rule '\(ruleID)'", at: RuleFileLocation(file: "<parameters>", line: 0))
        }

        var rules: [Rule] = []
        var all: [CompiledRule] = []
        for (index, definition) in document.rules.enumerated() {
            var rule = definition
            rule.parameters = definition.defaultParameters
            for (name, value) in overrides[rule.id] ?? [:] {
                guard rule.parameters[name] != nil else {
                    throw RuleEngineError(
                        .unknownParameter,
                        "rule has no parameter '\(name)'" + didYouMean(name, rule.parameters.keys),
                        at: rule.location, rule: "rule '\(rule.id)'")
                }
                rule.parameters[name] = value
            }
            rules.append(rule)
            all.append(try Self.compile(rule, index: index, lists: lists, macros: macros))
        }
        self.rules = rules
        self.parameterOverrides = overrides
        self.document = document
        self.compiled = CompiledRules(all: all)
    }

    static func checkReferences(
        _ expr: Expr, macros: [String: MacroDefinition], location: RuleFileLocation, macro: String
    ) throws(RuleEngineError) {
        switch expr {
        case .and(let terms), .or(let terms):
            for term in terms { try checkReferences(term, macros: macros, location: location, macro: macro) }
        case .not(let inner): try checkReferences(inner, macros: macros, location: location, macro: macro)
        case .macro(let name, let offset):
            if macros[name] == nil {
                let reason =
                    FieldRegistry.isField(name)
                    ? "field '\(name)' needs an operator" : "unknown macro '\(name)'" + didYouMean(name, macros.keys)
                throw RuleEngineError(
                    FieldRegistry.isField(name) ? .badCondition : .unknownMacro,
                    reason + " (at column \(offset + 1) of the condition)", at: location, rule: "macro '\(macro)'")
            }
        case .compare(let field, _, _, _, let offset):
            if case .failure(let failure) = FieldRegistry.resolve(field) {
                throw RuleEngineError(
                    .unknownField, failure.reason + " (at column \(offset + 1) of the condition)", at: location,
                    rule: "macro '\(macro)'")
            }
        }
    }

    static func parseCondition(_ text: String, _ context: CompileContext) throws(RuleEngineError) -> Expr {
        do {
            return try ConditionParser.parse(text)
        } catch {
            throw context.error(.badCondition, error.reason, offset: error.offset)
        }
    }

    static func compile(
        _ rule: Rule, index: Int, lists: [String: [String]], macros: [String: MacroDefinition]
    ) throws(RuleEngineError) -> CompiledRule {
        var context = CompileContext(
            lists: lists, macros: macros, parameters: rule.parameters, kinds: Set(rule.events), ruleID: rule.id,
            location: rule.conditionLocation)
        var condition: Matcher = { _, _ in true }
        let hasCondition = !rule.condition.trimmingSpaces.isEmpty
        if hasCondition {
            condition = try Compiler.compile(parseCondition(rule.condition, context), &context)
        }

        // Exceptions: any row whose every field matches suppresses the rule.
        var rows: [(exception: RuleException, row: [ParameterValue])] = []
        for exception in rule.exceptions { for row in exception.values { rows.append((exception, row)) } }
        var exception: Matcher?
        if !rows.isEmpty {
            exception = try Compiler.chain(rows.indices, isAnd: false) { (rowIndex) throws(RuleEngineError) in
                let (definition, row) = rows[rowIndex]
                context.location = definition.location
                return try Compiler.chain(definition.fields.indices, isAnd: true) { (position) throws(RuleEngineError) in
                    let op = ComparisonOperator(rawValue: definition.comps[position])!
                    let operand: Operand
                    switch row[position] {
                    case .list(let items): operand = .list(items.map { ($0, false) })
                    case .scalar(let value):
                        operand = op == .in ? .single(value, quoted: false) : .single(value, quoted: true)
                    }
                    return try Compiler.compileComparison(
                        field: definition.fields[position], op: op, operand: operand, offset: 0, &context)
                }
            }
        }

        // Sequence steps.
        var sequence: CompiledSequence?
        if let spec = rule.sequence {
            var steps: [Matcher] = []
            var byKind = Array(repeating: [Int](), count: kindCount)
            for (position, step) in spec.steps.enumerated() {
                var stepContext = context
                stepContext.kinds = Set(step.events)
                stepContext.location = step.conditionLocation
                var predicate = try Compiler.compile(parseCondition(step.condition, stepContext), &stepContext)
                if hasCondition {
                    let stepPredicate = predicate
                    let common = condition
                    predicate = { e, s in common(e, &s) && stepPredicate(e, &s) }
                }
                steps.append(predicate)
                for kind in step.events { byKind[kindOrdinal(kind)].insert(position, at: 0) }
            }
            var by: [Extractor] = []
            context.location = rule.location
            for field in spec.by { by.append(try Compiler.field(field, offset: nil, context)) }
            sequence = CompiledSequence(by: by, within: spec.withinNanoseconds, steps: steps, stepsByKind: byKind)
        }

        // Output template.
        context.location = rule.outputLocation
        var output: [CompiledSegment] = []
        var outputFields: [(name: String, extractor: Extractor)] = []
        for segment in parseTemplate(rule.output) {
            switch segment {
            case .text(let text): output.append(.text(text))
            case .field(let name):
                let extractor: Extractor
                do {
                    extractor = try Compiler.field(name, offset: nil, context)
                } catch {
                    throw RuleEngineError(error.code, error.reason + " in output", at: error.location, rule: error.rule)
                }
                if let known = outputFields.firstIndex(where: { $0.name == name }) {
                    output.append(.field(known))
                } else {
                    output.append(.field(outputFields.count))
                    outputFields.append((name, extractor))
                }
            }
        }
        var requiredVerbs: Set<String>?
        var requiredResources: Set<String>?
        if hasCondition, sequence == nil, rule.events == [.audit] {
            let expr = try parseCondition(rule.condition, context)
            requiredVerbs = Compiler.requiredValues(of: expr, field: "ka.verb", context)
            requiredResources = Compiler.requiredValues(of: expr, field: "ka.target.resource", context)
        }
        return CompiledRule(
            rule: rule, index: index, condition: condition, exception: exception, output: output,
            outputFields: outputFields, sequence: sequence, requiredVerbs: requiredVerbs,
            requiredResources: requiredResources)
    }

    static func readFile(_ path: String) throws(RuleEngineError) -> String {
        guard let handle = fopen(path, "rb") else {
            let reason = String(cString: strerror(errno))
            throw RuleEngineError(.io, "cannot open rule file: \(reason)", at: RuleFileLocation(file: path, line: 0))
        }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, 65536, handle) }
            if count > 0 { bytes += buffer[0..<count] }
            if count < 65536 {
                if ferror(handle) != 0 {
                    throw RuleEngineError(.io, "cannot read rule file", at: RuleFileLocation(file: path, line: 0))
                }
                break
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
