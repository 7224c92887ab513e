import Foundation

/// A throwaway PKI made with the `openssl` CLI: a CA, a server and a client certificate signed by it,
/// and a second, unrelated CA with its own client certificate (for "wrong CA" tests).
public struct TestCertificates: Sendable {
    public let directory: String
    public let caCertificate: String
    public let serverCertificate: String
    public let serverKey: String
    public let clientCertificate: String
    public let clientKey: String
    /// A client certificate signed by a different CA.
    public let rogueClientCertificate: String
    public let rogueClientKey: String
    public let rogueCACertificate: String

    public struct GenerationError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Generates everything into `directory` (EC P-256 keys, 1 day validity, SAN 127.0.0.1 and localhost).
    public init(in directory: String) throws {
        self.directory = directory
        func path(_ name: String) -> String { "\(directory)/\(name)" }
        caCertificate = path("ca.pem")
        serverCertificate = path("server.pem")
        serverKey = path("server.key")
        clientCertificate = path("client.pem")
        clientKey = path("client.key")
        rogueCACertificate = path("rogue-ca.pem")
        rogueClientCertificate = path("rogue-client.pem")
        rogueClientKey = path("rogue-client.key")

        try Self.makeCA(name: "ca", commonName: "Patrol Test CA", in: directory)
        try Self.makeCA(name: "rogue-ca", commonName: "Rogue CA", in: directory)
        try Self.makeLeaf(name: "server", commonName: "localhost", ca: "ca", server: true, in: directory)
        try Self.makeLeaf(name: "client", commonName: "sensor-1", ca: "ca", server: false, in: directory)
        try Self.makeLeaf(name: "rogue-client", commonName: "intruder", ca: "rogue-ca", server: false, in: directory)
    }

    private static func makeCA(name: String, commonName: String, in directory: String) throws {
        try openssl(
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).pem", "-days", "1",
                "-subj", "/CN=\(commonName)", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ])
    }

    private static func makeLeaf(name: String, commonName: String, ca: String, server: Bool, in directory: String)
        throws
    {
        try openssl(
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).csr", "-subj", "/CN=\(commonName)",
            ])
        let extensions = "\(directory)/\(name).ext"
        let usage = server ? "serverAuth" : "clientAuth"
        let text =
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            // DNS:127.0.0.1 as well as IP:127.0.0.1: clients check the name they dial, and the mbedTLS of
            // Debian 12's nng (2.28) matches it against DNS names only.
            + "extendedKeyUsage=\(usage)\nsubjectAltName=DNS:localhost,IP:127.0.0.1,DNS:127.0.0.1\n"
        try text.write(toFile: extensions, atomically: true, encoding: .utf8)
        try openssl(
            [
                "x509", "-req", "-in", "\(directory)/\(name).csr", "-CA", "\(directory)/\(ca).pem",
                "-CAkey", "\(directory)/\(ca).key", "-CAcreateserial", "-out", "\(directory)/\(name).pem",
                "-days", "1", "-extfile", extensions,
            ])
    }

    private static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw GenerationError(
                description: "openssl \(arguments.prefix(2).joined(separator: " ")) failed: "
                    + String(decoding: output, as: UTF8.self))
        }
    }
}
