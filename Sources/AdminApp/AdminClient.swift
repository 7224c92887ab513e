import ArgumentParser
import Basics
import EventModel
import Foundation
import Transport
import WireFormat

/// `--collector`, the TLS files and the timeout: how online commands reach the collector's admin service.
struct CollectorOptions: ParsableArguments {
    static let defaultAddress = "ipc:///run/patrol/admin.sock"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The collector's admin service: ipc:///path or tls+tcp://host:port. "
                + "Default $PATROL_ADMIN, else \(defaultAddress).",
            valueName: "address"))
    var collector: String?

    @Option(name: .long, help: ArgumentHelp("Client certificate (PEM) for tls+tcp://.", valueName: "file"))
    var cert: String?

    @Option(name: .long, help: ArgumentHelp("Client private key (PEM) for tls+tcp://.", valueName: "file"))
    var key: String?

    @Option(
        name: .long,
        help: ArgumentHelp("CA (PEM) that signs the collector's certificate, for tls+tcp://.", valueName: "file"))
    var ca: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Seconds to wait for the connection and for each reply. Default 5.", valueName: "seconds"))
    var timeout: Double = 5

    var address: String {
        if let collector { return collector }
        if let fromEnvironment = ProcessInfo.processInfo.environment["PATROL_ADMIN"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return Self.defaultAddress
    }

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        let address = self.address
        if address.hasPrefix("tls+tcp://") {
            guard cert != nil, key != nil, ca != nil else {
                throw ValidationError("\(address) is TLS: give --cert, --key and --ca")
            }
        } else if !address.hasPrefix("ipc://") && !address.hasPrefix("tcp://") && !address.hasPrefix("inproc://") {
            throw ValidationError("'\(address)' is not an admin address; expected ipc:///path or tls+tcp://host:port")
        }
    }

    func client() throws -> AdminClient {
        let tls =
            address.hasPrefix("tls+tcp://")
            ? TLSConfiguration(certificateFile: cert, privateKeyFile: key, caFile: ca) : nil
        return try AdminClient(address: address, tls: tls, timeout: .milliseconds(Int64(timeout * 1000)))
    }
}

/// The collector was not reached or refused the request; the reason is on stderr. Exit status 3.
struct CollectorFailure: Error {}

/// One admin RPC at a time over an `RPCClient`, with patrolctl's error reporting: every failure is printed as one
/// line naming the address, then thrown as `InvalidInput` (exit 1: the collector rejected the input) or
/// `CollectorFailure` (exit 3: unreachable, refused, unavailable).
struct AdminClient {
    let address: String
    let timeout: Duration
    let client: RPCClient

    init(address: String, tls: TLSConfiguration?, timeout: Duration) throws {
        self.address = address
        self.timeout = timeout
        do {
            // One quick reconnect schedule: a CLI waits `timeout` in all, not nng's default back-off.
            client = try RPCClient(
                configuration: RPCClientConfiguration(
                    address: address, tls: tls, reconnectMinimum: .milliseconds(50),
                    reconnectMaximum: .milliseconds(250)))
        } catch {
            Console.error("patrolctl: cannot use the collector address \(address): \(error.message)")
            throw CollectorFailure()
        }
    }

