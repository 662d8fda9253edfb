import Foundation

// GEMM with a 16-bit B operand (a frozen weight kept as bf16 or f16): the product of
// Gemm.swift's SGEMM with the weight converted to f32 one cache-sized block at a time.
//
//   for each block of op(B) (at most KB rows × NB columns, ≤ 2 MiB of f32):
//     convert the block to f32 into a reused workspace      (parallel over its rows)
//     C[:, block cols] += alpha · op(A)[:, block rows] · block   (cpuSgemm, all cores)
//
// The whole f32 matrix never exists: the extra memory is one block, and each 16-bit value is
// read and converted once per call (cpuSgemm then packs the block from L2/L3 as it packs any B).
// Accumulation is f32 throughout; the result equals cpuSgemm on the converted weight up to
// the order of the K-block sums.

/// Rows and columns of one converted block of op(B).
enum GemmHalfBlocking {
    /// Depth of a block: deep enough that C is read and written few times.
    static let kb = 2048
    /// f32 values of one converted block (2 MiB: inside L3, beside cpuSgemm's own packing).
    static let blockFloats = 1 << 19
}

/// Row-major C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C, where B holds 16-bit
/// values of `format` (`.bf16` or `.f16`) with row stride ldb: B is (K,N), or (N,K) when
/// `transB` (a linear layer's weight). beta = 0 means C is not read.
func cpuSgemmW16(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                 A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<UInt16>, format: DType, ldb: Int,
                 beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
    cpuSgemmConvertingB(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda,
                        beta: beta, C: C, ldc: ldc) { row0, rows, col0, cols, block in
        convertRows(B, ldb: ldb, row0: row0, rows: rows, col0: col0, cols: cols, format: format, into: block)
    }
}

/// The blocked driver shared by every stored format of B (16-bit here, blockwise-quantised in
/// Quant/GemmQuant.swift): `fill(row0, rows, col0, cols, dst)` writes B's stored rows
/// row0..<row0+rows, columns col0..<col0+cols (B's own layout: (N,K) when `transB`) as dense
/// f32 into dst, and each filled block goes through cpuSgemm.
func cpuSgemmConvertingB(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                         A: UnsafePointer<Float>, lda: Int, beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int,
                         fill: (_ row0: Int, _ rows: Int, _ col0: Int, _ cols: Int, _ dst: UnsafeMutablePointer<Float>) -> Void) {
    if M <= 0 || N <= 0 { return }
    if K <= 0 || alpha == 0 {
        // Nothing of B is read: cpuSgemm scales C by beta.
        var dummy: Float = 0
        cpuSgemm(transA: transA, transB: false, M: M, N: N, K: 0, alpha: alpha, A: A, lda: lda, B: &dummy, ldb: 1,
                 beta: beta, C: C, ldc: ldc)
        return
    }
    let kb = min(K, GemmHalfBlocking.kb)
    let nbLimit = max(GemmBlocking.nr * 4, GemmHalfBlocking.blockFloats / kb / GemmBlocking.nr * GemmBlocking.nr)
    let nb = min(N, nbLimit)
    let ws = GemmWorkspace.take(sharedFloats: kb * nb, perWorkerFloats: 0, workers: 1)
    defer { GemmWorkspace.give(ws) }
    let block = ws.shared
    var j0 = 0
    while j0 < N {
        let cols = min(nb, N - j0)
        var k0 = 0
        while k0 < K {
            let depth = min(kb, K - k0)
            // The block op(B)[k0..<k0+depth, j0..<j0+cols] in B's own layout: (cols, depth) for
            // transB, (depth, cols) otherwise, so that both the reads and the writes run along rows.
            if transB {
                fill(j0, cols, k0, depth, block)
            } else {
                fill(k0, depth, j0, cols, block)
            }
            let a = transA ? A + k0 * lda : A + k0
            cpuSgemm(transA: transA, transB: transB, M: M, N: cols, K: depth, alpha: alpha, A: a, lda: lda,
                     B: block, ldb: transB ? depth : cols, beta: k0 == 0 ? beta : 1, C: C + j0, ldc: ldc)
            k0 += depth
        }
        j0 += cols
    }
}

/// dst (rows, cols), densely packed = src[row0..<row0+rows, col0..<col0+cols] as f32.
private func convertRows(_ src: UnsafePointer<UInt16>, ldb: Int, row0: Int, rows: Int, col0: Int, cols: Int,
                         format: DType, into dst: UnsafeMutablePointer<Float>) {
    let grain = max(1, 16_384 / max(cols, 1))
    CPUParallel.forEach(rows, grain: grain) { range in
        for r in range {
            convertW16(src + (row0 + r) * ldb + col0, count: cols, format: format, into: dst + r * cols)
        }
    }
}

/// dst[0..<count] = the 16-bit values of `format` at src, as f32 (exact).
@inline(__always)
func convertW16(_ src: UnsafePointer<UInt16>, count: Int, format: DType, into dst: UnsafeMutablePointer<Float>) {
    if format == .bf16 {
        // bf16 is the high half of an f32: widen and shift, eight at a time.
        var i = 0
        let raw = UnsafeRawPointer(src), out = UnsafeMutableRawPointer(dst)
        while i + 8 <= count {
            let h = raw.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self)
            let w = SIMD8<UInt32>(truncatingIfNeeded: h) &<< 16
            out.storeBytes(of: w, toByteOffset: 4 * i, as: SIMD8<UInt32>.self)
            i += 8
        }
        while i < count { dst[i] = bfloat16ToFloat(src[i]); i += 1 }
    } else {
        for i in 0..<count { dst[i] = halfToFloat(src[i]) }
    }
}
