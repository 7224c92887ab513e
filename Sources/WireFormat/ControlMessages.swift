internal import CProtobufC
internal import CWireProto
import Basics
import EventModel

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Encoding and decoding of the control messages in sensor.proto: BatchAck (with SensorDirective), SensorHello,
// SensorStatus and the RPC envelope. Maps are written with sorted keys so equal values give equal bytes.

extension WireCodec {
    // MARK: BatchAck

    public static func encode(_ value: BatchAck) -> [UInt8] {
        var arena = Arena(capacity: 1024)
        let message = arena.allocate(Patrol__V1__BatchAck.self)
        patrol__v1__batch_ack__init(message)
        message.pointee.boot_id = arena.cString(value.bootID)
        message.pointee.highest_contiguous_sequence = value.highestContiguousSequence
        if !value.commands.isEmpty {
            let pointers = arena.allocate(UnsafeMutablePointer<Patrol__V1__SensorDirective>?.self, count: value.commands.count)
            for (index, command) in value.commands.enumerated() {
                let directive = arena.allocate(Patrol__V1__SensorDirective.self)
                patrol__v1__sensor_directive__init(directive)
                switch command {
                case .scan(let scanID, let path, let containerID):
                    let scan = arena.allocate(Patrol__V1__ScanDirective.self)
                    patrol__v1__scan_directive__init(scan)
                    scan.pointee.scan_id = arena.cString(scanID)
                    scan.pointee.path = arena.cString(path)
                    scan.pointee.container_id = arena.cString(containerID)
                    directive.pointee.directive_case = PATROL__V1__SENSOR_DIRECTIVE__DIRECTIVE_SCAN
                    directive.pointee.scan = scan
                case .setEnabledKinds(let kinds):
                    let set = arena.allocate(Patrol__V1__SetEnabledKinds.self)
                    patrol__v1__set_enabled_kinds__init(set)
                    set.pointee.n_kinds = kinds.count
                    if !kinds.isEmpty {
                        let numbers = arena.allocate(Patrol__V1__EventKind.self, count: kinds.count)
                        for (slot, kind) in kinds.enumerated() {
                            numbers[slot] = Patrol__V1__EventKind(rawValue: WireEnums.number(kind))
                        }
                        set.pointee.kinds = numbers
                    }
                    directive.pointee.directive_case = PATROL__V1__SENSOR_DIRECTIVE__DIRECTIVE_SET_ENABLED_KINDS
                    directive.pointee.set_enabled_kinds = set
                case .ignoreCgroups(let ids):
                    let ignore = arena.allocate(Patrol__V1__IgnoreCgroups.self)
                    patrol__v1__ignore_cgroups__init(ignore)
                    ignore.pointee.n_cgroup_ids = ids.count
                    ignore.pointee.cgroup_ids = arena.copy(ids)
                    directive.pointee.directive_case = PATROL__V1__SENSOR_DIRECTIVE__DIRECTIVE_IGNORE_CGROUPS
                    directive.pointee.ignore_cgroups = ignore
                }
                pointers[index] = directive
            }
            message.pointee.n_commands = value.commands.count
            message.pointee.commands = pointers
        }
        return pack(message)
    }

