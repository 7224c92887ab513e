import Logging

/// The one logging set-up the executables share: human-readable lines on stderr (stdout carries alerts).
public enum PatrolLogging {
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
