import EventModel
import TestSupport
import Testing

@testable import WireFormat

@Suite("Wire round trips")
struct RoundTripTests {
    static let unicode = "Grüße 日本語 🚀 \u{0301}e\u{200D}"

    func roundTrip(_ event: Event, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let bytes = WireCodec.encode(event)
        let decoded = try WireCodec.decodeEvent(bytes)
        #expect(decoded == event, sourceLocation: sourceLocation)
        // Encoding is deterministic.
        #expect(WireCodec.encode(decoded) == bytes, sourceLocation: sourceLocation)
    }

    @Test("every payload kind round-trips from fixtures", arguments: EventKind.allCases)
    func everyKind(kind: EventKind) throws {
        var fixtures = EventFixtures(seed: 7 &+ UInt64(EventKind.allCases.firstIndex(of: kind)!))
        for _ in 0..<50 { try roundTrip(fixtures.event(kind)) }
    }

    static let host = ProcessInfo()
    static let maxProcess = ProcessInfo(
        pid: .max, ppid: .min, tid: -1, uid: .max, gid: .max, comm: unicode, exe: "/" + unicode, cwd: "",
        mountNamespace: .max)

    static let edgePayloads: [Payload] = [
        .exec(Exec(path: "", argv: [], env: [], upperLayer: false)),
        .exec(Exec(path: unicode, argv: ["", unicode, "a b"], env: ["LD_PRELOAD="], upperLayer: true)),
        // The sensor's exec origin flags (volume mount, socket on stdio) travel too.
        .exec(Exec(path: "/mnt/vol/sh", argv: ["sh"], fromVolume: true, stdioSocket: true)),
        .exec(Exec(path: "/bin/sh", stdioSocket: true)),
        .exit(Exit(code: .min, signal: .max)),
        .exit(Exit()),
        .open(FileOpen(path: "", flags: .max, result: .min)),
        .open(FileOpen(path: "/data/db", flags: 2, result: 3, fromVolume: true)),
        .connect(NetworkFlow(family: .unspecified, proto: .unspecified, remoteAddress: "", remotePort: 0)),
        .connect(
            NetworkFlow(
                family: .inet6, proto: .udp, localAddress: "::1", localPort: .max, remoteAddress: "fe80::1%eth0",
                remotePort: .max, result: .min)),
        .accept(NetworkFlow(family: .unix, proto: .tcp, remoteAddress: "/run/x.sock", remotePort: 0, result: .max)),
        .dns(DNSQuery(name: "", queryType: 0, answers: [])),
        .dns(DNSQuery(name: "münchen.de.", queryType: .max, answers: ["", "1.2.3.4"])),
        .syscalls(SyscallSet(syscalls: [])),
        .syscalls(SyscallSet(syscalls: [0, 1, .max, 450])),
        .capability(CapabilityUse(capability: 0, syscall: 0, granted: false)),
        .capability(CapabilityUse(capability: .max, syscall: .max, granted: true)),
        .moduleLoad(ModuleLoad(syscall: "", name: "")),
        .moduleLoad(ModuleLoad(syscall: "finit_module", name: unicode)),
        .ptrace(PtraceAttach(request: .min, targetPid: .max)),
        .namespaceChange(NamespaceChange(syscall: "")),
        .namespaceChange(NamespaceChange(syscall: "mount", flags: .max, source: unicode, target: "/", fsType: "ext4")),
        .memfd(MemfdCreate(name: "", flags: .max)),
        .link(FileLink(target: "", linkPath: "", symbolic: false)),
        .link(FileLink(target: "/etc/shadow", linkPath: unicode, symbolic: true)),
        .bpf(BPFCall(command: .min)),
        .bpf(BPFCall(command: .max)),
        .scanResult(ScanResult(path: "", signature: "")),
        .scanResult(
            ScanResult(
                scanID: unicode, path: "/x", signature: "Eicar", sha256: String(repeating: "f", count: 64),
                sizeBytes: .max, partOfImage: true)),
        .audit(AuditRecord(document: .null)),
        .audit(AuditRecord(document: .object([:]), sourceID: unicode)),
        .audit(AuditRecord(document: .array([]))),
        .audit(
            AuditRecord(
                document: .object([
                    "": .string(""), unicode: .string("quote \" backslash \\ slash / nl \n tab \t nul \u{0} bell \u{7}"),
                    "nums": .array([
                        .number(0), .number(-1), .number(3.5), .number(1e300), .number(-2.2250738585072014e-308),
                        .number(9_007_199_254_740_992), .number(-9_007_199_254_740_994), .number(1.5e16), .number(0.1), .number(123_456_789_012),
                    ]),
                    "nested": .array([.array([.array([.object(["a": .bool(true), "b": .bool(false), "c": .null])])])]),
                ]), sourceID: "es/_doc/1")),
    ]

