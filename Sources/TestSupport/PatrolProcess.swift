import Foundation

/// A Patrol executable run as a real child process, the way users run it, with its output in files.
///
/// Binaries come from `PATROL_BIN` (the Makefile points it at the release build) or else from the
/// directory of the running test bundle (the debug build).
public final class PatrolProcess: @unchecked Sendable {
    public let name: String
    public let arguments: [String]
    public let stdoutPath: String
    public let stderrPath: String
    // `process` is set once in init and only read afterwards.
    private let process: Process

    public static var binaryDirectory: String {
        if let configured = ProcessInfo.processInfo.environment["PATROL_BIN"], !configured.isEmpty {
            return configured
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    }

    /// Starts `binary` (e.g. `patrol-collector`) with `arguments`; output goes to `<logDirectory>/<name>.out|err`.
    /// A non-empty `launcher` (a command such as `unshare ... sh -c 'script; exec "$0" "$@"'`) is run instead,
    /// with the binary's path and `arguments` appended, so the binary starts in the environment it prepares.
    public init(
        _ binary: String, _ arguments: [String], logDirectory: String, name: String? = nil, launcher: [String] = []
    ) throws {
        self.name = name ?? binary
        self.arguments = arguments
        let base = "\(logDirectory)/\(self.name)-\(UUID().uuidString.prefix(6))"
        stdoutPath = base + ".out"
        stderrPath = base + ".err"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process = Process()
        let binaryPath = "\(Self.binaryDirectory)/\(binary)"
        if let command = launcher.first {
            process.executableURL = URL(fileURLWithPath: command)
            process.arguments = Array(launcher.dropFirst()) + [binaryPath] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binaryPath)
            process.arguments = arguments
        }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the process to exit; returns its status, or nil if it was still running at `timeout`
    /// (then it is killed, so a hung child never outlives the test).
    @discardableResult
    public func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                signal(SIGKILL)
                while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
                return nil
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    public var standardOutput: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var standardError: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Polls until `condition` holds or `timeout` passes.
    public static func eventually(timeout: Duration, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return await condition()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