    public static func decodeBatchAck(_ bytes: UnsafeRawBufferPointer) throws(WireFormatError) -> BatchAck {
        try checkSize(bytes, "BatchAck")
        guard let message = patrol__v1__batch_ack__unpack(nil, bytes.count, baseAddress(bytes)) else {
            throw malformed("BatchAck", bytes.count)
        }
        defer { patrol__v1__batch_ack__free_unpacked(message, nil) }
        let ack = message.pointee
        let bootID = try controlText(ack.boot_id, "BatchAck.boot_id")
        var commands: [SensorDirective] = []
        commands.reserveCapacity(ack.n_commands)
        for index in 0..<ack.n_commands {
            guard let directive = ack.commands[index]?.pointee else {
                throw WireFormatError(.malformed, "BatchAck.commands[\(index)] is missing")
            }
            switch directive.directive_case {
            case PATROL__V1__SENSOR_DIRECTIVE__DIRECTIVE_SCAN:
                let scan = directive.scan.pointee
                commands.append(
                    .scan(
                        scanID: try controlText(scan.scan_id, "BatchAck.commands[\(index)].scan.scan_id"),
                        path: try controlText(scan.path, "BatchAck.commands[\(index)].scan.path"),
                        containerID: try controlText(scan.container_id, "BatchAck.commands[\(index)].scan.container_id")))
            case PATROL__V1__SENSOR_DIRECTIVE__DIRECTIVE_SET_ENABLED_KINDS:
                let set = directive.set_enabled_kinds.pointee
                var kinds: [EventKind] = []
                for slot in 0..<set.n_kinds {
                    let number = set.kinds[slot].rawValue
                    guard let kind = WireEnums.kind(number) else {
                        throw WireFormatError(
                            .invalidValue,
                            "BatchAck.commands[\(index)].set_enabled_kinds.kinds[\(slot)]: \(number) is not a known EventKind")
                    }
                    kinds.append(kind)
                }
                commands.append(.setEnabledKinds(kinds))
            case PATROL__V1__SENSOR_DIRECTIVE__DIRECTIVE_IGNORE_CGROUPS:
                let ignore = directive.ignore_cgroups.pointee
                let ids = ignore.n_cgroup_ids > 0
                    ? Array(UnsafeBufferPointer(start: ignore.cgroup_ids, count: ignore.n_cgroup_ids)) : []
                commands.append(.ignoreCgroups(ids))
            default:
                throw WireFormatError(.invalidValue, "BatchAck.commands[\(index)]: unknown directive case")
            }
        }
        return BatchAck(bootID: bootID, highestContiguousSequence: ack.highest_contiguous_sequence, commands: commands)
    }

    public static func decodeBatchAck(_ bytes: [UInt8]) throws(WireFormatError) -> BatchAck {
        try withRaw(bytes) { raw throws(WireFormatError) in try decodeBatchAck(raw) }
    }

    // MARK: SensorHello

    public static func encode(_ value: SensorHello) -> [UInt8] {
        var arena = Arena(capacity: 2048)
        let message = arena.allocate(Patrol__V1__SensorHello.self)
        patrol__v1__sensor_hello__init(message)
        message.pointee.sensor_id = arena.cString(value.sensorID)
        message.pointee.boot_id = arena.cString(value.bootID)
        message.pointee.version = arena.cString(value.version)
        message.pointee.kernel = arena.cString(value.kernel)
        message.pointee.node = arena.cString(value.node)
        message.pointee.n_hooks_loaded = value.hooksLoaded.count
        message.pointee.hooks_loaded = arena.cStrings(value.hooksLoaded)
        (message.pointee.n_hooks_failed, message.pointee.hooks_failed) = arena.entries(
            value.hooksFailed, patrol__v1__sensor_hello__hooks_failed_entry__init
        ) { entry, key, value in
            entry.pointee.key = key
            entry.pointee.value = value
        }
        (message.pointee.n_node_labels, message.pointee.node_labels) = arena.entries(
            value.nodeLabels, patrol__v1__sensor_hello__node_labels_entry__init
        ) { entry, key, value in
            entry.pointee.key = key
            entry.pointee.value = value
        }
        return pack(message)
    }

