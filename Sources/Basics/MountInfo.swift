/// One line of `/proc/<pid>/mountinfo` (proc(5)), with octal escapes (`\040`) decoded. Shared by the sensor's
/// container resolution (root overlays, volumes) and malware scanning (pseudo filesystems, layer attribution).
public struct MountInfoEntry: Sendable, Hashable {
    public var mountID: Int
    public var parentID: Int
    /// The root of the mount inside its file system (for a bind mount, the directory that was bound).
    public var root: String
    /// Where it is mounted, as seen by the process.
    public var mountPoint: String
    public var mountOptions: String
    public var fileSystemType: String
    public var source: String
    /// The file system's options, still escaped as the kernel printed them; read them with `superOption(_:)`.
    public var superOptions: String

    public init(
        mountID: Int, parentID: Int, root: String, mountPoint: String, mountOptions: String, fileSystemType: String,
        source: String, superOptions: String
    ) {
        self.mountID = mountID
        self.parentID = parentID
        self.root = root
        self.mountPoint = mountPoint
        self.mountOptions = mountOptions
        self.fileSystemType = fileSystemType
        self.source = source
        self.superOptions = superOptions
    }

    /// The super options as key/value pairs (`upperdir=/x` → ("upperdir", "/x"); `rw` → ("rw", "")), split at
    /// commas before the kernel's octal escapes (`\054` for a comma inside a path) are decoded.
    public var superOptionPairs: [(key: String, value: String)] {
        superOptions.split(separator: ",").map { option in
            guard let equals = option.firstIndex(of: "=") else { return (MountInfoParser.unescape(option), "") }
            return (
                MountInfoParser.unescape(option[..<equals]),
                MountInfoParser.unescape(option[option.index(after: equals)...])
            )
        }
    }

    public func superOption(_ key: String) -> String? {
        superOptionPairs.first(where: { $0.key == key })?.value
    }
}

public enum MountInfoParser {
    /// Parses the text of `/proc/<pid>/mountinfo`; malformed lines are skipped.
    public static func parse(_ text: String) -> [MountInfoEntry] {
        text.split(separator: "\n").compactMap(parseLine)
    }

    static func parseLine(_ line: Substring) -> MountInfoEntry? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
        guard fields.count >= 10, let id = Int(fields[0]), let parent = Int(fields[1]),
            let dash = fields[6...].firstIndex(of: "-"), fields.count >= dash + 4
        else { return nil }
        return MountInfoEntry(
            mountID: id, parentID: parent, root: unescape(fields[3]), mountPoint: unescape(fields[4]),
            mountOptions: String(fields[5]), fileSystemType: String(fields[dash + 1]),
            source: unescape(fields[dash + 2]), superOptions: String(fields[dash + 3]))
    }

    /// The mount that is the process's `/`: the last one listed at `/` (a later mount hides earlier ones).
    public static func rootMount(_ entries: [MountInfoEntry]) -> MountInfoEntry? {
        entries.last(where: { $0.mountPoint == "/" })
    }

    /// The overlay layers of a root mount, when it is an overlay.
    public static func overlayLayers(_ mount: MountInfoEntry) -> (upper: String?, lower: [String])? {
        guard mount.fileSystemType == "overlay" else { return nil }
        let upper = mount.superOption("upperdir")
        let lower = mount.superOption("lowerdir").map { splitLowerDirs($0) } ?? []
        return (upper, lower)
    }

    /// Splits `lowerdir=a:b:c`, honouring `\:` escapes.
    public static func splitLowerDirs(_ text: String) -> [String] {
        split(text, on: ":")
    }

    private static func split(_ text: String, on separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var escaped = false
        for character in text {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == separator {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty || !parts.isEmpty { parts.append(current) }
        return parts.filter { !$0.isEmpty }
    }

    /// Decodes the kernel's `\ooo` octal escapes (space, tab, newline, backslash).
    static func unescape<S: StringProtocol>(_ text: S) -> String {
        guard text.contains("\\") else { return String(text) }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count,
                let value = octal(utf8[(index + 1)...(index + 3)])
            {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func octal(_ digits: ArraySlice<UInt8>) -> UInt8? {
        var value = 0
        for digit in digits {
            guard (48...55).contains(digit) else { return nil }
            value = value * 8 + Int(digit - 48)
        }
        return value <= 255 ? UInt8(value) : nil
    }
}