    @Test("edge values of every payload case round-trip", arguments: 0..<edgePayloads.count)
    func edgeValues(index: Int) throws {
        let payload = Self.edgePayloads[index]
        try roundTrip(Event(time: 0, node: "", process: Self.host, payload: payload, count: 1))
        try roundTrip(
            Event(
                time: .max, node: Self.unicode, process: Self.maxProcess,
                container: ContainerRef(containerID: ""), payload: payload, count: .max))
        try roundTrip(
            Event(
                time: 1, node: "n", process: Self.maxProcess,
                container: ContainerRef(
                    runtime: "containerd", containerID: String(repeating: "a", count: 64), podUID: "u",
                    podName: Self.unicode, namespace: "ns", containerName: "c", image: "img:1"),
                payload: payload, count: 2))
        // Labels and owner from the Kubernetes API, inline on a lone event.
        try roundTrip(
            Event(
                time: 2, node: "n", process: Self.host,
                container: ContainerRef(
                    containerID: "c1", podUID: "u",
                    labels: ["app": Self.unicode, "app.kubernetes.io/name": "web", "e": ""],
                    ownerKind: "Deployment", ownerName: Self.unicode),
                payload: payload))
        // A container the sensor found already running, with nothing else set.
        try roundTrip(
            Event(
                time: 3, node: "n", process: Self.host,
                container: ContainerRef(containerID: "c2", runningAtSensorStart: true), payload: payload))
    }

    @Test("the edge payloads cover every payload case")
    func edgeCoverage() {
        #expect(Set(Self.edgePayloads.map(\.kind)) == Set(EventKind.allCases))
    }

    @Test("batches round-trip, including an empty one")
    func batches() throws {
        var fixtures = EventFixtures(seed: 99)
        for count in [0, 1, 17, 1000] {
            let batch = EventBatch(
                sensorID: "s-\(count)", bootID: count == 0 ? "" : Self.unicode, sequence: count == 1000 ? .max : 1,
                compressed: count == 17, events: fixtures.events(count, kinds: EventKind.allCases))
            let bytes = WireCodec.encode(batch)
            #expect(try WireCodec.decodeEventBatch(bytes) == batch)
            let viaPointer = try bytes.withUnsafeBytes { raw in try WireCodec.decodeEventBatch(raw) }
            #expect(viaPointer == batch)
        }
    }

