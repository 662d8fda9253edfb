import CGemmKernels
import Foundation

// GEMM with a blockwise-quantised B operand (an nf4 or int8 frozen weight): CPU/GemmHalf.swift's
// driver with the dequantisation of a run of a stored row as its reader, so that B is dequantised
// while the GEMM packs it (or, for a few rows, one cache-sized block at a time); the whole f32
// matrix never exists.

/// Row-major C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C, where B is the quantised
/// matrix: (K,N), or (N,K) when `transB` (a linear layer's weight). beta = 0: C is not read.
func cpuSgemmQuantized(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                       A: UnsafePointer<Float>, lda: Int, B: BlockQuantizedMatrix,
                       beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int, onePass: Bool = true,
                       gemvRows: Int = 4, gemvKernel: QuantKernel = .chosen) {
    precondition(transB ? (B.rows == N && B.cols == K) : (B.rows == K && B.cols == N), "cpuSgemmQuantized: B shape")
    // Decoding (a few rows times a linear layer's weight): the fused dequantising GEMV, which
    // streams the codes once instead of dequantising blocks of W into a workspace. Up to
    // `gemvRows` rows (at most GemmBlocking.fewRows) take it, 4 rows a pass: a prompt, where
    // nothing is differentiated (QuantizedLinear.swift). At Qwen2.5-0.5B's shapes a pass costs
    // about one decoded token; 4 passes for a 16-token prompt took 232–245 ms against 358–363
    // for dequantising every block (int8, alternated on an Ice Lake Xeon, 2026-12-01). The GEMV
    // rounds x to 16 bits, so a training step keeps the exact dequantised product beyond 4 rows.
    if useQuantGEMV, transB, !transA, M <= min(max(gemvRows, 4), GemmBlocking.fewRows),
       K % BlockQuantizedMatrix.blockSize == 0, beta == 0, M >= 1, N >= 1 {
        for r0 in stride(from: 0, to: M, by: 4) {
            let rows = min(4, M - r0)
            B.gemv(M: rows, N: N, K: K, A: A + r0 * lda, lda: lda, C: C + r0 * ldc, ldc: ldc, kernel: gemvKernel)
            if alpha != 1 { for r in r0..<r0 + rows { scaleRow(C + r * ldc, N, alpha) } }
        }
        return
    }
    cpuSgemmConvertingB(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda,
                        beta: beta, C: C, ldc: ldc, reader: B.rowReader, onePass: onePass)
}

/// Whether the fused quantised GEMV runs (AVX2 + FMA; elsewhere the block path below).
let useQuantGEMV = rowMathAVX2

/// The loops that turn codes back into f32: BlockQuantizedMatrix.dequantize (what the converting
/// GEMM runs as it packs a quantised B in a training step; one value at a time, the nf4 base's
/// products took 28% longer than an f32 base's in the 135M LoRA step, 3.06 s against 2.39 s a
/// step, Ice Lake, 2026-12-01; int8's 8%) and the fused GEMV of decoding (AVX2 or AVX-512 only:
/// `.swift` there means AVX2 where the CPU has it).
enum QuantKernel: CaseIterable {
    /// The Swift loop, a value at a time (any CPU).
    case swift
    /// CGemmKernels' 8 lanes (AVX2).
    case avx2
    /// CGemmKernels' 16 lanes (AVX-512F): nf4's 16-entry code book is one vpermps.
    case avx512

    /// Whether this CPU runs it.
    var isSupported: Bool {
        switch self {
        case .swift: return true
        case .avx2: return GemmKernelKind.avx2.isSupported
        case .avx512: return GemmKernelKind.avx512.isSupported
        }
    }

    /// The widest the GEMM's kernel choice allows (ITUNE_GEMM_KERNEL=avx2 or swift narrows it,
    /// as it does the 16-bit GEMV).
    static let chosen: QuantKernel = {
        switch GemmConfig.current.kind {
        case .avx512: return .avx512
        case .swift: return .swift
        default: return avx2.isSupported ? .avx2 : .swift
        }
    }()
}

extension BlockQuantizedMatrix {
    /// C (M ≤ 4, N) = A (M, K) · selfᵀ with self (N, K), K a multiple of 64: itune_gemv_quant_avx2
    /// (or its AVX-512 form, `kernel` .avx512) over the rows of self, split between the threads.
    func gemv(M: Int, N: Int, K: Int, A: UnsafePointer<Float>, lda: Int, C: UnsafeMutablePointer<Float>, ldc: Int,
              kernel: QuantKernel = .chosen) {
        let gemv = kernel == .avx512 ? itune_gemv_quant_avx512 : itune_gemv_quant_avx2
        withBlockPointers(host()) { p in
            CPUParallel.forEach(N, grain: max(16, (1 << 16) / max(K, 1))) { rows in
                gemv(p.format, A, lda, M, p.codes, p.absmax, p.scaleCodes, p.second, p.offset, p.book,
                     K, rows.lowerBound, rows.upperBound, C, ldc)
            }
        }
    }

