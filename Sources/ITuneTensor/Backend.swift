import COpenCL

/// A raw device allocation: host memory for the CPU path, a `cl_mem` for OpenCL.
public enum RawBuffer {
    case host(UnsafeMutableRawPointer)
    case opencl(cl_mem)
}

/// Memory behind one or more tensors (reshapes share it). Returned to its backend's pool on
/// release, so that the steady state of a training step does not allocate.
public final class Storage {
    public let buffer: RawBuffer
    public let byteCount: Int
    public let backend: any Backend

    init(buffer: RawBuffer, byteCount: Int, backend: any Backend) {
        self.buffer = buffer
        self.byteCount = byteCount
        self.backend = backend
    }

    deinit { backend.recycle(buffer, byteCount: byteCount) }

    /// Host pointer (CPU storage only).
    @inline(__always) var host: UnsafeMutableRawPointer {
        guard case let .host(p) = buffer else { fatalError("host pointer of non-host storage") }
        return p
    }

    /// OpenCL buffer (OpenCL storage only).
    @inline(__always) var mem: cl_mem {
        guard case let .opencl(m) = buffer else { fatalError("cl_mem of host storage") }
        return m
    }
}

/// Memory management of one device. The ops themselves live in `Ops/`, one file per op, each
/// with its CPU and OpenCL forward and backward side by side.
public protocol Backend: AnyObject {
    var device: Device { get }
    /// A human-readable name, e.g. "cpu (2 cores)" or the OpenCL device name.
    var name: String { get }
    func allocate(byteCount: Int) throws -> Storage
    func recycle(_ buffer: RawBuffer, byteCount: Int)
    /// Copies byteCount host bytes into storage. `source` may be reused as soon as this returns;
    /// the device need not have run the copy yet (OpenCL stages small writes and enqueues them
    /// without blocking; the queue is in order, so later ops and reads see the bytes).
    func write(_ storage: Storage, from source: UnsafeRawPointer, byteCount: Int) throws
    func read(_ storage: Storage, into destination: UnsafeMutableRawPointer, byteCount: Int) throws
    func fillZero(_ storage: Storage, byteCount: Int) throws
    /// Sets byteCount / 4 floats to `value` on the device (a fill, not an upload).
    func fill(_ storage: Storage, value: Float, byteCount: Int) throws
    /// Copies byteCount bytes from source at sourceOffset to destination at destinationOffset.
    func copy(from source: Storage, at sourceOffset: Int, to destination: Storage, at destinationOffset: Int,
              byteCount: Int) throws
    /// Waits for all queued work.
    func synchronize() throws
    /// Frees pooled buffers that no tensor uses.
    func releaseCachedBuffers()
    /// Bytes in live tensors and in the pool.
    var bytesInUse: Int { get }
    var peakBytesInUse: Int { get }
    /// Starts a new peak measurement at the current use.
    func resetPeak()
    /// Buffers allocated from the system so far (not served by the pool): flat in a steady state.
    var allocationCount: Int { get }
    /// Blocking syncs, bytes moved, kernel launches and new buffers since the last
    /// `resetCounters()` (a value: take one before and one after, and subtract with `since`).
    var counters: DeviceCounters { get }
    /// Starts the counters from zero.
    func resetCounters()
    /// Starts timing every launch, per kernel or op (see Profiler.swift); a second call starts
    /// a fresh profile. Costs nothing until called.
    func startProfiling() throws
    /// Waits for the device, stops timing and returns the profile (nil when none was started).
    func stopProfiling() throws -> OpProfile?
}

extension Backend {
    public func copy(from source: Storage, to destination: Storage, byteCount: Int) throws {
        try copy(from: source, at: 0, to: destination, at: 0, byteCount: byteCount)
    }
}

/// A free list keyed by size class. Training steps repeat the same shapes, so after the first
/// step every request is served from here; rows of varying length (a padded batch is as long as
/// its longest row) give sizes that differ a little from step to step, so requests are rounded
/// up to a size class (at most 12.5% over, 3.1% from 1 MiB on) and a buffer freed by
/// one step serves the next step's slightly different request instead of a new allocation.
struct BufferPool<Buffer> {
    private var free: [Int: [Buffer]] = [:]
    private(set) var pooledBytes = 0
    /// Buffers made because the pool had none of the class (the first step's, and growth).
    private(set) var allocations = 0

    /// The size class of a request: what a new buffer is allocated with, and the key it is
    /// pooled under. 256-byte granules up to 2 KiB, then eighths of the enclosing power of two,
    /// and from 1 MiB on thirty-seconds (≤ 3.1% over: weights are allocated this way too).
    static func sizeClass(_ byteCount: Int) -> Int {
        let n = max(byteCount, 4)
        if n <= 2048 { return (n + 255) / 256 * 256 }
        let top = Int.bitWidth - 1 - (n - 1).leadingZeroBitCount  // 2^top < n ≤ 2^(top+1)
        let step = 1 << (n > 1 << 20 ? top - 5 : top - 3)  // eighths (thirty-seconds) of 2^top
        return (n + step - 1) / step * step
    }

    /// A pooled buffer of `byteCount`'s size class, or nil (the caller allocates
    /// `sizeClass(byteCount)` bytes and calls `counted()`).
    mutating func take(_ byteCount: Int) -> Buffer? {
        let size = Self.sizeClass(byteCount)
        guard var list = free[size], let b = list.popLast() else { return nil }
        free[size] = list
        pooledBytes -= size
        return b
    }

    mutating func put(_ b: Buffer, _ byteCount: Int) {
        let size = Self.sizeClass(byteCount)
        free[size, default: []].append(b)
        pooledBytes += size
    }

    /// Counts a buffer the caller had to make.
    mutating func counted() { allocations += 1 }

    mutating func drain() -> [Buffer] {
        let all = free.values.flatMap { $0 }
        free.removeAll()
        pooledBytes = 0
        return all
    }
}
