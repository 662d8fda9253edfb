import Foundation

/// The pure-Swift CPU path's memory. Allocations are 64-byte aligned and pooled.
public final class CPUBackend: Backend {
    public static let shared = CPUBackend()
    public let device = Device.cpu
    public var name: String { "cpu (pure Swift, \(CPUParallel.threadCount) threads)" }

    private let lock = NSLock()
    private var pool = BufferPool<UnsafeMutableRawPointer>()
    private var liveBytes = 0
    private var peak = 0
    private let tally = CounterTally()
    /// The profile being gathered (Profiler.swift); nil while profiling is off.
    private var recorder: ProfileRecorder?
    private var activeRecorder: ProfileRecorder? { lock.lock(); defer { lock.unlock() }; return recorder }

    public func allocate(byteCount: Int) throws -> Storage {
        let size = BufferPool<UnsafeMutableRawPointer>.sizeClass(byteCount)
        lock.lock()
        let reused = pool.take(byteCount)
        if reused == nil { pool.counted(); tally.newBuffer() }
        liveBytes += size
        peak = max(peak, liveBytes + pool.pooledBytes)
        lock.unlock()
        let p = reused ?? Self.newBuffer(size)
        return Storage(buffer: .host(p), byteCount: byteCount, backend: self)
    }

    /// A new host buffer. One of 4 MiB or more asks the kernel for transparent huge pages
    /// (where THP is "madvise", as on Debian): a GEMM that packs A or B rows lying far apart
    /// (the LM head's weight gradient reads rows 196 KB apart) touches one TLB entry per 2 MiB
    /// instead of one per 4 KiB, and first touch maps 512 times fewer pages.
    static func newBuffer(_ size: Int) -> UnsafeMutableRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        #if os(Linux)
        if hugePages, size >= 4 << 20 {
            let page = 4096, start = (Int(bitPattern: p) + page - 1) / page * page
            let end = (Int(bitPattern: p) + size) / page * page
            if end > start, let q = UnsafeMutableRawPointer(bitPattern: start) { _ = madvise(q, end - start, MADV_HUGEPAGE) }
        }
        #endif
        return p
    }
    static let hugePages = ProcessInfo.processInfo.environment["ITUNE_HUGEPAGES"] != "0"

    public func recycle(_ buffer: RawBuffer, byteCount: Int) {
        guard case let .host(p) = buffer else { return }
        lock.lock()
        liveBytes -= BufferPool<UnsafeMutableRawPointer>.sizeClass(byteCount)
        pool.put(p, byteCount)
        lock.unlock()
    }

    public func write(_ storage: Storage, from source: UnsafeRawPointer, byteCount: Int) throws {
        activeRecorder?.hostWork()
        storage.host.copyMemory(from: source, byteCount: byteCount)
        tally.uploaded(byteCount)
    }

    public func read(_ storage: Storage, into destination: UnsafeMutableRawPointer, byteCount: Int) throws {
        activeRecorder?.hostWork()
        destination.copyMemory(from: storage.host, byteCount: byteCount)
        tally.downloaded(byteCount)
    }

    public func fillZero(_ storage: Storage, byteCount: Int) throws {
        launched("fill_buffer")
        memset(storage.host, 0, byteCount)
    }

    public func fill(_ storage: Storage, value: Float, byteCount: Int) throws {
        launched("fill_buffer")
        storage.host.assumingMemoryBound(to: Float.self).update(repeating: value, count: byteCount / 4)
    }

    public func copy(from source: Storage, at sourceOffset: Int, to destination: Storage, at destinationOffset: Int,
                     byteCount: Int) throws {
        launched("copy_buffer")
        (destination.host + destinationOffset).copyMemory(from: source.host + sourceOffset, byteCount: byteCount)
    }

    public func synchronize() throws {}

    public func releaseCachedBuffers() {
        lock.lock()
        let all = pool.drain()
        lock.unlock()
        for p in all { p.deallocate() }
    }

    public var bytesInUse: Int { lock.lock(); defer { lock.unlock() }; return liveBytes + pool.pooledBytes }
    public var peakBytesInUse: Int { lock.lock(); defer { lock.unlock() }; return peak }
    public func resetPeak() { lock.lock(); peak = liveBytes + pool.pooledBytes; lock.unlock() }
    public var allocationCount: Int { lock.lock(); defer { lock.unlock() }; return pool.allocations }
    public var counters: DeviceCounters { tally.snapshot }
    public func resetCounters() { tally.reset() }

    /// An op (or fill, copy) starts on the host: counted as a launch, and timed when profiling,
    /// under `detail()` where given (a matmul's shape: the profile's row per shape).
    func launched(_ op: String, profiledAs detail: (() -> String)? = nil) {
        tally.launched(op)
        guard let recorder = activeRecorder else { return }
        recorder.opBegan(detail?() ?? op)
    }

    public func startProfiling() throws {
        lock.lock(); recorder = ProfileRecorder(); lock.unlock()
    }

    public func stopProfiling() throws -> OpProfile? {
        lock.lock(); let r = recorder; recorder = nil; lock.unlock()
        r?.hostWork()
        return r?.profile(device: name, clock: .host)
    }
}
