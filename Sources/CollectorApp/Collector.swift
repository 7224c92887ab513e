import AlertSinks
import Basics
import EventModel
import Foundation
import Logging
import RuleEngine
import SensorApp
import ServiceLifecycle
import Store
import Transport
import WireFormat

/// Builds the collector's services from a configuration and runs them under one ServiceGroup.
///
/// Shutdown order (reverse of start): the embedded sensor stops, the RPC server stops taking batches, the
/// ingest loop commits what it already holds, then every sink drains the outbox. So a SIGTERM or SIGINT
/// flushes everything that was accepted.
public struct Collector: Sendable {
    public let configuration: CollectorConfiguration
    let logger: Logger

    public init(configuration: CollectorConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        let ruleSet = try RuleSet.load(files: try RuleFiles.expand(configuration.rulePaths))
        logger.info("rules loaded", metadata: ["rules": "\(ruleSet.rules.count)", "paths": "\(configuration.rulePaths)"])
        let store = try await Store.open(path: configuration.storePath)
        let signal = OutboxSignal()

        var services: [any Service] = []
        for sink in try makeSinks() {
            services.append(OutboxDelivery(sink: sink, store: store, signal: signal, logger: logger))
        }
        let ingest = IngestService(store: store, ruleSet: ruleSet, signal: signal, logger: logger)
        services.append(ingest)

        let handler = SensorRPCHandler(ingest: ingest, logger: logger)
        let server = try RPCServer(
            configuration: RPCServerConfiguration(
                address: configuration.listen,
                tls: configuration.tls.map {
                    TLSConfiguration(
                        certificateFile: $0.certificate, privateKeyFile: $0.key, caFile: $0.ca,
                        requireClientCertificate: true)
                },
                concurrency: configuration.ingest.parallelRequests,
                maxMessageSize: configuration.ingest.maxMessageBytes),
            logger: logger,
            handler: handler.handle)
        services.append(RPCServerService(server: server))
        logger.info("collector listening", metadata: ["address": "\(server.boundAddress)"])

        if configuration.allInOne {
            let sensorConfiguration = SensorConfiguration(
                collector: server.boundAddress, sensorID: "embedded-\(Host.localName)",
                replayPath: configuration.replayPath)
            services.append(try Sensor(configuration: sensorConfiguration, logger: logger))
        }

        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        await store.close()
    }

    private func makeSinks() throws -> [any AlertSink] {
        var sinks: [any AlertSink] = []
        if configuration.sinks.stdout { sinks.append(StdoutSink()) }
        if let path = configuration.sinks.csvPath {
            sinks.append(
                CSVSink(path: path, maxBytes: configuration.sinks.csvMaxBytes, keepFiles: configuration.sinks.csvKeepFiles))
        }
        return sinks
    }
}

/// Runs an RPC server as a Service: stops accepting on graceful shutdown.
struct RPCServerService: Service {
    let server: RPCServer

    func run() async throws {
        await withGracefulShutdownHandler {
            await server.run()
        } onGracefulShutdown: {
            server.close()
        }
    }
}

enum Host {
    static var localName: String { ProcessInfo.processInfo.hostName }
}

/// Expands rule paths: files as given, directories to their `*.yaml`/`*.yml` files in name order.
enum RuleFiles {
    static func expand(_ paths: [String]) throws -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw BasicsError(.invalidConfiguration, "rule path \(path) does not exist")
            }
            if isDirectory.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: path)
                    .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
                files += names.map { "\(path)/\($0)" }
            } else {
                files.append(path)
            }
        }
        return files
    }
}