    @Test("a batch names each container once and keeps look-alike containers apart")
    func containerTable() throws {
        let a = ContainerRef(runtime: "containerd", containerID: "aaa", podName: "p1", image: "img:1")
        let aNewImage = ContainerRef(runtime: "containerd", containerID: "aaa", podName: "p1", image: "img:2")
        let b = ContainerRef(containerID: "bbb")
        let empty = ContainerRef(containerID: "")
        // The same container before and after the API listed its pod, and after a relabel.
        var aLabelled = a
        aLabelled.labels = ["app": "p", "tier": "web"]
        aLabelled.ownerKind = "Deployment"
        aLabelled.ownerName = "p"
        var aRelabelled = aLabelled
        aRelabelled.labels["tier"] = "canary"
        // Same fields but found already running by another sensor run: a different container reference.
        var aRunning = a
        aRunning.runningAtSensorStart = true
        let refs: [ContainerRef?] = [
            a, a, nil, b, a, aNewImage, aNewImage, a, empty, nil, b, aLabelled, a, aRelabelled, aLabelled, aRunning,
            a, aRunning,
        ]
        let events = refs.enumerated().map { index, ref in
            Event(
                time: UInt64(index), node: "n", process: ProcessInfo(pid: Int32(index)), container: ref,
                payload: .exit(Exit(code: Int32(index))))
        }
        let batch = EventBatch(sensorID: "s", bootID: "b", sequence: 1, events: events)
        let bytes = WireCodec.encode(batch)
        #expect(try WireCodec.decodeEventBatch(bytes) == batch)
        // The same events one by one carry every container inline, so they are larger.
        let inline = events.reduce(0) { $0 + WireCodec.encode($1).count }
        #expect(bytes.count < inline)
        let decoded = try WireCodec.decodeEventBatch(bytes)
        #expect(decoded.events[11].container?.labels == ["app": "p", "tier": "web"])
        #expect(decoded.events[12].container?.labels == [:])
        #expect(decoded.events[13].container?.labels["tier"] == "canary")
        #expect(decoded.events[14].container?.ownerKind == "Deployment")
        #expect(decoded.events[15].container?.runningAtSensorStart == true)
        #expect(decoded.events[16].container?.runningAtSensorStart == false)
        #expect(decoded.events[17].container?.runningAtSensorStart == true)
    }

    @Test("labels encode in key order, so equal label sets give equal bytes")
    func labelsAreSorted() throws {
        var labels: [String: String] = [:]
        for index in 0..<50 { labels["key-\(index)"] = "value-\(index)" }
        let event = Event(
            time: 1, node: "n", process: Self.host, container: ContainerRef(containerID: "c", labels: labels),
            payload: .exit(Exit(code: 0)))
        var copy: [String: String] = [:]
        for (key, value) in labels.shuffled() { copy[key] = value }
        var other = event
        other.container?.labels = copy
        #expect(WireCodec.encode(event) == WireCodec.encode(other))
        #expect(try WireCodec.decodeEvent(WireCodec.encode(event)) == event)
    }

    @Test("equal containers are named once whether or not they share storage, also past 16 containers")
    func containerTableByValue() throws {
        // Built twice from separate strings: equal values, different string storage (what a sensor gets when it
        // resolves the same container again).
        func container(_ number: Int) -> ContainerRef {
            ContainerRef(
                runtime: "containerd", containerID: String(repeating: "\(number % 10)", count: 64) + "\(number)",
                podUID: "uid-\(number)-0123456789abcdef", podName: "pod-\(number)-with-a-long-name",
                namespace: "namespace-\(number)", containerName: "container-\(number)", image: "registry/img:\(number)")
        }
        let shared = (0..<40).map(container)
        func events(_ refs: (Int) -> ContainerRef) -> [Event] {
            (0..<400).map { index in
                Event(
                    time: UInt64(index), node: "node", process: ProcessInfo(pid: Int32(index)),
                    container: index % 7 == 0 ? nil : refs((index * 13) % 40), payload: .exit(Exit(code: 0)))
            }
        }
        let sharedBatch = EventBatch(sensorID: "s", bootID: "b", sequence: 1, events: events { shared[$0] })
        let separateBatch = EventBatch(sensorID: "s", bootID: "b", sequence: 1, events: events(container))
        let bytes = WireCodec.encode(separateBatch)
        #expect(try WireCodec.decodeEventBatch(bytes) == separateBatch)
        // Same table, same bytes: each of the 40 containers went into the table once.
        #expect(bytes == WireCodec.encode(sharedBatch))
    }

    @Test("events larger than the encoder's scratch space and long length prefixes round-trip")
    func largeEvents() throws {
        var fixtures = EventFixtures(seed: 7)
        var events = fixtures.events(20, kinds: EventFixtures.execOpenConnect)
        let argv = (0..<3000).map { "--argument-\($0)=\(Self.unicode)" }
        events[3].payload = .exec(Exec(path: "/bin/big", argv: argv, env: ["A=\(Self.unicode)"], upperLayer: true))
        events[11].payload = .open(FileOpen(path: String(repeating: "/deep", count: 40_000), flags: 2, result: 3))
        let batch = EventBatch(sensorID: "s", bootID: "b", sequence: 9, events: events)
        let bytes = WireCodec.encode(batch)
        #expect(bytes.count > 200_000)
        #expect(try WireCodec.decodeEventBatch(bytes) == batch)
    }