    public static func decodeSensorHello(_ bytes: UnsafeRawBufferPointer) throws(WireFormatError) -> SensorHello {
        try checkSize(bytes, "SensorHello")
        guard let message = patrol__v1__sensor_hello__unpack(nil, bytes.count, baseAddress(bytes)) else {
            throw malformed("SensorHello", bytes.count)
        }
        defer { patrol__v1__sensor_hello__free_unpacked(message, nil) }
        let hello = message.pointee
        let sensorID = try controlText(hello.sensor_id, "SensorHello.sensor_id")
        guard !sensorID.isEmpty else { throw WireFormatError(.missingField, "SensorHello.sensor_id is empty") }
        var hooksFailed: [String: String] = [:]
        for index in 0..<hello.n_hooks_failed {
            guard let entry = hello.hooks_failed[index]?.pointee else {
                throw WireFormatError(.malformed, "SensorHello.hooks_failed[\(index)] is missing")
            }
            hooksFailed[try controlText(entry.key, "SensorHello.hooks_failed[\(index)].key")] = try controlText(
                entry.value, "SensorHello.hooks_failed[\(index)].value")
        }
        var nodeLabels: [String: String] = [:]
        for index in 0..<hello.n_node_labels {
            guard let entry = hello.node_labels[index]?.pointee else {
                throw WireFormatError(.malformed, "SensorHello.node_labels[\(index)] is missing")
            }
            nodeLabels[try controlText(entry.key, "SensorHello.node_labels[\(index)].key")] = try controlText(
                entry.value, "SensorHello.node_labels[\(index)].value")
        }
        return SensorHello(
            sensorID: sensorID, bootID: try controlText(hello.boot_id, "SensorHello.boot_id"),
            version: try controlText(hello.version, "SensorHello.version"),
            kernel: try controlText(hello.kernel, "SensorHello.kernel"),
            hooksLoaded: try controlTexts(hello.n_hooks_loaded, hello.hooks_loaded, "SensorHello.hooks_loaded"),
            hooksFailed: hooksFailed, nodeLabels: nodeLabels, node: try controlText(hello.node, "SensorHello.node"))
    }

    public static func decodeSensorHello(_ bytes: [UInt8]) throws(WireFormatError) -> SensorHello {
        try withRaw(bytes) { raw throws(WireFormatError) in try decodeSensorHello(raw) }
    }

    // MARK: SensorStatus

    public static func encode(_ value: SensorStatus) -> [UInt8] {
        var arena = Arena(capacity: 2048)
        let message = arena.allocate(Patrol__V1__SensorStatus.self)
        patrol__v1__sensor_status__init(message)
        message.pointee.sensor_id = arena.cString(value.sensorID)
        message.pointee.boot_id = arena.cString(value.bootID)
        message.pointee.time_ns = value.time
        let stages = DropStage.allCases.filter { value.drops[$0] != nil }
        if !stages.isEmpty {
            let pointers = arena.allocate(UnsafeMutablePointer<Patrol__V1__DropCount>?.self, count: stages.count)
            for (index, stage) in stages.enumerated() {
                let drop = arena.allocate(Patrol__V1__DropCount.self)
                patrol__v1__drop_count__init(drop)
                drop.pointee.stage = Patrol__V1__DropStage(rawValue: WireEnums.number(stage))
                drop.pointee.count = value.drops[stage]!
                pointers[index] = drop
            }
            message.pointee.n_drops = stages.count
            message.pointee.drops = pointers
        }
        let depths = value.queueDepths.sorted { $0.key < $1.key }
        if !depths.isEmpty {
            let pointers = arena.allocate(
                UnsafeMutablePointer<Patrol__V1__SensorStatus__QueueDepthsEntry>?.self, count: depths.count)
            for (index, depth) in depths.enumerated() {
                let entry = arena.allocate(Patrol__V1__SensorStatus__QueueDepthsEntry.self)
                patrol__v1__sensor_status__queue_depths_entry__init(entry)
                entry.pointee.key = arena.cString(depth.key)
                entry.pointee.value = depth.value
                pointers[index] = entry
            }
            message.pointee.n_queue_depths = depths.count
            message.pointee.queue_depths = pointers
        }
        message.pointee.n_hooks_loaded = value.hooksLoaded.count
        message.pointee.hooks_loaded = arena.cStrings(value.hooksLoaded)
        (message.pointee.n_hooks_failed, message.pointee.hooks_failed) = arena.entries(
            value.hooksFailed, patrol__v1__sensor_status__hooks_failed_entry__init
        ) { entry, key, value in
            entry.pointee.key = key
            entry.pointee.value = value
        }
        let counters = value.counters.sorted { $0.key < $1.key }
        if !counters.isEmpty {
            let pointers = arena.allocate(
                UnsafeMutablePointer<Patrol__V1__SensorStatus__CountersEntry>?.self, count: counters.count)
            for (index, counter) in counters.enumerated() {
                let entry = arena.allocate(Patrol__V1__SensorStatus__CountersEntry.self)
                patrol__v1__sensor_status__counters_entry__init(entry)
                entry.pointee.key = arena.cString(counter.key)
                entry.pointee.value = counter.value
                pointers[index] = entry
            }
            message.pointee.n_counters = counters.count
            message.pointee.counters = pointers
        }
        if !value.scans.isEmpty {
            let pointers = arena.allocate(
                UnsafeMutablePointer<Patrol__V1__ScanProgress>?.self, count: value.scans.count)
            for (index, scan) in value.scans.enumerated() {
                let wire = arena.allocate(Patrol__V1__ScanProgress.self)
                patrol__v1__scan_progress__init(wire)
                wire.pointee.scan_id = arena.cString(scan.scanID)
                wire.pointee.state = Patrol__V1__ScanState(rawValue: Self.scanStateNumber(scan.state))
                wire.pointee.files_seen = scan.filesSeen
                wire.pointee.files_scanned = scan.filesScanned
                wire.pointee.files_unchanged = scan.filesUnchanged
                wire.pointee.files_skipped = scan.filesSkipped
                wire.pointee.files_failed = scan.filesFailed
                wire.pointee.bytes_scanned = scan.bytesScanned
                wire.pointee.findings = scan.findings
                wire.pointee.started_ns = scan.startedAt
                wire.pointee.finished_ns = scan.finishedAt
                wire.pointee.error = arena.cString(scan.error)
                pointers[index] = wire
            }
            message.pointee.n_scans = value.scans.count
            message.pointee.scans = pointers
        }
        message.pointee.scanner_health_reason = arena.cString(value.scannerHealthReason)
        return pack(message)
    }

