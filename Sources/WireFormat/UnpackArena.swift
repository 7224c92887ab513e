internal import CProtobufC

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bump `ProtobufCAllocator` for `protobuf_c_message_unpack`: protobuf-c's many small allocations (one per
/// message, string and repeated field) become pointer bumps in a few large chunks, its frees do nothing, and
/// everything is released at once by `reset()` or when the arena goes away. The Swift values are copied out of
/// the C message before either happens.
struct UnpackArena: ~Copyable {
    /// The bump state, kept in C memory so the callbacks need no Swift retain or release.
    /// Each chunk starts with a pointer to the previous chunk.
    private struct State {
        var cursor: UnsafeMutableRawPointer
        var remaining: Int
        var head: UnsafeMutableRawPointer
        var chunkSize: Int
        let first: UnsafeMutableRawPointer
        let firstSize: Int
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

    private let state: UnsafeMutablePointer<State>
    /// The allocator to pass to protobuf-c; valid while the arena lives.
    let allocator: UnsafeMutablePointer<ProtobufCAllocator>

    /// `chunkSize`: the first chunk, kept across resets; later chunks are at least as large.
    init(chunkSize: Int) {
        let size = min(max(4096, chunkSize), 64 << 20)
        let first = malloc(size)!
        first.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
        state = .allocate(capacity: 1)
        state.initialize(
            to: State(
                cursor: first + Self.header, remaining: size - Self.header, head: first, chunkSize: size,
                first: first, firstSize: size))
        allocator = .allocate(capacity: 1)
        allocator.initialize(
            to: ProtobufCAllocator(alloc: Self.alloc, free: Self.release, allocator_data: UnsafeMutableRawPointer(state)))
    }

    deinit {
        freeChunks(keepingFirst: false)
        state.deallocate()
        allocator.deallocate()
    }

    /// Forgets everything unpacked so far; the first chunk is kept (and stays in cache) for the next message.
    mutating func reset() {
        if state.pointee.head != state.pointee.first { freeChunks(keepingFirst: true) }
        state.pointee.head = state.pointee.first
        state.pointee.cursor = state.pointee.first + Self.header
        state.pointee.remaining = state.pointee.firstSize - Self.header
    }

    private func freeChunks(keepingFirst: Bool) {
        var chunk: UnsafeMutableRawPointer? = state.pointee.head
        while let current = chunk {
            chunk = current.load(as: UnsafeMutableRawPointer?.self)
            if keepingFirst && current == state.pointee.first { break }
            free(current)
        }
    }

    /// Runs `body` with an allocator whose memory lives until `body` returns. `inputBytes` sizes the first chunk
    /// (unpacked messages take a few times their encoded size).
    @inline(__always)
    static func with<R, E: Error>(
        inputBytes: Int, _ body: (UnsafeMutablePointer<ProtobufCAllocator>) throws(E) -> R
    ) throws(E) -> R {
        var arena = UnpackArena(chunkSize: inputBytes * 6 + 1024)
        defer { arena.reset() }  // a use at the end keeps the arena alive until `body` is done with it
        return try body(arena.allocator)
    }
}
