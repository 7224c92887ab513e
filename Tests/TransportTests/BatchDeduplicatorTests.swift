import Foundation
import Testing

@testable import Transport

@Suite("BatchDeduplicator")
struct BatchDeduplicatorTests {
    @Test("in-order batches advance the contiguous floor")
    func inOrder() {
        var dedup = BatchDeduplicator()
        for sequence in 1...5 as ClosedRange<UInt64> {
            #expect(!dedup.isDuplicate(sensorID: "s", bootID: "b", sequence: sequence))
            do {
                let recorded = dedup.record(sensorID: "s", bootID: "b", sequence: sequence)
                #expect(recorded)
            }
        }
        #expect(dedup.highestContiguous(sensorID: "s", bootID: "b") == 5)
        #expect(dedup.state(sensorID: "s", bootID: "b")?.above.isEmpty == true)
    }

    @Test("out-of-order batches wait above a gap, then fill it")
    func outOfOrder() {
        var dedup = BatchDeduplicator()
        for sequence: UInt64 in [1, 3, 5, 4] { dedup.record(sensorID: "s", bootID: "b", sequence: sequence) }
        #expect(dedup.highestContiguous(sensorID: "s", bootID: "b") == 1)
        #expect(dedup.state(sensorID: "s", bootID: "b")?.above == [3, 4, 5])
        #expect(dedup.isDuplicate(sensorID: "s", bootID: "b", sequence: 4))
        #expect(!dedup.isDuplicate(sensorID: "s", bootID: "b", sequence: 2))
        dedup.record(sensorID: "s", bootID: "b", sequence: 2)
        #expect(dedup.highestContiguous(sensorID: "s", bootID: "b") == 5)
        #expect(dedup.state(sensorID: "s", bootID: "b")?.above.isEmpty == true)
        let header = BatchHeader(sensorID: "s", bootID: "b", sequence: 2, eventCount: 0)
        #expect(dedup.ack(for: header).highestContiguousSequence == 5)
        #expect(dedup.ack(for: header).bootID == "b")
    }

    @Test("duplicates are recognised and not recorded twice")
    func duplicates() {
        var dedup = BatchDeduplicator()
        do {
            let recorded = dedup.record(sensorID: "s", bootID: "b", sequence: 1)
            #expect(recorded)
        }
        do {
            let recorded = dedup.record(sensorID: "s", bootID: "b", sequence: 1)
            #expect(!recorded)
        }
        do {
            let recorded = dedup.record(sensorID: "s", bootID: "b", sequence: 7)
            #expect(recorded)
        }
        do {
            let recorded = dedup.record(sensorID: "s", bootID: "b", sequence: 7)
            #expect(!recorded)
        }
        do {
            let recorded = dedup.record(sensorID: "s", bootID: "b", sequence: 0)
            #expect(!recorded)
        }
        #expect(dedup.isDuplicate(sensorID: "s", bootID: "b", sequence: 1))
        #expect(dedup.isDuplicate(sensorID: "s", bootID: "b", sequence: 7))
    }

    @Test("streams are separate per sensor and per boot")
    func streams() {
        var dedup = BatchDeduplicator()
        dedup.record(sensorID: "a", bootID: "1", sequence: 1)
        #expect(!dedup.isDuplicate(sensorID: "a", bootID: "2", sequence: 1))
        #expect(!dedup.isDuplicate(sensorID: "b", bootID: "1", sequence: 1))
        dedup.record(sensorID: "a", bootID: "2", sequence: 1)
        dedup.forgetBoots(of: "a", except: "2")
        #expect(dedup.streams.count == 1)
        #expect(dedup.highestContiguous(sensorID: "a", bootID: "2") == 1)
    }

    @Test("a gap that never fills is skipped past once too much waits above it, and counted")
    func gapSkipping() {
        var dedup = BatchDeduplicator(maxOutOfOrder: 3)
        dedup.record(sensorID: "s", bootID: "b", sequence: 1)
        for sequence: UInt64 in [4, 5, 6, 7] { dedup.record(sensorID: "s", bootID: "b", sequence: sequence) }
        #expect(dedup.highestContiguous(sensorID: "s", bootID: "b") == 7)
        #expect(dedup.state(sensorID: "s", bootID: "b")?.skippedSequences == 2)
        #expect(dedup.isDuplicate(sensorID: "s", bootID: "b", sequence: 2))
    }

    @Test("restart from exported state (JSON) and from one stream's state")
    func exportImport() throws {
        var dedup = BatchDeduplicator()
        for sequence: UInt64 in [1, 2, 3, 6, 9] { dedup.record(sensorID: "s", bootID: "b", sequence: sequence) }
        dedup.record(sensorID: "t", bootID: "x", sequence: 1)
        let data = try JSONEncoder().encode(dedup)
        var restored = try JSONDecoder().decode(BatchDeduplicator.self, from: data)
        #expect(restored == dedup)
        #expect(restored.isDuplicate(sensorID: "s", bootID: "b", sequence: 6))
        #expect(!restored.isDuplicate(sensorID: "s", bootID: "b", sequence: 4))
        restored.record(sensorID: "s", bootID: "b", sequence: 4)
        restored.record(sensorID: "s", bootID: "b", sequence: 5)
        #expect(restored.highestContiguous(sensorID: "s", bootID: "b") == 6)

        var fresh = BatchDeduplicator()
        let stream = try #require(dedup.state(sensorID: "s", bootID: "b"))
        fresh.restore(stream, sensorID: "s", bootID: "b")
        #expect(fresh.isDuplicate(sensorID: "s", bootID: "b", sequence: 9))
        #expect(fresh.highestContiguous(sensorID: "s", bootID: "b") == 3)
    }
}
