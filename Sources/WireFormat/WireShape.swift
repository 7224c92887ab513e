/// The messages of an `EventBatch` as protobuf-c sees their structure: which field numbers are known, and of which
/// protobuf type. `BatchReader` decodes straight into values and stops at the first problem; when that problem is a
/// value Patrol refuses (`invalidValue`, `missingField`), protobuf-c would still have refused the whole input as
/// malformed if any part of it were, so the reader asks `isWellFormed` about the whole input before saying which.
/// It is also how a payload that a later payload field replaced is checked (protobuf-c parses every occurrence).
enum WireShape: UInt8 {
    case batch, event, process, container, label
    case exec, exit, open, flow, dns, syscalls, capability, moduleLoad, ptrace, namespaceChange, memfd, link, bpf
    case scanResult, audit

    enum Field {
        case unknown
        /// int32, uint32, uint64 or enum: wire type 0.
        case varint
        /// Any wire type (protobuf-c does not check it for bools).
        case bool
        /// Singular or repeated string: wire type 2.
        case string
        /// Singular or repeated message.
        case message(WireShape)
        /// Repeated uint32: one varint, or a packed run.
        case varints
    }

    /// The payload message of `Event` field 10...25 (the oneof), nil for other numbers.
    static func payload(_ field: UInt32) -> WireShape? {
        switch field {
        case 10: return .exec
        case 11: return .exit
        case 12: return .open
        case 13, 14: return .flow
        case 15: return .dns
        case 16: return .syscalls
        case 17: return .capability
        case 18: return .moduleLoad
        case 19: return .ptrace
        case 20: return .namespaceChange
        case 21: return .memfd
        case 22: return .link
        case 23: return .bpf
        case 24: return .scanResult
        case 25: return .audit
        default: return nil
        }
    }

    // Mirrors proto/patrol/v1/events.proto and sensor.proto's EventBatch; a new field must be added here too (the
    // differential fuzz in EventReadingTests fails on fixtures that set it otherwise).
    func field(_ number: UInt32) -> Field {
        switch self {
        case .batch:
            switch number {
            case 1, 2, 7: return .string
            case 3: return .varint
            case 4: return .bool
            case 5: return .message(.event)
            case 6: return .message(.container)
            default: return .unknown
            }
        case .event:
            switch number {
            case 1, 5, 6, 26: return .varint
            case 2: return .string
            case 3: return .message(.process)
            case 4: return .message(.container)
            default: return WireShape.payload(number).map { .message($0) } ?? .unknown
            }
        case .process:
            switch number {
            case 1...5, 9...12: return .varint
            case 6...8: return .string
            default: return .unknown
            }
        case .container:
            switch number {
            case 1...7, 9, 10: return .string
            case 8: return .message(.label)
            case 11: return .bool
            default: return .unknown
            }
        case .label:
            return number == 1 || number == 2 ? .string : .unknown
        case .exec:
            switch number {
            case 1, 2, 3: return .string
            case 4, 6, 7: return .bool
            case 5: return .varint
            default: return .unknown
            }
        case .exit, .ptrace:
            return number == 1 || number == 2 ? .varint : .unknown
        case .open:
            switch number {
            case 1: return .string
            case 2, 3, 4: return .varint
            case 5: return .bool
            default: return .unknown
            }
        case .flow:
            switch number {
            case 1, 2, 4, 6, 7: return .varint
            case 3, 5: return .string
            default: return .unknown
            }
        case .dns:
            switch number {
            case 1, 3: return .string
            case 2: return .varint
            default: return .unknown
            }
        case .syscalls:
            return number == 1 ? .varints : .unknown
        case .capability:
            switch number {
            case 1, 2: return .varint
            case 3: return .bool
            default: return .unknown
            }
        case .moduleLoad, .audit:
            return number == 1 || number == 2 ? .string : .unknown
        case .namespaceChange:
            switch number {
            case 1, 3, 4, 5: return .string
            case 2: return .varint
            default: return .unknown
            }
        case .memfd:
            switch number {
            case 1: return .string
            case 2: return .varint
            default: return .unknown
            }
        case .link:
            switch number {
            case 1, 2: return .string
            case 3: return .bool
            default: return .unknown
            }
        case .bpf:
            return number == 1 ? .varint : .unknown
        case .scanResult:
            switch number {
            case 1...4: return .string
            case 5: return .varint
            case 6: return .bool
            default: return .unknown
            }
        }
    }

    /// True when protobuf-c would unpack `span` as this message (structure only, no values checked).
    func isWellFormed(_ span: WireSpan) -> Bool {
        do throws(WireFormatError) {
            try check(span)
            return true
        } catch {
            return false
        }
    }

    func check(_ span: WireSpan) throws(WireFormatError) {
        var cursor = WireCursor(span)
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.tag()
            switch field(number) {
            case .unknown: try cursor.skip(wire)
            case .varint: _ = try cursor.varint(wire)
            case .bool: _ = try cursor.bool(wire)
            case .string: _ = try cursor.lengthDelimited(wire)
            case .message(let shape): try shape.check(try cursor.lengthDelimited(wire))
            case .varints:
                var ignored: [UInt32] = []
                try cursor.uint32s(wire, into: &ignored)
            }
        }
    }
}