    /// What quantgemv.c's functions read of a host copy: the format's code (1 nf4, 2 int8), the
    /// codes, the absmax constants (nil under double quantisation, whose scales come from
    /// scaleCodes, second and offset) and the nf4 code book.
    struct BlockPointers {
        let format: Int32
        let codes: UnsafePointer<UInt8>?
        let absmax: UnsafePointer<Float>?
        let scaleCodes: UnsafePointer<Int8>?
        let second: UnsafePointer<Float>?
        let offset: Float
        let book: UnsafePointer<Float>?
    }

    /// `body` with the pointers of `copy` (and of the double-quantisation arrays) for its duration.
    func withBlockPointers<R>(_ copy: (codes: [UInt8], absmax: [Float]), _ body: (BlockPointers) -> R) -> R {
        copy.codes.withUnsafeBufferPointer { codes in
            copy.absmax.withUnsafeBufferPointer { absmax in
                (scaleCodes ?? []).withUnsafeBufferPointer { scaleCodes in
                    (scaleAbsmax ?? []).withUnsafeBufferPointer { second in
                        nf4CodeBook.withUnsafeBufferPointer { book in
                            body(BlockPointers(format: format == .nf4 ? 1 : 2, codes: codes.baseAddress,
                                               absmax: self.scaleCodes == nil ? absmax.baseAddress : nil,
                                               scaleCodes: scaleCodes.baseAddress, second: second.baseAddress,
                                               offset: scaleOffset ?? 0, book: book.baseAddress))
                        }
                    }
                }
            }
        }
    }

    /// Runs of rows dequantised (for the converting GEMM). With the C dequantisers, a transposed
    /// B's panels take eight rows at a time: dequantised into an L1 buffer, then transposed by
    /// the AVX2 8 × 8 transposes (one row at a time, each value was scattered down its column).
    var rowReader: StoredRowReader {
        let ld = cols, copy = host(), kernel = QuantKernel.chosen
        var reader = StoredRowReader(read: { row, col0, count, dst in
            self.dequantize(copy, from: row * ld + col0, count: count, into: dst, kernel: kernel)
        })
        if kernel != .swift {
            reader.readTransposed8 = { row, col0, count, dst, ldd in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 8 * count) { rows in
                    let r = rows.baseAddress!
                    for t in 0..<8 {
                        self.dequantize(copy, from: (row + t) * ld + col0, count: count, into: r + t * count, kernel: kernel)
                    }
                    itune_pack_f32_rows8_avx2(r, count, count, dst, ldd)
                }
            }
        }
        return reader
    }
}

extension BlockQuantizedMatrix {
    /// x (M, cols) · selfᵀ: a linear layer's y (M, rows) with this (out, in) weight, on the host.
    public func linear(_ x: [Float], rows M: Int) throws -> [Float] {
        try hostProduct(x, rows: M, transB: true, op: "quantized linear", what: "inputs")
    }

    /// g (M, rows) · self: the input gradient (M, cols) of `linear`, on the host.
    public func linearInputGradient(_ g: [Float], rows M: Int) throws -> [Float] {
        try hostProduct(g, rows: M, transB: false, op: "quantized linear backward", what: "gradients")
    }

    /// a (M, K) · op(self), K = cols with self transposed, else rows; the result (M, N).
    private func hostProduct(_ a: [Float], rows M: Int, transB: Bool, op: String, what: String) throws -> [Float] {
        let (K, N) = transB ? (cols, rows) : (rows, cols)
        guard a.count == M * K else {
            throw TensorError.shapeMismatch(op: op, "\(a.count) \(what) for \(M) rows of \(K)")
        }
        var out = [Float](repeating: 0, count: M * N)
        a.withUnsafeBufferPointer { pa in
            out.withUnsafeMutableBufferPointer { pc in
                cpuSgemmQuantized(transA: false, transB: transB, M: M, N: N, K: K, alpha: 1, A: pa.baseAddress!, lda: K,
                                  B: self, beta: 0, C: pc.baseAddress!, ldc: N)
            }
        }
        return out
    }
}