    /// Waits for the connection (at most `timeout`), so that a collector that is down gives a clear error
    /// quickly instead of a request timing out.
    private func connect() async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while !client.isConnected {
            if clock.now >= deadline {
                let stats = client.stats
                var reason = "no connection within \(Self.seconds(timeout))"
                if stats.tlsFailures + stats.dialsDisconnected > 0 {
                    reason =
                        "the TLS handshake failed "
                        + "(certificate refused by the collector, or its certificate not trusted)"
                } else if stats.dialsRefused > 0 || address.hasPrefix("ipc://") {
                    reason =
                        "nothing is listening there (is patrol-collector running, and may this user open the socket?)"
                }
                Console.error("patrolctl: cannot reach the collector at \(address): \(reason)")
                throw CollectorFailure()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Calls `method` (`AdminService/<name>`) and returns the reply's payload.
    func call(_ name: String, _ payload: [UInt8]) async throws -> [UInt8] {
        defer { client.close() }
        try await connect()
        let reply: RPCReply
        do {
            reply = try await client.call(
                RPCRequest(method: RPCMethods.admin(name), payload: payload), timeout: timeout)
        } catch {
            Console.error("patrolctl: the collector at \(address) did not answer: \(error.message)")
            throw CollectorFailure()
        }
        switch reply.status {
        case .ok:
            return reply.payload
        case .invalidArgument, .notFound, .failedPrecondition, .alreadyExists, .outOfRange:
            Console.error("patrolctl: \(reply.message)")
            throw InvalidInput()
        case .permissionDenied, .unauthenticated:
            Console.error("patrolctl: the collector at \(address) refused the request: \(reply.message)")
            throw CollectorFailure()
        default:
            Console.error("patrolctl: the collector at \(address) failed (\(reply.status)): \(reply.message)")
            throw CollectorFailure()
        }
    }

    static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let value = Double(seconds) + Double(attoseconds) / 1e18
        return value == value.rounded() ? "\(Int(value))s" : "\(value)s"
    }

    /// Calls one of the List* methods (ListBindings, ListProfiles, ...) and returns its table.
    func table(_ method: String, _ request: AdminListRequest) async throws -> AdminTable {
        try decode(try await call(method, WireCodec.encode(request)), WireCodec.decodeAdminListReply).table
    }

    /// Calls one of the Get* methods (GetBinding, GetProfile, ...) and returns its document.
    func document(_ method: String, _ request: AdminGetRequest) async throws -> AdminDocument {
        try decode(try await call(method, WireCodec.encode(request)), WireCodec.decodeAdminGetReply)
    }

    /// Decodes a reply, turning a bad one into exit status 3 (the collector answered something unreadable).
    func decode<T>(_ payload: [UInt8], _ body: ([UInt8]) throws(WireFormatError) -> T) throws -> T {
        do {
            return try body(payload)
        } catch {
            Console.error("patrolctl: the reply of the collector at \(address) does not decode: \(error.message)")
            throw CollectorFailure()
        }
    }
}

/// Renders an admin table: as a table, or as a list of objects whose keys are the columns in camelCase.
func render(_ table: AdminTable, _ format: OutputFormat) {
    Console.render(format) {
        Table(header: table.columns, rows: table.rows)
    } value: {
        let keys = table.columns.map(camelCase)
        return .list(table.rows.map { row in .object(Array(zip(keys, row.map { OutputValue.string($0) }))) })
    }
}

/// `LEARNING ENDS` → `learningEnds`.
func camelCase(_ column: String) -> String {
    let words = column.lowercased().split(separator: " ")
    guard let first = words.first else { return "" }
    return String(first) + words.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
}

/// Prints a document's body as the collector sent it, without a doubled final newline.
func printDocument(_ document: AdminDocument) {
    var body = document.body
    while body.hasSuffix("\n") { body.removeLast() }
    Console.out(body)
}

/// The `*.yaml`/`*.yml`/`*.json` files of the paths: files as given, directories in name order, not recursive.
func documentFiles(_ paths: [String]) throws -> [(path: String, text: String)] {
    var files: [(String, String)] = []
    for path in paths {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            Console.error("patrolctl: \(path) does not exist")
            throw InvalidInput()
        }
        var names = [path]
        if isDirectory.boolValue {
            names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }.sorted()
                .map { "\(path)/\($0)" }
        }
        for name in names {
            guard let data = FileManager.default.contents(atPath: name) else {
                Console.error("patrolctl: cannot read \(name)")
                throw InvalidInput()
            }
            files.append((name, String(decoding: data, as: UTF8.self)))
        }
    }
    return files
}

/// Prints apply results; exit status 1 when any document was rejected.
func report(_ results: [AdminApplyResult], dryRun: Bool, _ format: OutputFormat) throws {
    let suffix = dryRun ? " (dry run)" : ""
    Console.render(format) {
        var table = Table(header: ["NAME", "NAMESPACE", "RESULT", "MESSAGE"])
        for result in results {
            table.rows.append([result.name, result.namespace, result.action.word + suffix, result.message])
        }
        return table
    } value: {
        .list(
            results.map {
                .object([
                    ("name", .string($0.name)), ("namespace", .string($0.namespace)),
                    ("result", .string($0.action.word)),
                    ("message", .string($0.message)), ("dryRun", .bool(dryRun)),
                ])
            })
    }
    let rejected = results.filter { $0.action == .rejected }
    if !rejected.isEmpty {
        for result in rejected { Console.error("\(result.name): \(result.message)") }
        Console.error("\(rejected.count) rejected; nothing applied")
        throw InvalidInput()
    }
}
