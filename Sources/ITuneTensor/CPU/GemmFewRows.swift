import CGemmKernels
import Foundation

// SGEMM for a few rows of C (M ≤ GemmBlocking.fewRows): generating token by token, small
// batches. Each element of B is used only M times, so copying B into panels would cost as
// much as the product; these paths read B once, in place, along its contiguous rows, and
// split the columns of C over the workers.

/// C (M,N) = alpha · op(A) (M,K) · Bᵀ + beta · C with B stored (N,K): dot products of rows
/// of op(A) with rows of B, 4 rows of B at a time so that each load of A feeds 4 products
/// (with AVX-512 and M ≥ 3, 4 rows of op(A) too: a 4 × 4 tile, each load feeding 4 products).
/// K is taken in blocks so that the 4 rows of B stay in L1 while every row of A passes; the
/// 4 rows are still read front to back, as 4 sequential streams. `transC`: C is stored
/// transposed, element (i, j) at C[j · ldc + i] (sgemmFewColumns' Cᵀ, written in place).
func sgemmFewRowsDotB(transA: Bool, M: Int, N: Int, K: Int, alpha: Float, A: UnsafePointer<Float>, lda: Int,
                      B: UnsafePointer<Float>, ldb: Int, beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int,
                      workers: Int, transC: Bool = false) {
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
    // With only a few rows of A there is little to reuse the 4 rows of B for; one pass is
    // faster than blocks.
    let kBlock = M <= 4 ? K : 1024
    // The 4 × 4 tile from 3 rows of op(A) on: with 1 or 2 (decoding) most of its products would
    // repeat row 0.
    let avx2 = GemmConfig.fewRowsAVX2, avx512 = GemmConfig.fewRowsAVX512 && M >= 3
    // Element (i, j) of C, from its sum s over a K block (beta applied with the first block).
    let (rowStride, colStride) = transC ? (1, ldc) : (ldc, 1)
    @inline(__always) func store(_ i: Int, _ j: Int, _ s: Float, beta betaBlock: Float) {
        let c = C + i * rowStride + j * colStride
        c.pointee = betaBlock == 0 ? alpha * s : alpha * s + betaBlock * c.pointee
    }
    parallelRanges((N + 3) / 4, workers: workers) { _, groups in
        var tile = SIMD16<Float>()  // the 4 × 4 sums, row stride 4
        for g in groups {
            let j0 = g * 4, width = min(4, N - j0)
            var k0 = 0
            while k0 < K {
                let kc = min(kBlock, K - k0)
                // C is scaled by beta once, with the first K block; later blocks accumulate.
                let betaBlock: Float = k0 == 0 ? beta : 1
                if avx512 {
                    withUnsafeMutableBytes(of: &tile) { raw in
                        let out = raw.baseAddress!.assumingMemoryBound(to: Float.self)
                        for i0 in stride(from: 0, to: M, by: 4) {
                            let height = min(4, M - i0)
                            itune_dot_tile4x4_avx512(a + i0 * sa + k0, sa, height, B + j0 * ldb + k0, ldb, width, kc, out, 4)
                            for i in 0..<height {
                                for t in 0..<width { store(i0 + i, j0 + t, out[i * 4 + t], beta: betaBlock) }
                            }
                        }
                    }
                    k0 += kc
                    continue
                }
                for i in 0..<M {
                    var s = SIMD4<Float>()
                    if avx2 {
                        withUnsafeMutableBytes(of: &s) { out in
                            itune_dot_rows4_avx2(a + i * sa + k0, B + j0 * ldb + k0, ldb, width, kc,
                                                 out.baseAddress!.assumingMemoryBound(to: Float.self))
                        }
                    } else {
                        s = dotRows4(a + i * sa + k0, B + j0 * ldb + k0, ldb, width, kc)
                    }
                    for t in 0..<width { store(i, j0 + t, s[t], beta: betaBlock) }
                }
                k0 += kc
            }
        }
    }
}

/// The dot products of x (K) with `count` ≤ 4 rows of B (ldb apart), vectorised along K.
@inline(__always)
func dotRows4(_ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ldb: Int, _ count: Int,
                      _ K: Int) -> SIMD4<Float> {
    typealias V = GemmVector
    let w = V.scalarCount
    // Missing rows (at the right edge of C) repeat row 0; their sums are not used.
    let r0 = b, r1 = count > 1 ? b + ldb : b, r2 = count > 2 ? b + 2 * ldb : b, r3 = count > 3 ? b + 3 * ldb : b
    let xr = UnsafeRawPointer(x)
    let p0 = UnsafeRawPointer(r0), p1 = UnsafeRawPointer(r1), p2 = UnsafeRawPointer(r2), p3 = UnsafeRawPointer(r3)
    var s0 = V(), s1 = V(), s2 = V(), s3 = V()
    var k = 0
    while k + w <= K {
        let o = k * 4
        let xv = xr.loadUnaligned(fromByteOffset: o, as: V.self)
        s0 = gemmMultiplyAdd(s0, xv, p0.loadUnaligned(fromByteOffset: o, as: V.self))
        s1 = gemmMultiplyAdd(s1, xv, p1.loadUnaligned(fromByteOffset: o, as: V.self))
        s2 = gemmMultiplyAdd(s2, xv, p2.loadUnaligned(fromByteOffset: o, as: V.self))
        s3 = gemmMultiplyAdd(s3, xv, p3.loadUnaligned(fromByteOffset: o, as: V.self))
        k += w
    }
    var out = SIMD4<Float>(s0.sum(), s1.sum(), s2.sum(), s3.sum())
    while k < K {
        out += x[k] * SIMD4<Float>(r0[k], r1[k], r2[k], r3[k])
        k += 1
    }
    return out
}