    static func scanStateNumber(_ state: ScanReport.State) -> UInt32 {
        switch state {
        case .queued: return 1
        case .running: return 2
        case .finished: return 3
        case .failed: return 4
        case .cancelled: return 5
        }
    }

    static func scanState(_ number: UInt32) -> ScanReport.State? {
        switch number {
        case 1: return .queued
        case 2: return .running
        case 3: return .finished
        case 4: return .failed
        case 5: return .cancelled
        default: return nil
        }
    }

    public static func decodeSensorStatus(_ bytes: UnsafeRawBufferPointer) throws(WireFormatError) -> SensorStatus {
        try checkSize(bytes, "SensorStatus")
        guard let message = patrol__v1__sensor_status__unpack(nil, bytes.count, baseAddress(bytes)) else {
            throw malformed("SensorStatus", bytes.count)
        }
        defer { patrol__v1__sensor_status__free_unpacked(message, nil) }
        let status = message.pointee
        let sensorID = try controlText(status.sensor_id, "SensorStatus.sensor_id")
        guard !sensorID.isEmpty else { throw WireFormatError(.missingField, "SensorStatus.sensor_id is empty") }
        var drops: [DropStage: UInt64] = [:]
        for index in 0..<status.n_drops {
            guard let drop = status.drops[index]?.pointee else {
                throw WireFormatError(.malformed, "SensorStatus.drops[\(index)] is missing")
            }
            guard let stage = WireEnums.stage(drop.stage.rawValue) else {
                throw WireFormatError(
                    .invalidValue, "SensorStatus.drops[\(index)].stage \(drop.stage.rawValue) is not a known DropStage")
            }
            guard drops[stage] == nil else {
                throw WireFormatError(.invalidValue, "SensorStatus.drops[\(index)]: duplicate stage \(stage.rawValue)")
            }
            drops[stage] = drop.count
        }
        var depths: [String: UInt64] = [:]
        for index in 0..<status.n_queue_depths {
            guard let entry = status.queue_depths[index]?.pointee else {
                throw WireFormatError(.malformed, "SensorStatus.queue_depths[\(index)] is missing")
            }
            depths[try controlText(entry.key, "SensorStatus.queue_depths[\(index)].key")] = entry.value
        }
        var hooksFailed: [String: String] = [:]
        for index in 0..<status.n_hooks_failed {
            guard let entry = status.hooks_failed[index]?.pointee else {
                throw WireFormatError(.malformed, "SensorStatus.hooks_failed[\(index)] is missing")
            }
            hooksFailed[try controlText(entry.key, "SensorStatus.hooks_failed[\(index)].key")] = try controlText(
                entry.value, "SensorStatus.hooks_failed[\(index)].value")
        }
        var counters: [String: UInt64] = [:]
        for index in 0..<status.n_counters {
            guard let entry = status.counters[index]?.pointee else {
                throw WireFormatError(.malformed, "SensorStatus.counters[\(index)] is missing")
            }
            counters[try controlText(entry.key, "SensorStatus.counters[\(index)].key")] = entry.value
        }
        var scans: [ScanReport] = []
        for index in 0..<status.n_scans {
            guard let scan = status.scans[index]?.pointee else {
                throw WireFormatError(.malformed, "SensorStatus.scans[\(index)] is missing")
            }
            let scanID = try controlText(scan.scan_id, "SensorStatus.scans[\(index)].scan_id")
            guard !scanID.isEmpty else {
                throw WireFormatError(.missingField, "SensorStatus.scans[\(index)].scan_id is empty")
            }
            guard let state = scanState(scan.state.rawValue) else {
                throw WireFormatError(
                    .invalidValue, "SensorStatus.scans[\(index)].state \(scan.state.rawValue) is not a known ScanState")
            }
            scans.append(
                ScanReport(
                    scanID: scanID, state: state, filesSeen: scan.files_seen, filesScanned: scan.files_scanned,
                    filesUnchanged: scan.files_unchanged, filesSkipped: scan.files_skipped,
                    filesFailed: scan.files_failed, bytesScanned: scan.bytes_scanned, findings: scan.findings,
                    startedAt: scan.started_ns, finishedAt: scan.finished_ns,
                    error: try controlText(scan.error, "SensorStatus.scans[\(index)].error")))
        }
        return SensorStatus(
            sensorID: sensorID, bootID: try controlText(status.boot_id, "SensorStatus.boot_id"), time: status.time_ns,
            drops: drops, queueDepths: depths,
            hooksLoaded: try controlTexts(status.n_hooks_loaded, status.hooks_loaded, "SensorStatus.hooks_loaded"),
            hooksFailed: hooksFailed, counters: counters, scans: scans,
            scannerHealthReason: try controlText(status.scanner_health_reason, "SensorStatus.scanner_health_reason"))
    }

