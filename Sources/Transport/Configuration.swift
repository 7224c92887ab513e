import Basics

/// Mutual-TLS settings from PEM files, for `tls+tcp://` addresses.
public struct TLSConfiguration: Sendable, Hashable {
    /// Our certificate (PEM). It may also hold the private key.
    public var certificateFile: String?
    /// Our private key (PEM); nil when `certificateFile` holds both.
    public var privateKeyFile: String?
    /// CA certificates that sign the peer's certificate (PEM).
    public var caFile: String?
    /// The name the client expects in the server's certificate (client side only); nil: the host it dials.
    public var serverName: String?
    /// Server side: refuse clients without a certificate signed by `caFile`. On by default (mutual TLS).
    public var requireClientCertificate: Bool
    /// Client side: verify the server's certificate against `caFile`. On by default.
    public var verifyServer: Bool

    public init(
        certificateFile: String? = nil, privateKeyFile: String? = nil, caFile: String? = nil,
        serverName: String? = nil, requireClientCertificate: Bool = true, verifyServer: Bool = true
    ) {
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.caFile = caFile
        self.serverName = serverName
        self.requireClientCertificate = requireClientCertificate
        self.verifyServer = verifyServer
    }
}

/// Who sent a request, as the server saw it.
public struct PeerInfo: Sendable, Hashable {
    /// nng's pipe id: one connection.
    public var connectionID: UInt32
    /// `ip:port`, `[ip6]:port`, `ipc://path` or `inproc://name`.
    public var remoteAddress: String
    /// True when the connection is TLS and the peer's certificate was verified.
    public var tlsVerified: Bool
    /// For `ipc://` connections, the peer process's user id as the kernel reports it (SO_PEERCRED), so a server
    /// can authorise by uid; nil on other transports.
    public var peerUID: UInt32?

    public init(connectionID: UInt32, remoteAddress: String, tlsVerified: Bool = false, peerUID: UInt32? = nil) {
        self.connectionID = connectionID
        self.remoteAddress = remoteAddress
        self.tlsVerified = tlsVerified
        self.peerUID = peerUID
    }
}
