internal import CLibBPF
import Foundation
public import Logging

/// A program in a BPF object: its function name and ELF section (which says how it attaches).
public struct BPFProgramInfo: Sendable, Hashable {
    public let name: String
    /// The ELF section, e.g. `tracepoint/sched/sched_process_exec`, `raw_tp/sys_enter`, `tp_btf/...`.
    public let section: String
    /// Whether the program is loaded with the object (see `BPFObject.setAutoload`).
    public let autoload: Bool
}

/// The outcome of attaching every program of an object: one failure does not stop the others.
public struct AttachReport: Sendable, Equatable, CustomStringConvertible {
    /// Names of programs attached, in object order.
    public var attached: [String]
    /// Program name → why its attach failed (libbpf's error text plus its own log lines).
    public var failed: [String: String]

    public init(attached: [String] = [], failed: [String: String] = [:]) {
        self.attached = attached
        self.failed = failed
    }

    public var description: String {
        "attached \(attached)" + (failed.isEmpty ? "" : ", failed \(failed)")
    }
}

/// An eBPF object file (`*.bpf.o`): open, load into the kernel, attach its programs, reach its maps.
///
/// Owns the libbpf `bpf_object` and every link it creates; both are released on `close()` or deinit,
/// which detaches the programs. Calls are serialised by an internal lock; it is safe to share.
public final class BPFObject: @unchecked Sendable {
    // `lock` guards every field below and every libbpf call on `object`.
    private let lock = NSLock()
    private var object: OpaquePointer?
    private var links: [String: OpaquePointer] = [:]
    private var loaded = false
    /// The ELF bytes of an object opened from memory; libbpf may read them until load.
    private var memory: UnsafeMutableRawBufferPointer?
    /// A name for messages: the path or the given object name.
    public let name: String
    let logger: Logger

    /// Opens (parses, does not load) the object file at `path`.
    public init(path: String, logger: Logger = Logger(label: "patrol.bpf")) throws(BPFError) {
        LibBPFLog.install()
        self.name = path
        self.logger = logger
        guard FileManager.default.fileExists(atPath: path) else {
            throw BPFError(.open, "BPF object file \(path) does not exist")
        }
        let (opened, lines) = try LibBPFLog.capturing { () throws(BPFError) -> OpaquePointer? in
            bpf_object__open_file(path, nil)
        }
        guard let opened else {
            let code = patrol_errno()
            throw BPFError(
                .open, "cannot open BPF object \(path)" + Self.context(lines), cause: LibBPFLog.cause(code))
        }
        self.object = opened
    }

    /// Opens an object from its ELF bytes (`bpf_object__open_mem`), e.g. an object embedded in the binary.
    public init(bytes: [UInt8], name: String, logger: Logger = Logger(label: "patrol.bpf")) throws(BPFError) {
        LibBPFLog.install()
        self.name = name
        self.logger = logger
        guard !bytes.isEmpty else { throw BPFError(.invalidArgument, "BPF object \(name) is empty") }
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        memory.copyBytes(from: bytes)
        self.memory = memory
        let (opened, lines) = try LibBPFLog.capturing { () throws(BPFError) -> OpaquePointer? in
            name.withCString { cName in
                var opts = patrol_bpf_object_open_opts(cName)
                return bpf_object__open_mem(memory.baseAddress, memory.count, &opts)
            }
        }
        guard let opened else {
            let code = patrol_errno()
            memory.deallocate()
            self.memory = nil
            throw BPFError(
                .open, "cannot open BPF object \(name) from memory" + Self.context(lines),
                cause: LibBPFLog.cause(code))
        }
        self.object = opened
    }

    deinit { close() }