    @Test("BatchAck round-trips with every directive")
    func batchAck() throws {
        let acks = [
            BatchAck(bootID: "", highestContiguousSequence: 0),
            BatchAck(
                bootID: Self.unicode, highestContiguousSequence: .max,
                commands: [
                    .scan(scanID: "", path: "", containerID: ""),
                    .scan(scanID: "scan-1", path: "/var/lib", containerID: String(repeating: "b", count: 64)),
                    .setEnabledKinds([]),
                    .setEnabledKinds(EventKind.allCases),
                    .ignoreCgroups([]),
                    .ignoreCgroups([0, 1, .max]),
                ]),
        ]
        for ack in acks {
            let bytes = WireCodec.encode(ack)
            #expect(try WireCodec.decodeBatchAck(bytes) == ack)
            #expect(WireCodec.encode(try WireCodec.decodeBatchAck(bytes)) == bytes)
        }
    }

    @Test("SensorHello round-trips")
    func hello() throws {
        let hellos = [
            SensorHello(sensorID: "s", bootID: "", version: ""),
            SensorHello(
                sensorID: Self.unicode, bootID: "b", version: "1.2.3", kernel: "6.18.0-amd64",
                hooksLoaded: ["sched_process_exec", "", Self.unicode],
                hooksFailed: ["fentry/x": "EPERM", "": "", Self.unicode: Self.unicode],
                nodeLabels: ["kubernetes.io/hostname": "node-1", "topology.kubernetes.io/zone": "eu-1a", "": "x"],
                node: "node-1"),
        ]
        for hello in hellos {
            let bytes = WireCodec.encode(hello)
            #expect(try WireCodec.decodeSensorHello(bytes) == hello)
            #expect(WireCodec.encode(try WireCodec.decodeSensorHello(bytes)) == bytes)
        }
    }

    @Test("SensorStatus round-trips")
    func status() throws {
        let statuses = [
            SensorStatus(sensorID: "s", bootID: "", time: 0),
            SensorStatus(
                sensorID: "s", bootID: Self.unicode, time: .max,
                drops: [.kernelRingBuffer: .max, .userQueue: 0, .spool: 3, .decode: 1],
                queueDepths: ["ring": 10, "spool": .max, "": 0], hooksLoaded: ["a", ""],
                hooksFailed: ["kprobe/x": "CONFIG_KPROBES is not set"],
                counters: ["events_captured": .max, "events_folded": 7, "": 0]),
        ]
        for status in statuses {
            let bytes = WireCodec.encode(status)
            #expect(try WireCodec.decodeSensorStatus(bytes) == status)
            #expect(WireCodec.encode(try WireCodec.decodeSensorStatus(bytes)) == bytes)
        }
    }

    @Test("SensorStatus with scan progress and the scanner's health reason round-trips")
    func statusWithScans() throws {
        let scans = ScanReport.State.allCases.enumerated().map { index, state in
            ScanReport(
                scanID: "scan-\(index)", state: state, filesSeen: .max, filesScanned: 2, filesUnchanged: 3,
                filesSkipped: 4, filesFailed: 5, bytesScanned: 6, findings: UInt64(index), startedAt: 7,
                finishedAt: state.isFinal ? 8 : 0, error: state == .failed ? "no signature database loaded ü" : "")
        }
        let status = SensorStatus(
            sensorID: "s", bootID: "b", time: 1, counters: ["scanner_health": 2], scans: scans,
            scannerHealthReason: "broken.ndb:1: malformed database")
        let bytes = WireCodec.encode(status)
        #expect(try WireCodec.decodeSensorStatus(bytes) == status)
        #expect(WireCodec.encode(try WireCodec.decodeSensorStatus(bytes)) == bytes)
        // The fields are additive: a status without them encodes exactly as before they existed, so an older
        // collector reads a newer sensor's status unchanged.
        let plain = SensorStatus(sensorID: "s", bootID: "b", time: 1, counters: ["scanner_health": 2])
        var old = ProtoWriter()
        old.string(1, "s")
        old.string(2, "b")
        old.varint(3, 1)
        old.message(8) {
            $0.string(1, "scanner_health")
            $0.varint(2, 2)
        }
        #expect(WireCodec.encode(plain) == old.bytes)
    }

