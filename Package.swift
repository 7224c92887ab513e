// swift-tools-version:6.0
// Patrol: Kubernetes detection and response. The layers of docs/architecture.md; each imports only downward.
import PackageDescription

let swiftSettings: [SwiftSetting] = [.swiftLanguageMode(.v6)]

/// A layer-0 system library: a module map plus shim header, nothing else.
func cLibrary(_ name: String, pkgConfig: String? = nil) -> Target {
    .systemLibrary(name: name, path: "Sources/\(name)", pkgConfig: pkgConfig)
}

let package = Package(
    name: "Patrol",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "patrol-sensor", targets: ["patrol-sensor"]),
        .executable(name: "patrol-collector", targets: ["patrol-collector"]),
        .executable(name: "patrolctl", targets: ["patrolctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.7.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        // Layer 0: C interop. Each is imported by exactly one layer-2 wrapper.
        cLibrary("CLibBPF", pkgConfig: "libbpf"),
        cLibrary("CProtobufC", pkgConfig: "libprotobuf-c"),
        cLibrary("CNNG"),
        cLibrary("CCurl", pkgConfig: "libcurl"),
        cLibrary("CPCRE2", pkgConfig: "libpcre2-8"),
        cLibrary("CClamAV", pkgConfig: "libclamav"),
        cLibrary("CSQLite", pkgConfig: "sqlite3"),
        .target(name: "CWireProto", dependencies: ["CProtobufC"]),
        // The sensor's kernel/user ABI (include/sensor_abi.h links to bpf/include) and its embedded BPF object.
        .target(name: "CSensorABI"),

        // Layer 1: foundations, pure Swift.
        .target(
            name: "Basics",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(name: "EventModel", dependencies: ["Basics"], swiftSettings: swiftSettings),

        // Layer 2: one wrapper per C library.
        .target(
            name: "BPF", dependencies: ["Basics", "CLibBPF", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(
            name: "KernelEvents", dependencies: ["Basics", "EventModel", "CSensorABI"],
            exclude: ["README.md"], swiftSettings: swiftSettings),
        .target(name: "WireFormat", dependencies: ["Basics", "EventModel", "CWireProto", "CProtobufC"],
            exclude: ["README.md"], swiftSettings: swiftSettings),
        .target(
            name: "Transport",
            dependencies: [
                "Basics", "EventModel", "WireFormat", "CNNG", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "OutboundHTTP", dependencies: ["Basics", "CCurl", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(name: "KubernetesAPI", dependencies: ["Basics", "EventModel", "OutboundHTTP", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .target(name: "PatternMatching", dependencies: ["Basics", "CPCRE2"], swiftSettings: swiftSettings),
        .target(
            name: "MalwareScanning",
            dependencies: ["Basics", "CClamAV", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(name: "Store", dependencies: ["Basics", "EventModel", "CSQLite"], swiftSettings: swiftSettings),

        // Layer 3: domain.
        .target(
            name: "RuleEngine",
            dependencies: [
                "Basics", "EventModel", "PatternMatching", .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings),
        // Application profiles: learned per workload container, judged per event, kept in the store.
        .target(name: "Profiles", dependencies: ["Basics", "EventModel", "Store", .product(name: "Yams", package: "Yams")], swiftSettings: swiftSettings),
        .target(name: "Bindings", dependencies: ["Basics", "EventModel", "RuleEngine", .product(name: "Yams", package: "Yams")], exclude: ["README.md"], swiftSettings: swiftSettings),
        // Elasticsearch/OpenSearch REST client over OutboundHTTP (bulk, search, PIT, scroll, templates).
        .target(
            name: "Elasticsearch",
            dependencies: ["Basics", "EventModel", "OutboundHTTP", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // Audit sources: Kubernetes audit events out of Elasticsearch dated indices.
        .target(
            name: "AuditPipeline",
            dependencies: [
                "Basics", "EventModel", "Elasticsearch", "Store", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"), "Transport",
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "AlertSinks",
            dependencies: [
                "Basics", "EventModel", "Store", "Elasticsearch", "Transport", "OutboundHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),

        // Metrics registry and the HTTP status endpoint (/metrics, /healthz, /readyz) both apps serve.
        .target(
            name: "Telemetry",
            dependencies: [
                "Basics", .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["README.md"], swiftSettings: swiftSettings),

        // Layer 4: applications.
        .target(
            name: "SensorApp",
            dependencies: [
                "Basics", "EventModel", "WireFormat", "Transport", "BPF", "KernelEvents", "Telemetry", "OutboundHTTP",
                "MalwareScanning", "KubernetesAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "CollectorApp",
            dependencies: [
                "Basics", "EventModel", "WireFormat", "Transport", "RuleEngine", "AlertSinks", "Store", "SensorApp",
                "Telemetry", "Elasticsearch", "OutboundHTTP", "AuditPipeline", "Profiles",
                "Bindings", "KubernetesAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "AdminApp",
            dependencies: [
                "Basics", "EventModel", "WireFormat", "Transport", "RuleEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                "Bindings", .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings),

        // Layer 5: executables, a few lines each.
        .executableTarget(name: "patrol-sensor", dependencies: ["SensorApp"], swiftSettings: swiftSettings),
        .executableTarget(name: "patrol-collector", dependencies: ["CollectorApp"], swiftSettings: swiftSettings),
        .executableTarget(name: "patrolctl", dependencies: ["AdminApp"], swiftSettings: swiftSettings),
        // Benchmarks (bench/README.md): one ArgumentParser subcommand per area, `swift run -c release patrol-bench wire`.
        .executableTarget(
            name: "patrol-bench",
            dependencies: [
                "Basics", "EventModel", "WireFormat", "Transport", "RuleEngine", "TestSupport", "Profiles",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                "Store", "AlertSinks", "Bindings", "AuditPipeline", "Elasticsearch", .product(name: "Logging", package: "swift-log"),
                "MalwareScanning",
            ],
            swiftSettings: swiftSettings),

        // Test support: fixtures and servers that tests start.
        .target(
            name: "TestSupport", dependencies: ["Basics", "EventModel"],
            swiftSettings: swiftSettings),

        // Tests mirror modules.
        .testTarget(name: "BasicsTests", dependencies: ["Basics"], swiftSettings: swiftSettings),
        .testTarget(name: "EventModelTests", dependencies: ["EventModel", "Basics"], swiftSettings: swiftSettings),
        .testTarget(name: "WireFormatTests", dependencies: ["WireFormat", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "TransportTests", dependencies: ["Transport", "TestSupport", "EventModel", "Basics"],
            swiftSettings: swiftSettings),
        .testTarget(name: "PatternMatchingTests", dependencies: ["PatternMatching"], swiftSettings: swiftSettings),
        .testTarget(name: "RuleEngineTests", dependencies: ["RuleEngine", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ProfilesTests", dependencies: ["Profiles", "Store", "EventModel", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "BindingsTests", dependencies: ["Bindings", "RuleEngine", "EventModel"], exclude: ["Fixtures"], swiftSettings: swiftSettings),
        .testTarget(name: "AdminAppTests", dependencies: ["TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "StoreTests", dependencies: ["Store", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "AuditPipelineTests", dependencies: ["AuditPipeline", "Elasticsearch", "TestSupport", "EventModel", "Store", "OutboundHTTP"],
            swiftSettings: swiftSettings),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport", "EventModel", "OutboundHTTP"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ElasticsearchTests", dependencies: ["Elasticsearch", "TestSupport", "OutboundHTTP"],
            swiftSettings: swiftSettings),
        .testTarget(name: "AlertSinksTests", dependencies: ["AlertSinks", "TestSupport", "Elasticsearch", "OutboundHTTP", "Store"], swiftSettings: swiftSettings),
        .testTarget(name: "KernelEventsTests", dependencies: ["KernelEvents", "CSensorABI"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SensorAppTests", dependencies: ["SensorApp", "KernelEvents", "BPF", "RuleEngine", "TestSupport", "EventModel", "KubernetesAPI"],
            exclude: ["Fixtures"], swiftSettings: swiftSettings),
        .testTarget(name: "BPFTests", dependencies: ["BPF", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "OutboundHTTPTests", dependencies: ["OutboundHTTP", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "MalwareScanningTests", dependencies: ["MalwareScanning", "TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "TelemetryTests", dependencies: ["Telemetry", "OutboundHTTP", .product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "CollectorAppTests",
            dependencies: ["CollectorApp", "TestSupport", "AuditPipeline", "Elasticsearch", "AlertSinks", "Store", "RuleEngine", "EventModel", "OutboundHTTP", "Transport", "KubernetesAPI"], swiftSettings: swiftSettings),
        .testTarget(
            name: "EndToEndTests", dependencies: [
                "CollectorApp", "SensorApp", "Store", "Transport", "WireFormat", "TestSupport", "OutboundHTTP", "Profiles",
            ],
            swiftSettings: swiftSettings),
    ]
)
