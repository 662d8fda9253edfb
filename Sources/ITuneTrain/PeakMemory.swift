import Foundation
import ITuneTensor

/// Peak memory of a run: the process's maximum resident set (what the operating system
/// charged, libraries and allocator caches included) and the backend's peak bytes in tensors
/// (live tensors plus its buffer pool). The gap between the two is memory outside tensors.
public struct PeakMemory: Sendable, Equatable, CustomStringConvertible {
    /// getrusage's ru_maxrss, in bytes; 0 where unavailable.
    public var residentBytes = 0
    /// `Backend.peakBytesInUse` of the run's device; 0 where unavailable.
    public var tensorBytes = 0

    public init(residentBytes: Int = 0, tensorBytes: Int = 0) {
        self.residentBytes = residentBytes
        self.tensorBytes = tensorBytes
    }

    /// Measures now: the process's peak so far and `device`'s backend peak.
    public static func measure(_ device: Device) -> PeakMemory {
        var usage = rusage()
        var resident = 0
        #if os(Linux)
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 { resident = Int(usage.ru_maxrss) * 1024 }  // kilobytes on Linux
        #else
        if getrusage(RUSAGE_SELF, &usage) == 0 { resident = Int(usage.ru_maxrss) }  // bytes on Darwin
        #endif
        let tensors = (try? device.backend().peakBytesInUse) ?? 0
        return PeakMemory(residentBytes: resident, tensorBytes: tensors)
    }

    public var description: String {
        String(format: "peak memory: %.1f MB resident (process max RSS), %.1f MB in tensors (backend peak)",
               Double(residentBytes) / 1e6, Double(tensorBytes) / 1e6)
    }
}
