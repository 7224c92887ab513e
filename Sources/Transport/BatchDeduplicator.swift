import EventModel

/// Receiver-side de-duplication of batches by `(sensor id, boot id, sequence)`.
///
/// Per stream (sensor and boot) it keeps the highest contiguous sequence received plus the set of
/// sequences above it. It is a plain value: the collector persists it (`Codable`, or one stream's
/// `StreamState`) in the same transaction as the batch, and restores it after a restart.
///
/// A sensor can drop batches for good (spool overflow, counted on its side); the gap would stall the
/// contiguous floor forever. When more than `maxOutOfOrder` sequences wait above a gap, the floor moves
/// past the gap and the skipped sequences are counted in `skippedSequences`.
public struct BatchDeduplicator: Sendable, Hashable, Codable {
    public struct StreamKey: Sendable, Hashable, Codable, Comparable {
        public var sensorID: String
        public var bootID: String
        public init(sensorID: String, bootID: String) {
            self.sensorID = sensorID
            self.bootID = bootID
        }
        public static func < (lhs: StreamKey, rhs: StreamKey) -> Bool {
            (lhs.sensorID, lhs.bootID) < (rhs.sensorID, rhs.bootID)
        }
    }

    /// One stream's state: what to persist with each batch.
    public struct StreamState: Sendable, Hashable, Codable {
        /// Every sequence in 1...highestContiguous was received (or skipped as a known gap).
        public var highestContiguous: UInt64
        /// Sequences received above `highestContiguous + 1`.
        public var above: Set<UInt64>
        /// Sequences never received that the floor moved past.
        public var skippedSequences: UInt64

        public init(highestContiguous: UInt64 = 0, above: Set<UInt64> = [], skippedSequences: UInt64 = 0) {
            self.highestContiguous = highestContiguous
            self.above = above
            self.skippedSequences = skippedSequences
        }

        public func isDuplicate(_ sequence: UInt64) -> Bool {
            sequence <= highestContiguous || above.contains(sequence)
        }

        /// Records `sequence`; returns false when it was a duplicate.
        @discardableResult
        public mutating func record(_ sequence: UInt64, maxOutOfOrder: Int) -> Bool {
            guard sequence > 0, !isDuplicate(sequence) else { return false }
            if sequence == highestContiguous + 1 {
                highestContiguous = sequence
                advance()
            } else {
                above.insert(sequence)
                if above.count > maxOutOfOrder, let lowest = above.min() {
                    skippedSequences += lowest - highestContiguous - 1
                    highestContiguous = lowest
                    above.remove(lowest)
                    advance()
                }
            }
            return true
        }

        private mutating func advance() {
            while above.remove(highestContiguous + 1) != nil { highestContiguous += 1 }
        }
    }

    public private(set) var streams: [StreamKey: StreamState]
    public var maxOutOfOrder: Int

    public init(maxOutOfOrder: Int = 65_536, streams: [StreamKey: StreamState] = [:]) {
        self.maxOutOfOrder = maxOutOfOrder
        self.streams = streams
    }

    public func isDuplicate(sensorID: String, bootID: String, sequence: UInt64) -> Bool {
        streams[StreamKey(sensorID: sensorID, bootID: bootID)]?.isDuplicate(sequence) ?? false
    }

    public func isDuplicate(_ header: BatchHeader) -> Bool {
        isDuplicate(sensorID: header.sensorID, bootID: header.bootID, sequence: header.sequence)
    }

    /// Records a batch as durably handed on; returns false when it was a duplicate.
    @discardableResult
    public mutating func record(sensorID: String, bootID: String, sequence: UInt64) -> Bool {
        let limit = maxOutOfOrder
        return streams[StreamKey(sensorID: sensorID, bootID: bootID), default: StreamState()]
            .record(sequence, maxOutOfOrder: limit)
    }

    @discardableResult
    public mutating func record(_ header: BatchHeader) -> Bool {
        record(sensorID: header.sensorID, bootID: header.bootID, sequence: header.sequence)
    }

    /// The highest contiguous sequence of a stream: the value the ack carries.
    public func highestContiguous(sensorID: String, bootID: String) -> UInt64 {
        streams[StreamKey(sensorID: sensorID, bootID: bootID)]?.highestContiguous ?? 0
    }

    /// The ack for a stream (commands are added by the application).
    public func ack(for header: BatchHeader) -> BatchAck {
        BatchAck(
            bootID: header.bootID,
            highestContiguousSequence: highestContiguous(sensorID: header.sensorID, bootID: header.bootID))
    }

    /// One stream's state, to persist atomically with a batch.
    public func state(sensorID: String, bootID: String) -> StreamState? {
        streams[StreamKey(sensorID: sensorID, bootID: bootID)]
    }

    /// Restores one stream's state (after loading it from the store).
    public mutating func restore(_ state: StreamState, sensorID: String, bootID: String) {
        streams[StreamKey(sensorID: sensorID, bootID: bootID)] = state
    }

    /// Forgets a sensor's earlier boots once a new boot is seen (their batches can no longer arrive).
    public mutating func forgetBoots(of sensorID: String, except bootID: String) {
        streams = streams.filter { $0.key.sensorID != sensorID || $0.key.bootID == bootID }
    }
}
