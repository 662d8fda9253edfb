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
    func write(_ storage: Storage, from source: UnsafeRawPointer, byteCount: Int) throws
    func read(_ storage: Storage, into destination: UnsafeMutableRawPointer, byteCount: Int) throws
    func fillZero(_ storage: Storage, byteCount: Int) throws
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
}

extension Backend {
    public func copy(from source: Storage, to destination: Storage, byteCount: Int) throws {
        try copy(from: source, at: 0, to: destination, at: 0, byteCount: byteCount)
    }
}

/// A size-keyed free list. Training steps repeat the same shapes, so after the first step
/// every request is served from here.
struct BufferPool<Buffer> {
    private var free: [Int: [Buffer]] = [:]
    private(set) var pooledBytes = 0

    mutating func take(_ byteCount: Int) -> Buffer? {
        guard var list = free[byteCount], let b = list.popLast() else { return nil }
        free[byteCount] = list
        pooledBytes -= byteCount
        return b
    }

    mutating func put(_ b: Buffer, _ byteCount: Int) {
        free[byteCount, default: []].append(b)
        pooledBytes += byteCount
    }

    mutating func drain() -> [Buffer] {
        let all = free.values.flatMap { $0 }
        free.removeAll()
        pooledBytes = 0
        return all
    }
}
