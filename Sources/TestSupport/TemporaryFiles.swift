import Foundation

/// A fresh directory under the system temp dir, removed when `remove()` is called.
public struct ScratchDirectory: Sendable {
    public let path: String

    public init(_ label: String = "patrol") throws {
        path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
