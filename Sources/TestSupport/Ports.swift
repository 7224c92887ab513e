#if canImport(Glibc)
    import Glibc
#endif

/// Free TCP ports on loopback, for servers that tests stop and restart on the same address.
public enum Ports {
    /// Binds port 0 on 127.0.0.1, reads the port the kernel chose and releases it.
    public static func freeTCPPort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0, "socket() failed")
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        precondition(bound == 0, "bind() failed")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// `tcp://127.0.0.1:<free port>`.
    public static func loopbackTCPAddress(scheme: String = "tcp") -> String {
        "\(scheme)://127.0.0.1:\(freeTCPPort())"
    }
}