    public static func decodeSensorStatus(_ bytes: [UInt8]) throws(WireFormatError) -> SensorStatus {
        try withRaw(bytes) { raw throws(WireFormatError) in try decodeSensorStatus(raw) }
    }

    // MARK: RPC envelope

    public static func encode(_ value: RPCRequest) -> [UInt8] {
        var arena = Arena(capacity: 256 + value.payload.count)
        let message = arena.allocate(Patrol__V1__RpcRequest.self)
        patrol__v1__rpc_request__init(message)
        message.pointee.method = arena.cString(value.method)
        message.pointee.payload = arena.binary(value.payload)
        return pack(message)
    }

    public static func decodeRPCRequest(_ bytes: UnsafeRawBufferPointer) throws(WireFormatError) -> RPCRequest {
        try checkSize(bytes, "RpcRequest")
        guard let message = patrol__v1__rpc_request__unpack(nil, bytes.count, baseAddress(bytes)) else {
            throw malformed("RpcRequest", bytes.count)
        }
        defer { patrol__v1__rpc_request__free_unpacked(message, nil) }
        let method = try controlText(message.pointee.method, "RpcRequest.method")
        guard !method.isEmpty else { throw WireFormatError(.missingField, "RpcRequest.method is empty") }
        return RPCRequest(method: method, payload: bytesOf(message.pointee.payload))
    }

