import Store

/// Which batches each sensor boot has delivered: the highest contiguous sequence plus those above it
/// that arrived out of order. `record` refuses a sequence seen before, which is how duplicates are dropped.
struct BatchLedger: Sendable {
    struct Key: Hashable, Sendable {
        var sensorID: String
        var bootID: String
    }

    private var boots: [Key: (contiguous: UInt64, above: Set<UInt64>)] = [:]

    init(_ saved: [SensorProgress]) {
        for progress in saved {
            boots[Key(sensorID: progress.sensorID, bootID: progress.bootID)] = (progress.contiguous, Set(progress.above))
        }
    }

    /// Records a sequence; returns false if it was already delivered.
    mutating func record(sensorID: String, bootID: String, sequence: UInt64) -> Bool {
        let key = Key(sensorID: sensorID, bootID: bootID)
        var state = boots[key] ?? (0, [])
        guard sequence > state.contiguous, !state.above.contains(sequence) else { return false }
        if sequence == state.contiguous + 1 {
            state.contiguous = sequence
            while state.above.remove(state.contiguous + 1) != nil { state.contiguous += 1 }
        } else {
            state.above.insert(sequence)
        }
        boots[key] = state
        return true
    }

    func contiguous(sensorID: String, bootID: String) -> UInt64 {
        boots[Key(sensorID: sensorID, bootID: bootID)]?.contiguous ?? 0
    }

    func progress(for key: Key) -> SensorProgress {
        let state = boots[key] ?? (0, [])
        return SensorProgress(sensorID: key.sensorID, bootID: key.bootID, contiguous: state.contiguous, above: state.above.sorted())
    }
}