/// C (M,N) = alpha · op(A) (M,K) · B (K,N) + beta · C: rows of C built as sums of rows of B
/// scaled by elements of op(A). With AVX-512, 8 × 32 tiles of C in registers (LoRA's adapter
/// gradients: dA = dHᵀ·X is 8 × 576 × 1024). Else 4 rows of B at a time, into per-worker partial sums. A
/// worker's columns are one chunk when its partial sums fit in L2 (256 KiB), so that B is
/// streamed in long runs along its rows; narrower chunks would read a few cache lines from
/// each row and leave the prefetchers behind.
func sgemmFewRowsAxpyB(transA: Bool, M: Int, N: Int, K: Int, alpha: Float, A: UnsafePointer<Float>, lda: Int,
                       B: UnsafePointer<Float>, ldb: Int, beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int,
                       workers: Int) {
    if GemmConfig.fewRowsAVX512 {
        // Tiles of 8 rows × 32 columns of C kept in registers over all of K: op(A) broadcast, B's
        // rows read once per block of 8 rows, split over the workers by columns.
        let (sk, si) = transA ? (lda, 1) : (1, lda)
        parallelRanges((N + 31) / 32, workers: workers) { _, blocks in
            for blk in blocks {
                let j0 = blk * 32, width = min(32, N - j0)
                for i0 in stride(from: 0, to: M, by: 8) {
                    itune_axpy_tile8x32_avx512(A + i0 * si, sk, si, min(8, M - i0), B + j0, ldb, width, K, alpha, beta,
                                               C + i0 * ldc + j0, ldc)
                }
            }
        }
        return
    }
    typealias V = GemmVector
    let w = V.scalarCount, vb = MemoryLayout<V>.size
    let chunk = max(w, min(gemmRoundUp((N + workers - 1) / workers, w), max(256, 65536 / M)))
    let ws = GemmWorkspace.take(sharedFloats: 0, perWorkerFloats: M * chunk, workers: workers)
    defer { GemmWorkspace.give(ws) }
    @inline(__always) func opA(_ i: Int, _ k: Int) -> Float { transA ? A[k * lda + i] : A[i * lda + k] }
    let avx2 = GemmConfig.fewRowsAVX2

    parallelRanges((N + chunk - 1) / chunk, workers: workers) { worker, chunks in
        let acc = ws.scratch(worker).buffer
        for ch in chunks {
            let j0 = ch * chunk, width = min(chunk, N - j0), vecs = width / w
            acc.update(repeating: 0, count: M * chunk)
            var k = 0
            while k + 4 <= K {
                let b0 = UnsafeRawPointer(B + k * ldb + j0), b1 = b0 + ldb * 4
                let b2 = b1 + ldb * 4, b3 = b2 + ldb * 4
                for i in 0..<M {
                    let x0 = opA(i, k), x1 = opA(i, k + 1), x2 = opA(i, k + 2), x3 = opA(i, k + 3)
                    if avx2 {
                        itune_axpy4_avx2(acc + i * chunk, width, b0.assumingMemoryBound(to: Float.self),
                                         b1.assumingMemoryBound(to: Float.self), b2.assumingMemoryBound(to: Float.self),
                                         b3.assumingMemoryBound(to: Float.self), x0, x1, x2, x3)
                        continue
                    }
                    let a0 = V(repeating: x0), a1 = V(repeating: x1), a2 = V(repeating: x2), a3 = V(repeating: x3)
                    let row = UnsafeMutableRawPointer(acc + i * chunk)
                    for v in 0..<vecs {
                        let o = v * vb
                        var s = row.load(fromByteOffset: o, as: V.self)
                        s = gemmMultiplyAdd(s, a0, b0.loadUnaligned(fromByteOffset: o, as: V.self))
                        s = gemmMultiplyAdd(s, a1, b1.loadUnaligned(fromByteOffset: o, as: V.self))
                        s = gemmMultiplyAdd(s, a2, b2.loadUnaligned(fromByteOffset: o, as: V.self))
                        s = gemmMultiplyAdd(s, a3, b3.loadUnaligned(fromByteOffset: o, as: V.self))
                        row.storeBytes(of: s, toByteOffset: o, as: V.self)
                    }
                    let tail = acc + i * chunk, f0 = B + k * ldb + j0
                    for j in vecs * w ..< width {
                        tail[j] += x0 * f0[j] + x1 * f0[ldb + j] + x2 * f0[2 * ldb + j] + x3 * f0[3 * ldb + j]
                    }
                }
                k += 4
            }
            while k < K {
                let src = B + k * ldb + j0, b0 = UnsafeRawPointer(src)
                for i in 0..<M {
                    let x0 = opA(i, k), a0 = V(repeating: x0)
                    let row = UnsafeMutableRawPointer(acc + i * chunk)
                    for v in 0..<vecs {
                        let o = v * vb
                        let s = row.load(fromByteOffset: o, as: V.self)
                        row.storeBytes(of: gemmMultiplyAdd(s, a0, b0.loadUnaligned(fromByteOffset: o, as: V.self)),
                                       toByteOffset: o, as: V.self)
                    }
                    let tail = acc + i * chunk
                    for j in vecs * w ..< width { tail[j] += x0 * src[j] }
                }
                k += 1
            }
            for i in 0..<M {
                let s = acc + i * chunk, c = C + i * ldc + j0
                if beta == 0 {
                    for j in 0..<width { c[j] = alpha * s[j] }
                } else {
                    for j in 0..<width { c[j] = alpha * s[j] + beta * c[j] }
                }
            }
        }
    }
}
