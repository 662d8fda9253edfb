import CGemmKernels
import Foundation

// The machine's own limits, measured rather than looked up: the f32 multiply-add throughput
// of all cores with the widest vectors the CPU runs (a C kernel's, else this build's Swift
// vectors), and the memory bandwidth. A GEMM's or a training step's figure divided by these
// means the same on every CPU, where tokens/s or GFLOP/s alone depend on the machine under the
// run.

/// What `MachinePeak.measure` found.
public struct MachinePeak: Sendable, Codable {
    /// f32 FLOP/s of all threads (a fused multiply-add counts 2), in GFLOP/s.
    public var gflops: Double
    /// Streaming read bandwidth of all threads, GB/s.
    public var readGBs: Double
    /// Copy bandwidth (bytes read + bytes written), GB/s.
    public var copyGBs: Double
    public var threads: Int
    /// The vector width and FMA of this build, e.g. "8-wide SIMD, FMA".
    public var vector: String

    /// Measures for about `seconds` in all (best of several repetitions of each kernel).
    public static func measure(seconds: Double = 2) -> MachinePeak {
        let threads = CPUParallel.threadCount
        let flops = best(seconds: seconds * 0.4) { fmaBurst(threads: threads) }
        let bytes = 128 << 20  // several times any last-level cache of today
        let floats = bytes / 4
        let a = UnsafeMutablePointer<Float>.allocate(capacity: floats)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: floats)
        defer { a.deallocate(); b.deallocate() }
        CPUParallel.forEach(floats, grain: 1 << 16) { r in
            for i in r { a[i] = Float(i & 1023); b[i] = 0 }
        }
        let read = best(seconds: seconds * 0.3) { readBurst(a, floats) }
        let copy = best(seconds: seconds * 0.3) { copyBurst(from: a, to: b, floats) }
        return MachinePeak(gflops: flops, readGBs: read, copyGBs: copy, threads: threads,
                           vector: peakVectorDescription)
    }

    /// The vectors the FMA probe uses: the widest the CPU runs (peakKind).
    static var peakVectorDescription: String {
        switch peakKind {
        case .avx512: return "16-wide AVX-512 FMA"
        case .avx2: return "8-wide AVX2 FMA"
        case .neon: return "4-wide NEON FMA"
        case .swift:
#if ITUNE_AVX512 || ITUNE_FMA || arch(arm64)
            return "\(GemmVector.scalarCount)-wide SIMD, FMA"
#else
            return "\(GemmVector.scalarCount)-wide SIMD, no FMA"
#endif
        }
    }

    /// The widest FMA the CPU runs (the automatic kernel choice), whichever GEMM kernel this
    /// process uses (ITUNE_GEMM_KERNEL may force a narrower one): the peak is the machine's.
    static var peakKind: GemmKernelKind { GemmConfig.bestKind }

    /// The highest rate of `burst` (which returns its own rate) over repetitions for `seconds`.
    static func best(seconds: Double, _ burst: () -> Double) -> Double {
        var top = burst()  // warm-up counts too: the best is kept
        let start = Date()
        while Date().timeIntervalSince(start) < seconds { top = Swift.max(top, burst()) }
        return top
    }

    /// Every thread runs independent multiply-add chains on registers (the GEMM micro-kernel's
    /// count: 12 of 8 lanes, 24 of 16; enough to hide the latency on two FMA pipes). GFLOP/s.
    /// Threads of its own, not the Dispatch pool: a pool busy or parked after other work can
    /// run the bursts one after another and halve the figure.
    static func fmaBurst(threads: Int) -> Double {
        let iterations = 1 << 22  // ~10 ms per thread: start-up latency is noise
        let kind = peakKind
        nonisolated(unsafe) let sink = UnsafeMutablePointer<Float>.allocate(capacity: threads)
        defer { sink.deallocate() }
        let ready = DispatchSemaphore(value: 0), go = DispatchSemaphore(value: 0), done = DispatchGroup()
        for t in 0..<threads {
            done.enter()
            let thread = Thread {
                ready.signal()
                go.wait()
                switch kind {
                case .avx512: sink[t] = itune_fma_burst_avx512(iterations / 2, Float(t))
                case .avx2: sink[t] = itune_fma_burst_avx2(iterations, Float(t))
                case .neon: sink[t] = itune_fma_burst_neon(iterations / 2, Float(t))
                case .swift: sink[t] = fmaChains(iterations: iterations, seed: Float(t))
                }
                done.leave()
            }
            thread.start()
        }
        for _ in 0..<threads { ready.wait() }
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<threads { go.signal() }
        done.wait()
        let ns = Double(DispatchTime.now().uptimeNanoseconds - start)
        let perStep: Double
        switch kind {
        case .avx512: perStep = 16 * 24 / 2  // half the iterations of 24 chains
        case .avx2: perStep = 8 * 12
        case .neon: perStep = 4 * 24 / 2  // half the iterations of 24 chains
        case .swift: perStep = Double(GemmVector.scalarCount) * 12
        }
        let flop = 2.0 * perStep * Double(iterations) * Double(threads)
        return sink[0].isNaN ? 0 : flop / ns
    }

    @inline(never)
    static func fmaChains(iterations: Int, seed: Float) -> Float {
        let x = GemmVector(repeating: 0.999_999), y = GemmVector(repeating: 1e-7)
        var a0 = GemmVector(repeating: seed), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5
        var a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11
        for _ in 0..<iterations {
            a0 = gemmMultiplyAdd(y, a0, x); a1 = gemmMultiplyAdd(y, a1, x); a2 = gemmMultiplyAdd(y, a2, x)
            a3 = gemmMultiplyAdd(y, a3, x); a4 = gemmMultiplyAdd(y, a4, x); a5 = gemmMultiplyAdd(y, a5, x)
            a6 = gemmMultiplyAdd(y, a6, x); a7 = gemmMultiplyAdd(y, a7, x); a8 = gemmMultiplyAdd(y, a8, x)
            a9 = gemmMultiplyAdd(y, a9, x); a10 = gemmMultiplyAdd(y, a10, x); a11 = gemmMultiplyAdd(y, a11, x)
        }
        let s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11))
        return s.sum()
    }

    /// Sums the buffer on all threads. GB/s read.
    static func readBurst(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        var partial = [Float](repeating: 0, count: CPUParallel.threadCount)
        partial.withUnsafeMutableBufferPointer { out in
            let per = n / out.count
            DispatchQueue.concurrentPerform(iterations: out.count) { t in
                out[t] = sumVectors(p + t * per, per)
            }
        }
        let ns = Double(DispatchTime.now().uptimeNanoseconds - start)
        return partial[0].isNaN ? 0 : Double(n * 4) / ns
    }

    @inline(never)
    static func sumVectors(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
        let w = GemmVector.scalarCount
        var s0 = GemmVector(), s1 = GemmVector(), s2 = GemmVector(), s3 = GemmVector()
        let raw = UnsafeRawPointer(p)
        var i = 0
        while i + 4 * w <= n {
            s0 += raw.loadUnaligned(fromByteOffset: i * 4, as: GemmVector.self)
            s1 += raw.loadUnaligned(fromByteOffset: (i + w) * 4, as: GemmVector.self)
            s2 += raw.loadUnaligned(fromByteOffset: (i + 2 * w) * 4, as: GemmVector.self)
            s3 += raw.loadUnaligned(fromByteOffset: (i + 3 * w) * 4, as: GemmVector.self)
            i += 4 * w
        }
        return ((s0 + s1) + (s2 + s3)).sum()
    }

    /// Copies the buffer on all threads. GB/s moved (read + written).
    static func copyBurst(from a: UnsafeMutablePointer<Float>, to b: UnsafeMutablePointer<Float>, _ n: Int) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        CPUParallel.forEach(n, grain: 1 << 16) { r in
            (b + r.lowerBound).update(from: a + r.lowerBound, count: r.count)
        }
        let ns = Double(DispatchTime.now().uptimeNanoseconds - start)
        return b[n - 1].isNaN ? 0 : Double(2 * n * 4) / ns
    }
}
