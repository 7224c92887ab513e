#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bump allocator for the C message structs and strings of one encode call. Everything is freed at once when
/// the arena goes away, so building a 1000-event batch costs a handful of `malloc`s instead of thousands.
struct Arena: ~Copyable {
    private var chunks: [UnsafeMutableRawPointer] = []
    private var cursor: UnsafeMutableRawPointer
    private var remaining: Int
    private let chunkSize: Int
    /// A shared "" for every empty string field.
    let emptyString: UnsafeMutablePointer<CChar>

    init(capacity: Int) {
        chunkSize = max(4096, capacity)
        cursor = malloc(chunkSize)!
        remaining = chunkSize
        chunks.reserveCapacity(4)
        chunks.append(cursor)
        emptyString = cursor.assumingMemoryBound(to: CChar.self)
        emptyString.pointee = 0
        cursor += 8
        remaining -= 8
    }

    deinit {
        for chunk in chunks { free(chunk) }
    }

    /// `bytes` of raw memory aligned to 8.
    @inline(__always)
    mutating func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        let rounded = (bytes + 7) & ~7
        if rounded > remaining { grow(rounded) }
        let pointer = cursor
        cursor += rounded
        remaining -= rounded
        return pointer
    }

    private mutating func grow(_ atLeast: Int) {
        let size = max(chunkSize, atLeast)
        cursor = malloc(size)!
        remaining = size
        chunks.append(cursor)
    }

    @inline(__always)
    mutating func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        allocate(bytes: MemoryLayout<T>.stride * count).bindMemory(to: T.self, capacity: count)
    }

    /// A NUL-terminated copy of `text`.
    @inline(__always)
    mutating func cString(_ text: String) -> UnsafeMutablePointer<CChar> {
        let count = text.utf8.count
        if count == 0 { return emptyString }
        let raw = allocate(bytes: count + 1)
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { buffer in
            raw.copyMemory(from: buffer.baseAddress!, byteCount: count)
        }
        if copied == nil {
            var offset = 0
            for byte in text.utf8 {
                raw.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self)
                offset += 1
            }
        }
        raw.storeBytes(of: 0, toByteOffset: count, as: UInt8.self)
        return raw.assumingMemoryBound(to: CChar.self)
    }

    /// An array of NUL-terminated copies, or nil when empty.
    mutating func cStrings(_ texts: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        if texts.isEmpty { return nil }
        let array = allocate(UnsafeMutablePointer<CChar>?.self, count: texts.count)
        for (index, text) in texts.enumerated() { array[index] = cString(text) }
        return array
    }

    /// A copy of `values`, or nil when empty.
    mutating func copy<T: BitwiseCopyable>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        if values.isEmpty { return nil }
        let array = allocate(T.self, count: values.count)
        values.withUnsafeBufferPointer { buffer in
            array.initialize(from: buffer.baseAddress!, count: buffer.count)
        }
        return array
    }
}
