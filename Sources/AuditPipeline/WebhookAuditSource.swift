import Basics
public import EventModel
public import Logging
public import ServiceLifecycle
import Transport

/// Receives kube-apiserver's audit webhook (`--audit-webhook-config-file`): POSTs whose body is an
/// `audit.k8s.io/v1` `EventList`.
///
/// A POST is answered 200 only after its events have been handed on (for the collector: committed by the
/// ingest loop with the alerts they raised), so when the collector cannot take them (overloaded, store
/// failing, shutting down) the apiserver gets a 503 and sends the batch again. A body that is not an event
/// list, or holds an item that is not an audit event, is refused whole with 400 and a JSON message naming
/// the item and field (resending it would fail again), counted as malformed, and logged. A body over
/// `maxBodyBytes` gets 413. Other paths get 404, other methods 405.
///
/// TLS is optional: with a certificate and key it serves HTTPS, and with a client CA it requires a client
/// certificate signed by it, which is how the apiserver authenticates with the webhook kubeconfig's
/// `client-certificate`/`client-key`.
public struct WebhookAuditSource: Service {
    public struct Configuration: Sendable {
        /// `host:port` to listen on.
        public var listen: String
        /// The path the apiserver's kubeconfig `server:` URL names.
        public var path: String
        public var tlsCertificateFile: String?
        public var tlsKeyFile: String?
        /// Require client certificates signed by this CA.
        public var clientCAFile: String?
        public var maxBodyBytes: Int
        public var mapping: AuditMapping

        public init(
            listen: String, path: String = "/audit", tlsCertificateFile: String? = nil, tlsKeyFile: String? = nil,
            clientCAFile: String? = nil, maxBodyBytes: Int = 16 << 20, mapping: AuditMapping = .raw
        ) {
            self.listen = listen
            self.path = path
            self.tlsCertificateFile = tlsCertificateFile
            self.tlsKeyFile = tlsKeyFile
            self.clientCAFile = clientCAFile
            self.maxBodyBytes = maxBodyBytes
            self.mapping = mapping
        }
    }

    public typealias Sink = @Sendable ([AuditRecord]) async throws -> Void

    let server: HTTPServer
    public let statistics: AuditSourceStatistics

    /// `ip:port` actually bound (for port 0, the one picked).
    public var boundAddress: String { server.boundAddress }

    /// Listens right away, so a bad address or unreadable certificate fails here, at startup.
    public init(
        configuration: Configuration, logger: Logger, statistics: AuditSourceStatistics = .init(),
        sink: @escaping Sink
    ) throws(AuditPipelineError) {
        self.statistics = statistics
        var tls: TLSConfiguration?
        if configuration.tlsCertificateFile != nil || configuration.tlsKeyFile != nil
            || configuration.clientCAFile != nil
        {
            guard let certificate = configuration.tlsCertificateFile, let key = configuration.tlsKeyFile else {
                throw AuditPipelineError(
                    .configuration, "the audit webhook needs both a TLS certificate and key file for HTTPS")
            }
            tls = TLSConfiguration(
                certificateFile: certificate, privateKeyFile: key, caFile: configuration.clientCAFile,
                requireClientCertificate: configuration.clientCAFile != nil)
        }
        let mapping = configuration.mapping
        let handler: HTTPServer.Handler = { request in
            await Self.handle(request, mapping: mapping, statistics: statistics, logger: logger, sink: sink)
        }
        do {
            server = try HTTPServer(
                configuration: HTTPServerConfiguration(
                    address: configuration.listen, path: configuration.path, method: "POST", tls: tls,
                    maxBodyBytes: configuration.maxBodyBytes),
                logger: logger, handler: handler)
        } catch {
            throw AuditPipelineError(
                .configuration, "cannot listen for the audit webhook on \(configuration.listen)", cause: .error(error))
        }
        logger.info(
            "audit webhook listening",
            metadata: ["address": "\(server.boundAddress)", "path": "\(configuration.path)", "tls": "\(tls != nil)"])
    }

    public func run() async throws {
        let server = self.server
        await withGracefulShutdownHandler {
            await server.run()
        } onGracefulShutdown: {
            server.close()
        }
    }

    /// Stops taking requests (for callers that run it outside a service group).
    public func close() { server.close() }

    static func handle(
        _ request: HTTPServerRequest, mapping: AuditMapping, statistics: AuditSourceStatistics, logger: Logger,
        sink: Sink
    ) async -> HTTPServerResponse {
        let events: [Event]
        switch parse(request.body, mapping: mapping) {
        case .success(let parsed):
            events = parsed
        case .failure(let problem):
            statistics.add(documents: 0, malformed: 1)
            logger.warning(
                "malformed audit webhook body refused",
                metadata: ["reason": "\(problem.message)", "bytes": "\(request.body.count)"])
            return .json(400, "not an audit EventList: \(problem.message)")
        }
        var records: [AuditRecord] = []
        records.reserveCapacity(events.count)
        for event in events {
            if case .audit(let record) = event.payload { records.append(record) }
        }
        if !records.isEmpty {
            do {
                try await sink(records)
            } catch {
                logger.warning(
                    "audit webhook batch not taken; the apiserver will retry", metadata: ["error": "\(error)"])
                return .json(503, "the events could not be handed on; retry")
            }
        }
        statistics.add(documents: records.count, malformed: 0)
        return HTTPServerResponse(status: 200, body: Array("{}\n".utf8))
    }

    struct Malformed: Error {
        let message: String
    }

    static func parse(_ body: [UInt8], mapping: AuditMapping) -> Result<[Event], Malformed> {
        guard !body.isEmpty else { return .failure(Malformed(message: "the body is empty")) }
        do {
            return .success(try mapping.events(fromJSON: String(decoding: body, as: UTF8.self), sourceID: "webhook"))
        } catch {
            return .failure(Malformed(message: error.message))
        }
    }
}