    /// Detaches every program and frees the object. Idempotent.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        for (_, link) in links { bpf_link__destroy(link) }
        links.removeAll()
        if let object { bpf_object__close(object) }
        object = nil
        memory?.deallocate()
        memory = nil
    }

    /// The programs in the object, in ELF order.
    public var programs: [BPFProgramInfo] {
        withObject { object in
            var result: [BPFProgramInfo] = []
            var program = bpf_object__next_program(object, nil)
            while let current = program {
                result.append(
                    BPFProgramInfo(
                        name: String(cString: bpf_program__name(current)),
                        section: String(cString: bpf_program__section_name(current)),
                        autoload: bpf_program__autoload(current)))
                program = bpf_object__next_program(object, current)
            }
            return result
        }
    }

    /// Names of the maps in the object.
    public var mapNames: [String] {
        withObject { object in
            var result: [String] = []
            var map = bpf_object__next_map(object, nil)
            while let current = map {
                result.append(String(cString: bpf_map__name(current)))
                map = bpf_object__next_map(object, current)
            }
            return result
        }
    }

    /// Chooses whether a program is loaded at all (before `load()`): lets the sensor skip hooks
    /// the kernel lacks instead of failing the whole object.
    public func setAutoload(program name: String, _ autoload: Bool) throws(BPFError) {
        try withObject { object throws(BPFError) in
            guard !loaded else { throw BPFError(.invalidArgument, "\(self.name) is already loaded") }
            let program = try Self.program(named: name, in: object, objectName: self.name)
            let rc = bpf_program__set_autoload(program, autoload)
            if rc != 0 {
                throw BPFError(.invalidArgument, "cannot set autoload of \(name)", cause: LibBPFLog.cause(rc))
            }
        }
    }

    /// Loads maps and programs into the kernel (CO-RE relocation, verifier). On failure the error
    /// carries the tail of libbpf's log, which includes the verifier's explanation.
    public func load() throws(BPFError) {
        try withObject { object throws(BPFError) in
            guard !loaded else { return }
            let (rc, lines) = try LibBPFLog.capturing { () throws(BPFError) -> Int32 in bpf_object__load(object) }
            if rc != 0 {
                throw BPFError(.load, "cannot load BPF object \(self.name)" + Self.context(lines),
                    cause: LibBPFLog.cause(rc))
            }
            loaded = true
            logger.debug("bpf object loaded", metadata: ["object": "\(self.name)"])
        }
    }

    /// Attaches one program by its section (tracepoint, raw_tp, tp_btf, ...). Idempotent.
    public func attach(program name: String) throws(BPFError) {
        try withObject { object throws(BPFError) in try attachLocked(name, object) }
    }

    /// Attaches every loaded program individually. A program that fails is reported by name with
    /// libbpf's error text; the others still attach.
    public func attachAll() -> AttachReport {
        let names = programs.filter(\.autoload).map(\.name)
        var report = AttachReport()
        for name in names {
            do throws(BPFError) {
                try attach(program: name)
                report.attached.append(name)
            } catch {
                report.failed[name] = error.description
                logger.warning("bpf program attach failed", metadata: ["program": "\(name)", "error": "\(error)"])
            }
        }
        return report
    }

    /// Detaches one program (destroys its link). Does nothing if it is not attached.
    public func detach(program name: String) {
        lock.lock()
        defer { lock.unlock() }
        if let link = links.removeValue(forKey: name) { bpf_link__destroy(link) }
    }

    /// Names of the currently attached programs.
    public var attachedPrograms: [String] {
        lock.lock()
        defer { lock.unlock() }
        return links.keys.sorted()
    }

    /// A map by name. Map access needs the object loaded.
    public func map(named name: String) throws(BPFError) -> BPFMap {
        try withObject { object throws(BPFError) in
            guard let map = bpf_object__find_map_by_name(object, name) else {
                throw BPFError(.notFound, "no map named \(name) in \(self.name); maps: \(mapNamesLocked(object))")
            }
            guard loaded else { throw BPFError(.map, "map \(name) of \(self.name) is not loaded yet; call load()") }
            return BPFMap(owner: self, handle: map, name: name)
        }
    }

    // MARK: - internals

    private func attachLocked(_ name: String, _ object: OpaquePointer) throws(BPFError) {
        guard loaded else { throw BPFError(.attach, "cannot attach \(name): \(self.name) is not loaded") }
        guard links[name] == nil else { return }
        let program = try Self.program(named: name, in: object, objectName: self.name)
        let section = String(cString: bpf_program__section_name(program))
        let (link, lines) = try LibBPFLog.capturing { () throws(BPFError) -> OpaquePointer? in
            bpf_program__attach(program)
        }
        guard let link else {
            let code = patrol_errno()
            throw BPFError(
                .attach, "cannot attach program \(name) (section \(section))" + Self.context(lines),
                cause: LibBPFLog.cause(code))
        }
        links[name] = link
        logger.debug("bpf program attached", metadata: ["program": "\(name)", "section": "\(section)"])
    }

    private func mapNamesLocked(_ object: OpaquePointer) -> [String] {
        var result: [String] = []
        var map = bpf_object__next_map(object, nil)
        while let current = map {
            result.append(String(cString: bpf_map__name(current)))
            map = bpf_object__next_map(object, current)
        }
        return result
    }

    private static func program(named name: String, in object: OpaquePointer, objectName: String) throws(BPFError)
        -> OpaquePointer
    {
        guard let program = bpf_object__find_program_by_name(object, name) else {
            throw BPFError(.notFound, "no program named \(name) in \(objectName)")
        }
        return program
    }

    /// Runs `body` under the lock with the live object; using a closed object is a programmer error.
    func withObject<T, E: Error>(_ body: (OpaquePointer) throws(E) -> T) throws(E) -> T {
        lock.lock()
        defer { lock.unlock() }
        guard let object else { preconditionFailure("BPFObject \(name) used after close()") }
        return try body(object)
    }

    /// The last libbpf lines, as context for an error message.
    static func context(_ lines: [String]) -> String {
        let tail = lines.suffix(12).filter { !$0.isEmpty }
        return tail.isEmpty ? "" : ": " + tail.joined(separator: " | ")
    }
}
