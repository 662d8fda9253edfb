import Foundation

/// Splits work over all cores with Dispatch.
public enum CPUParallel {
    /// Worker count: `ITUNE_NUM_THREADS` if set, else the active processor count.
    public static let threadCount: Int = {
        if let s = ProcessInfo.processInfo.environment["ITUNE_NUM_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Calls `body` on disjoint ranges covering `0..<count`, in parallel when each range would
    /// still hold at least `grain` items. Ranges are fixed by `count` and the thread count, so
    /// results that depend on the split (none should) are reproducible.
    @inline(__always)
    public static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(threadCount, max(1, count / max(grain, 1)))
        if chunks <= 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * per, hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }
}
