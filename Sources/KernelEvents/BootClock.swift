#if canImport(Glibc)
import Glibc
#endif
public import Basics

/// Converts the kernel's `bpf_ktime_get_boot_ns()` timestamps (CLOCK_BOOTTIME) to wall-clock nanoseconds.
///
/// The offset is measured once (`measure()`); re-measure periodically to follow wall-clock steps (NTP).
public struct BootClock: Sendable, Hashable {
    /// CLOCK_REALTIME minus CLOCK_BOOTTIME, in nanoseconds.
    public var offsetNanoseconds: Int64

    public init(offsetNanoseconds: Int64) { self.offsetNanoseconds = offsetNanoseconds }

    /// Reads both clocks now; takes the tightest of a few tries so preemption between the reads barely matters.
    public static func measure() -> BootClock {
        var best: (span: Int64, offset: Int64)?
        for _ in 0..<3 {
            let before = read(CLOCK_REALTIME)
            let boot = read(CLOCK_BOOTTIME)
            let after = read(CLOCK_REALTIME)
            let span = after - before
            let offset = before + span / 2 - boot
            if best == nil || span < best!.span { best = (span, offset) }
        }
        return BootClock(offsetNanoseconds: best!.offset)
    }

    /// Wall-clock nanoseconds since the epoch for a boot-time timestamp.
    public func wallClock(bootNanoseconds: UInt64) -> EpochNanoseconds {
        let value = Int64(clamping: bootNanoseconds) &+ offsetNanoseconds
        return value < 0 ? 0 : UInt64(value)
    }

    /// Now, on the boot clock.
    public static func bootNow() -> UInt64 { UInt64(read(CLOCK_BOOTTIME)) }

    private static func read(_ clock: clockid_t) -> Int64 {
        var spec = timespec()
        clock_gettime(clock, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
