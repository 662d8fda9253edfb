import Foundation
import XCTest
@testable import ITuneTensor

/// CPUParallel.run on CGemmKernels' pool (pool.c): every index runs exactly once, call after call
/// (a worker that wakes late must not run an item of the next call, nor miss one), and calls
/// the pool cannot take (from inside an item, or from a second thread at the same time) still
/// run every index.
final class CPUParallelTests: XCTestCase {
    /// Counts of each index over `calls` calls of `n` items, run as `run` runs them.
    private func counts(n: Int, calls: Int, spinEvery: Int = 0) -> [Int] {
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(n, 1))
        hits.initialize(repeating: 0, count: max(n, 1))
        defer { hits.deallocate() }
        let lock = NSLock()
        for c in 0..<calls {
            CPUParallel.run(n) { i in
                // Uneven items, so that threads race for the next one.
                if spinEvery > 0 && (i + c) % spinEvery == 0 { usleep(50) }
                lock.lock(); hits[i] += 1; lock.unlock()
            }
        }
        return Array(UnsafeBufferPointer(start: hits, count: n))
    }

    func testEveryIndexRunsOncePerCall() {
        for n in [0, 1, 2, 3, 7, 64] {
            XCTAssertEqual(counts(n: n, calls: 200), [Int](repeating: 200, count: n), "n \(n)")
        }
        // Calls far apart, so that the workers park between them and must be woken.
        for _ in 0..<3 {
            usleep(UInt32(CPUParallel.spinMicroseconds + 2000))
            XCTAssertEqual(counts(n: 5, calls: 1), [1, 1, 1, 1, 1])
        }
        XCTAssertEqual(counts(n: 9, calls: 300, spinEvery: 3), [Int](repeating: 300, count: 9))
    }

    func testManyShortCallsInARowLoseAndRepeatNothing() {
        // 20000 calls of two items: the race between a worker leaving one call and the next call
        // opening, many times over.
        let total = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        total.initialize(repeating: 0, count: 2)
        defer { total.deallocate() }
        let lock = NSLock()
        for _ in 0..<20000 {
            CPUParallel.run(2) { i in lock.lock(); total[i] += 1; lock.unlock() }
        }
        XCTAssertEqual([total[0], total[1]], [20000, 20000])
    }

    func testNestedAndConcurrentCallsRunEveryIndex() {
        // From inside an item: the pool is in use, so the inner call runs on Dispatch's threads.
        let lock = NSLock()
        var inner = [Int](repeating: 0, count: 12)
        CPUParallel.run(3) { i in
            CPUParallel.run(4) { j in lock.lock(); inner[i * 4 + j] += 1; lock.unlock() }
        }
        XCTAssertEqual(inner, [Int](repeating: 1, count: 12))
        // Two threads at once: one gets the pool, the other Dispatch; both complete.
        var sums = [0, 0]
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            var local = [Int](repeating: 0, count: 8)
            for _ in 0..<500 {
                CPUParallel.run(8) { i in lock.lock(); local[i] += 1; lock.unlock() }
            }
            lock.lock(); sums[t] = local.reduce(0, +); lock.unlock()
        }
        XCTAssertEqual(sums, [4000, 4000])
    }

    func testForEachCoversTheRangeInDisjointParts() {
        for count in [1, 2, 5, 1000] {
            var seen = [Int](repeating: 0, count: count)
            let lock = NSLock()
            CPUParallel.forEach(count, grain: 1) { r in lock.lock(); for i in r { seen[i] += 1 }; lock.unlock() }
            XCTAssertEqual(seen, [Int](repeating: 1, count: count), "count \(count)")
        }
    }
}
