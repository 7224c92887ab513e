#if canImport(Glibc)
import Glibc
#endif

/// Nanoseconds since the Unix epoch, the one time unit events carry end to end.
public typealias EpochNanoseconds = UInt64

public enum WallClock {
    /// The current wall-clock time in nanoseconds since the epoch.
    public static func now() -> EpochNanoseconds {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}

/// Nanoseconds on CLOCK_MONOTONIC: for intervals and pacing, immune to wall-clock steps.
public enum MonotonicClock {
    public static func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}

extension EpochNanoseconds {
    /// RFC 3339 / ISO 8601 in UTC with microseconds, e.g. `2024-05-01T12:00:00.123456Z`.
    /// Written by hand because it runs per alert and Foundation's formatters are slow and not Sendable.
    public var iso8601: String {
        let seconds = time_t(self / 1_000_000_000)
        let micros = Int((self % 1_000_000_000) / 1_000)
        var parts = tm()
        var copy = seconds
        gmtime_r(&copy, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
        }
        let microText = String(micros)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 6 - microText.count) + microText + "Z"
    }
}
