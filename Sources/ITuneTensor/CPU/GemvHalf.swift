import CGemmKernels
import Foundation

// The few-row product with a 16-bit weight (bf16 or f16, as the checkpoint stores it): decoding
// token by token, and the KV-cached step of a small batch. Such a product is bound by reading
// the weight, so the weight is read once, in its 16-bit form (half the bytes of f32), and
// widened in registers:
//
//   the outputs (N, the weight's rows) split over the workers, each a contiguous range of rows;
//   for each group of R weight rows (R·M accumulators: as many as the registers hold)
//     for k in vectors of 8: convert 8 values of each of the R rows, multiply-add with the M
//                            rows of A (which stay in L1, K-blocked when M·K is large)
//
// CGemmKernels' 16-lane kernel where the GEMM runs its AVX-512 kernel, its 8-lane kernel where
// the CPU has AVX2 + FMA (+ F16C for f16); elsewhere the same loop in Swift, converting 4 rows of
// a block at a time into an L1 buffer (Gemv16.Kernel).

/// Limits of the GEMV path.
enum Gemv16 {
    /// Up to this many rows of op(A) go through the GEMV: each weight element is used M times,
    /// so up to here the product stays bound by reading the weight.
    static let maxRows = 8
    /// Weights below this many elements (N·K) are read on the calling thread: a dispatch costs
    /// more than reading 64K elements (128 KiB) on one core.
    static let parallelElements = 1 << 16

    /// The loop that runs the product.
    enum Kernel: CaseIterable {
        /// The Swift loop (any CPU).
        case swift
        /// CGemmKernels' 8-lane kernel (AVX2 + FMA, F16C for f16).
        case avx2
        /// CGemmKernels' 16-lane kernel (AVX-512F): where the AVX-512 GEMM kernel is in use.
        case avx512

        /// Whether this CPU runs it for `format`.
        func runs(_ format: DType) -> Bool {
            switch self {
            case .swift: return true
            case .avx2: return W16Conversion.native(format)
            case .avx512: return GemmKernelKind.avx512.isSupported
            }
        }

        /// The automatic choice: the 16-lane kernel where the GEMM runs its AVX-512 kernel
        /// (ITUNE_GEMM_KERNEL=avx2 keeps the 8-lane one), else the 8-lane where the CPU has it.
        static func chosen(_ format: DType) -> Kernel {
            if GemmConfig.current.kind == .avx512 { return .avx512 }
            if GemmConfig.current.kind != .swift && avx2.runs(format) { return .avx2 }
            return .swift
        }
    }
}

/// C (M,N) = alpha · op(A) (M,K) · Bᵀ + beta · C for M ≤ Gemv16.maxRows, with B stored (N,K)
/// as 16-bit values of `format` and row stride ldb (a linear layer's weight). beta = 0: C is
/// not read. `workers` caps the threads; `kernel` picks the loop (tests; default Kernel.chosen).
func cpuGemv16(transA: Bool, M: Int, N: Int, K: Int, alpha: Float, A: UnsafePointer<Float>, lda: Int,
               B: UnsafePointer<UInt16>, format: DType, ldb: Int, beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int,
               workers maxWorkers: Int? = nil, kernel: Gemv16.Kernel? = nil) {
    precondition(M <= Gemv16.maxRows && format.isHalfFloat, "cpuGemv16: \(M) rows of \(format)")
    if M <= 0 || N <= 0 { return }
    if K <= 0 || alpha == 0 {
        var dummy: Float = 0
        cpuSgemm(transA: transA, transB: false, M: M, N: N, K: 0, alpha: alpha, A: A, lda: lda, B: &dummy, ldb: 1,
                 beta: beta, C: C, ldc: ldc)
        return
    }
    // Rows of op(A) must be contiguous: gather them when A is transposed.
    let ws = GemmWorkspace.take(sharedFloats: transA ? M * K : 0, perWorkerFloats: 0, workers: 1)
    defer { GemmWorkspace.give(ws) }
    var rowsA = A, strideA = lda
    if transA {
        for k in 0..<K { for i in 0..<M { ws.shared[i * K + k] = A[k * lda + i] } }
        rowsA = UnsafePointer(ws.shared)
        strideA = K
    }
    let a = rowsA, sa = strideA
    let workers = N * K < Gemv16.parallelElements ? 1 : min(maxWorkers ?? CPUParallel.threadCount, CPUParallel.threadCount)
    let loop = kernel.map { $0.runs(format) ? $0 : .swift } ?? Gemv16.Kernel.chosen(format)
    let code = Int32(W16Conversion.code(format))
    // Ranges of whole groups of 8 rows, so that no worker's range ends in a short group.
    parallelRanges((N + 7) / 8, workers: workers) { _, groups in
        let j0 = groups.lowerBound * 8, j1 = min(N, groups.upperBound * 8)
        if j0 >= j1 { return }
        switch loop {
        case .avx512:
            itune_gemv16_avx512(code, M, j1 - j0, K, alpha, a, sa, B + j0 * ldb, ldb, beta, C + j0, ldc)
        case .avx2:
            itune_gemv16_avx2(code, M, j1 - j0, K, alpha, a, sa, B + j0 * ldb, ldb, beta, C + j0, ldc)
        case .swift:
            gemv16Portable(M: M, rows: j0..<j1, K: K, alpha: alpha, A: a, lda: sa, B: B, format: format, ldb: ldb,
                           beta: beta, C: C, ldc: ldc)
        }
    }
}

/// The Swift loop: 4 weight rows at a time, converted a block of K at a time into an L1 buffer
/// and dotted with every row of A (Gemm's dotRows4).
private func gemv16Portable(M: Int, rows: Range<Int>, K: Int, alpha: Float, A: UnsafePointer<Float>, lda: Int,
                            B: UnsafePointer<UInt16>, format: DType, ldb: Int, beta: Float,
                            C: UnsafeMutablePointer<Float>, ldc: Int) {
    let kBlock = min(K, 1024)
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * kBlock) { buffer in
        withUnsafeTemporaryAllocation(of: SIMD4<Float>.self, capacity: Gemv16.maxRows) { sums in
            let rowsF32 = buffer.baseAddress!
            var j0 = rows.lowerBound
            while j0 < rows.upperBound {
                let width = min(4, rows.upperBound - j0)
                for i in 0..<M { sums[i] = .zero }
                var k0 = 0
                while k0 < K {
                    let kc = min(kBlock, K - k0)
                    for r in 0..<width {
                        convertW16Portable(B + (j0 + r) * ldb + k0, count: kc, format: format, into: rowsF32 + r * kBlock)
                    }
                    for i in 0..<M {
                        sums[i] += dotRows4(A + i * lda + k0, rowsF32, kBlock, width, kc)
                    }
                    k0 += kc
                }
                for i in 0..<M {
                    let c = C + i * ldc + j0
                    for t in 0..<width {
                        c[t] = beta == 0 ? alpha * sums[i][t] : alpha * sums[i][t] + beta * c[t]
                    }
                }
                j0 += width
            }
        }
    }
}