    public static func decodeRPCRequest(_ bytes: [UInt8]) throws(WireFormatError) -> RPCRequest {
        try withRaw(bytes) { raw throws(WireFormatError) in try decodeRPCRequest(raw) }
    }

    public static func encode(_ value: RPCReply) -> [UInt8] {
        var arena = Arena(capacity: 256 + value.payload.count + value.message.utf8.count)
        let message = arena.allocate(Patrol__V1__RpcReply.self)
        patrol__v1__rpc_reply__init(message)
        message.pointee.status = value.status.rawValue
        message.pointee.message = arena.cString(value.message)
        message.pointee.payload = arena.binary(value.payload)
        return pack(message)
    }

    public static func decodeRPCReply(_ bytes: UnsafeRawBufferPointer) throws(WireFormatError) -> RPCReply {
        try checkSize(bytes, "RpcReply")
        guard let message = patrol__v1__rpc_reply__unpack(nil, bytes.count, baseAddress(bytes)) else {
            throw malformed("RpcReply", bytes.count)
        }
        defer { patrol__v1__rpc_reply__free_unpacked(message, nil) }
        guard let status = RPCStatus(rawValue: message.pointee.status) else {
            throw WireFormatError(
                .invalidValue, "RpcReply.status \(message.pointee.status) is not a gRPC status code (0...16)")
        }
        return RPCReply(
            status: status, message: try controlText(message.pointee.message, "RpcReply.message"),
            payload: bytesOf(message.pointee.payload))
    }

    public static func decodeRPCReply(_ bytes: [UInt8]) throws(WireFormatError) -> RPCReply {
        try withRaw(bytes) { raw throws(WireFormatError) in try decodeRPCReply(raw) }
    }

    // MARK: Helpers

    static func controlText(_ pointer: UnsafePointer<CChar>?, _ field: @autoclosure () -> String)
        throws(WireFormatError) -> String
    {
        guard let pointer else { return "" }
        let length = strlen(pointer)
        if length == 0 { return "" }
        guard let text = CText.string(pointer, length: length) else {
            throw WireFormatError(.invalidValue, "\(field()) is not valid UTF-8")
        }
        return text
    }

    static func controlTexts(
        _ count: Int, _ pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ field: String
    ) throws(WireFormatError) -> [String] {
        guard count > 0, let pointers else { return [] }
        var out: [String] = []
        out.reserveCapacity(count)
        for index in 0..<count { out.append(try controlText(pointers[index], "\(field)[\(index)]")) }
        return out
    }

    static func bytesOf(_ data: ProtobufCBinaryData) -> [UInt8] {
        guard data.len > 0, let base = data.data else { return [] }
        return Array(UnsafeBufferPointer(start: base, count: data.len))
    }
}

extension Arena {
    /// Map entries (`map<string, string>`), sorted by key.
    mutating func entries<Entry>(
        _ map: [String: String], _ initialize: (UnsafeMutablePointer<Entry>?) -> Void,
        _ set: (UnsafeMutablePointer<Entry>, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>) -> Void
    ) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>?) {
        if map.isEmpty { return (0, nil) }
        let sorted = map.sorted { $0.key < $1.key }
        let pointers = allocate(UnsafeMutablePointer<Entry>?.self, count: sorted.count)
        for (index, pair) in sorted.enumerated() {
            let entry = allocate(Entry.self)
            initialize(entry)
            set(entry, cString(pair.key), cString(pair.value))
            pointers[index] = entry
        }
        return (sorted.count, pointers)
    }

    mutating func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        if bytes.isEmpty { return ProtobufCBinaryData(len: 0, data: nil) }
        let copy = allocate(bytes: bytes.count).assumingMemoryBound(to: UInt8.self)
        bytes.withUnsafeBufferPointer { copy.initialize(from: $0.baseAddress!, count: $0.count) }
        return ProtobufCBinaryData(len: bytes.count, data: copy)
    }
}
