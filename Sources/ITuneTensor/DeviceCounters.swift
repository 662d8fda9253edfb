import Foundation

/// What one device has done since its counters were last reset: the numbers that say whether a
/// training step keeps a GPU busy (see DESIGN.md, "A GPU step is one stream").
///
/// A blocking synchronisation is any call after which the host has waited for the device's
/// queue to drain: a blocking read or write, or `clFinish`. On the CPU path nothing waits, so
/// `blockingSyncs` stays 0 there; bytes count the copies in and out of tensors all the same.
public struct DeviceCounters: Sendable, Equatable {
    /// Blocking reads, blocking writes and queue drains (`clFinish`).
    public var blockingSyncs = 0
    /// Bytes copied from the host into device buffers (blocking or not).
    public var bytesUploaded = 0
    /// Bytes copied from device buffers to the host.
    public var bytesDownloaded = 0
    /// Kernel launches by kernel name (`adamw_update`, `clblast_sgemm`, …).
    public var launches: [String: Int] = [:]
    /// Buffers made from the system, not served by the pool (after warm-up: 0 per step).
    public var newBuffers = 0

    public init() {}

    /// All kernel launches together.
    public var totalLaunches: Int { launches.values.reduce(0, +) }

    /// The work done between `earlier` and self (self taken later on the same device).
    public func since(_ earlier: DeviceCounters) -> DeviceCounters {
        var d = DeviceCounters()
        d.blockingSyncs = blockingSyncs - earlier.blockingSyncs
        d.bytesUploaded = bytesUploaded - earlier.bytesUploaded
        d.bytesDownloaded = bytesDownloaded - earlier.bytesDownloaded
        d.newBuffers = newBuffers - earlier.newBuffers
        for (k, n) in launches {
            let delta = n - (earlier.launches[k] ?? 0)
            if delta != 0 { d.launches[k] = delta }
        }
        return d
    }
}

/// The mutable tally behind a backend's `counters`, guarded by its own lock so that counting
/// never takes the backend's memory lock.
final class CounterTally: @unchecked Sendable {
    private let lock = NSLock()
    private var value = DeviceCounters()

    var snapshot: DeviceCounters { lock.lock(); defer { lock.unlock() }; return value }
    func reset() { lock.lock(); value = DeviceCounters(); lock.unlock() }

    func sync() { lock.lock(); value.blockingSyncs += 1; lock.unlock() }
    func uploaded(_ bytes: Int) { lock.lock(); value.bytesUploaded += bytes; lock.unlock() }
    func downloaded(_ bytes: Int) { lock.lock(); value.bytesDownloaded += bytes; lock.unlock() }
    func newBuffer() { lock.lock(); value.newBuffers += 1; lock.unlock() }
    func launched(_ kernel: String) { lock.lock(); value.launches[kernel, default: 0] += 1; lock.unlock() }
}

/// Host bytes handed to a non-blocking upload, kept alive until the device's in-order queue has
/// consumed them (the backend drops them at its next blocking synchronisation).
final class StagedUpload {
    let bytes: UnsafeMutableRawPointer
    let count: Int

    init(copying source: UnsafeRawPointer, byteCount: Int) {
        count = byteCount
        bytes = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        bytes.copyMemory(from: source, byteCount: byteCount)
    }

    deinit { bytes.deallocate() }
}
