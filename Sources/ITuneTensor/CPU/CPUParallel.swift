import CGemmKernels
import Foundation

/// Splits work over all cores: the calling thread and CPUParallel.threadCount − 1 workers of
/// CGemmKernels' pool (pool.c), which stay awake for `spinMicroseconds` after each call.
public enum CPUParallel {
    /// Worker count: `ITUNE_NUM_THREADS` if set, else the active processor count.
    public static let threadCount: Int = {
        if let s = ProcessInfo.processInfo.environment["ITUNE_NUM_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// How long an idle worker spins before it parks: `ITUNE_SPIN_US` if set (0: park at once),
    /// else 300 µs, longer than the gaps between the ops of a step or of decoding a token.
    /// Parked, a worker is woken by the OS; on a 2-vCPU VM that cost 45–60 µs a call
    /// (pool.c). Spinning costs an otherwise idle core for that long after the last call.
    public static let spinMicroseconds: Int = {
        if let s = ProcessInfo.processInfo.environment["ITUNE_SPIN_US"], let n = Int(s), n >= 0 { return n }
        return 300
    }()

    /// body(i) for every i in 0..<iterations, in parallel on the pool; on Dispatch's threads
    /// when the pool is in use (a call from inside a body, or from another thread). Which
    /// thread runs an item is not fixed, so a body must depend on its index only.
    public static func run(_ iterations: Int, _ body: (Int) -> Void) {
        if iterations <= 0 { return }
        if iterations == 1 || threadCount < 2 {
            for i in 0..<iterations { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var call = body
            let ran = withUnsafeMutablePointer(to: &call) { ctx in
                itune_pool_run(iterations, { ctx, i in
                    ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(i)
                }, ctx, Int32(threadCount), spinMicroseconds * 1000)
            }
            if ran == 0 { DispatchQueue.concurrentPerform(iterations: iterations, execute: body) }
        }
    }

    /// Calls `body` on disjoint ranges covering `0..<count`, in parallel when each range would
    /// still hold at least `grain` items. Ranges are fixed by `count` and the thread count, so
    /// results that depend on the split (none should) are reproducible.
    @inline(__always)
    public static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(threadCount, max(1, count / max(grain, 1)))
        if chunks <= 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        run(chunks) { c in
            let lo = c * per, hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }
}