    @Test("a scan with an unknown state or no id is refused with the field named")
    func statusWithBadScans() {
        for (field, build) in [
            ("state", { (w: inout ProtoWriter) in w.string(1, "scan-1"); w.varint(2, 99) }),
            ("scan_id", { (w: inout ProtoWriter) in w.varint(2, 1) }),
        ] as [(String, (inout ProtoWriter) -> Void)] {
            var writer = ProtoWriter()
            writer.string(1, "s")
            writer.message(9, build)
            #expect {
                _ = try WireCodec.decodeSensorStatus(writer.bytes)
            } throws: { error in
                "\(error)".contains("SensorStatus.scans[0].\(field)")
            }
        }
    }

    @Test("RPC request and reply round-trip with every status")
    func rpc() throws {
        for request in [
            RPCRequest(method: "patrol.v1.SensorService/SendBatch", payload: []),
            RPCRequest(method: Self.unicode, payload: Array(0...255) + [0, 0]),
        ] {
            #expect(try WireCodec.decodeRPCRequest(WireCodec.encode(request)) == request)
        }
        for status in RPCStatus.allCases {
            for reply in [
                RPCReply(status: status),
                RPCReply(status: status, message: Self.unicode, payload: [0, 1, 2, 255]),
            ] {
                #expect(try WireCodec.decodeRPCReply(WireCodec.encode(reply)) == reply)
            }
        }
    }

    @Test("an RPC envelope carries an encoded batch")
    func envelope() throws {
        var fixtures = EventFixtures(seed: 5)
        let batch = fixtures.batch(sequence: 3, count: 10)
        let request = RPCRequest(method: "patrol.v1.SensorService/SendBatch", payload: WireCodec.encode(batch))
        let decoded = try WireCodec.decodeRPCRequest(WireCodec.encode(request))
        #expect(try WireCodec.decodeEventBatch(decoded.payload) == batch)
    }

    @Test("JSON text parses standard escapes and surrogate pairs")
    func jsonEscapes() throws {
        let text = #" { "a" : [1, -0.5e2, true, false, null, "\u00e9\ud83d\ude80\/\b\f\n\r\t"] } "#
        let value = try Array(text.utf8).withUnsafeBufferPointer { try JSONText.parse($0) }
        #expect(
            value
                == .object([
                    "a": .array([
                        .number(1), .number(-50), .bool(true), .bool(false), .null, .string("é🚀/\u{8}\u{c}\n\r\t"),
                    ])
                ]))
    }
}

@Suite("RPC method names")
struct RPCMethodTests {
    @Test("method names come from the service descriptors")
    func names() {
        #expect(RPCMethods.sensorService == [RPCMethods.sensorHello, RPCMethods.sendBatch, RPCMethods.reportStatus])
        #expect(RPCMethods.adminService.contains("patrol.v1.AdminService/ListBindings"))
        #expect(RPCMethods.adminService.contains("patrol.v1.AdminService/StartScan"))
        #expect(RPCMethods.adminService.count == 21)
    }
}

@Suite("Wire concurrency")
struct ConcurrencyTests {
    @Test("encoding and decoding run safely from many tasks at once")
    func manyTasks() async throws {
        var fixtures = EventFixtures(seed: 77)
        let batches = (1...8).map { fixtures.batch(sequence: UInt64($0), count: 200, kinds: EventKind.allCases) }
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for batch in batches {
                group.addTask {
                    for _ in 0..<20 where try WireCodec.decodeEventBatch(WireCodec.encode(batch)) != batch {
                        return false
                    }
                    return true
                }
            }
            for try await ok in group { #expect(ok) }
        }
    }
}
