internal import CProtobufC

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bump `ProtobufCAllocator` for one `protobuf_c_message_unpack` call: protobuf-c's many small allocations
/// (one per message, string and repeated field) become pointer bumps in a few large chunks, its frees do
/// nothing, and everything is released at once when the decode call ends. Nothing allocated here outlives the
/// call: the Swift values are copied out of the C message before `withUnpackAllocator` returns.
enum UnpackArena {
    /// The bump state, kept in C memory so the callbacks need no Swift retain or release.
    /// Each chunk starts with a pointer to the previous chunk.
    private struct State {
        var cursor: UnsafeMutableRawPointer
        var remaining: Int
        var head: UnsafeMutableRawPointer
        var chunkSize: Int
    }

    private static let header = 16

    private static let alloc: @convention(c) (UnsafeMutableRawPointer?, Int) -> UnsafeMutableRawPointer? = {
        data, size in
        let state = data!.assumingMemoryBound(to: State.self)
        let rounded = (size + 15) & ~15
        if rounded > state.pointee.remaining {
            let chunkSize = max(state.pointee.chunkSize, rounded + header)
            guard let chunk = malloc(chunkSize) else { return nil }
            chunk.storeBytes(of: state.pointee.head, as: UnsafeMutableRawPointer?.self)
            state.pointee.head = chunk
            state.pointee.cursor = chunk + header
            state.pointee.remaining = chunkSize - header
            state.pointee.chunkSize = chunkSize
        }
        let pointer = state.pointee.cursor
        state.pointee.cursor += rounded
        state.pointee.remaining -= rounded
        return pointer
    }

    private static let release: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = {
        _, _ in
    }

    /// Runs `body` with an allocator whose memory lives until `body` returns. `inputBytes` sizes the first chunk
    /// (unpacked messages take a few times their encoded size).
    @inline(__always)
    static func with<R, E: Error>(
        inputBytes: Int, _ body: (UnsafeMutablePointer<ProtobufCAllocator>) throws(E) -> R
    ) throws(E) -> R {
        let chunkSize = min(max(4096, inputBytes * 6 + 1024), 64 << 20)
        let first = malloc(chunkSize)!
        first.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
        var state = State(cursor: first + header, remaining: chunkSize - header, head: first, chunkSize: chunkSize)
        defer {
            var chunk: UnsafeMutableRawPointer? = state.head
            while let current = chunk {
                chunk = current.load(as: UnsafeMutableRawPointer?.self)
                free(current)
            }
        }
        return try withUnsafeMutablePointer(to: &state) { statePointer throws(E) -> R in
            var allocator = ProtobufCAllocator(alloc: alloc, free: release, allocator_data: UnsafeMutableRawPointer(statePointer))
            return try withUnsafeMutablePointer(to: &allocator) { pointer throws(E) -> R in try body(pointer) }
        }
    }
}
