import Foundation
import RuleEngine

#if canImport(Glibc)
    import Glibc
#endif

/// The Kubernetes API server as the workloads reach it, for R0007 ("a connection to the API server the profile
/// never made"). KubeCop resolved the address for every event; the collector takes it once, at start-up, and
/// appends it to the rules' `apiserver_addresses` list, so the per-event cost is the list's set lookup.
///
/// Inside a cluster every pod (the collector's too) has `KUBERNETES_SERVICE_HOST`, the `kubernetes` Service's
/// cluster IP, which is the address a workload's `connect` names (the sensor sees it before the service NAT).
enum APIServerAddresses {
    /// The API server address in `environment`: `KUBERNETES_SERVICE_HOST` when it is an IPv4 or IPv6 literal
    /// (as Kubernetes sets it). A host name is not resolved: it would be resolved differently inside every
    /// workload, and the sensor reports addresses, not names. Empty outside a cluster.
    static func fromEnvironment(_ environment: [String: String]) -> [String] {
        guard let host = environment["KUBERNETES_SERVICE_HOST"]?.trimmingCharacters(in: .whitespaces),
            !host.isEmpty
        else { return [] }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return isAddressLiteral(bare) ? [canonical(bare)] : []
    }

    /// A rule source that appends `addresses` to `apiserver_addresses`, loaded after the rule files.
    static func ruleSource(_ addresses: [String]) -> (fileName: String, yaml: String)? {
        guard !addresses.isEmpty else { return nil }
        let items = addresses.map { "\"\($0)\"" }.joined(separator: ", ")
        return ("<KUBERNETES_SERVICE_HOST>", "- list: apiserver_addresses\n  items: [\(items)]\n  append: true\n")
    }

    /// The rules of `files`, with `addresses` appended to `apiserver_addresses` when the files define that
    /// list (they may not load the anomaly rules at all; then the rules are returned as loaded).
    static func load(files: [String], addresses: [String]) throws -> (ruleSet: RuleSet, applied: Bool) {
        let plain = try RuleSet.load(files: files)
        guard let extra = ruleSource(addresses) else { return (plain, false) }
        var sources: [(fileName: String, yaml: String)] = []
        for file in files { sources.append((file, try String(contentsOfFile: file, encoding: .utf8))) }
        guard let extended = try? RuleSet.load(sources: sources + [extra]) else { return (plain, false) }
        return (extended, true)
    }

    static func isAddressLiteral(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// IPv6 in the sensor's form (RFC 5952, as `inet_ntop` writes it), so the list matches `net.daddr`.
    static func canonical(_ text: String) -> String {
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return text }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count)) != nil else { return text }
        return String(cString: buffer)
    }
}
