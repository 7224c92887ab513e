import Foundation

/// A fresh directory under the system temp dir, removed by `remove()` (or left for inspection).
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "patrol-test") throws {
        let base = FileManager.default.temporaryDirectory.path
        let path = "\(base)/\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        self.path = path
    }

    /// A path inside the directory.
    public func file(_ name: String) -> String { "\(path)/\(name)" }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
