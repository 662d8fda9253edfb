import Foundation

/// Row-major SGEMM on the CPU: C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C.
///
/// B is packed into column panels of `nr` floats so the micro-kernel streams it
/// contiguously; rows of C are split over all cores. A is read in place (packed only when
/// transposed).
public func cpuSgemm(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                     A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                     beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
    if M == 0 || N == 0 { return }
    if K == 0 {
        for i in 0..<M { for j in 0..<N { C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j] } }
        return
    }
    let nr = 16
    let panels = (N + nr - 1) / nr
    // Packed B: panel p holds K rows of nr floats (zero-padded past N).
    let packedB = UnsafeMutablePointer<Float>.allocate(capacity: panels * K * nr)
    defer { packedB.deallocate() }
    CPUParallel.forEach(panels) { range in
        for p in range {
            let dst = packedB + p * K * nr
            let j0 = p * nr, width = min(nr, N - j0)
            for k in 0..<K {
                let row = dst + k * nr
                if transB {
                    for j in 0..<width { row[j] = B[(j0 + j) * ldb + k] }
                } else {
                    for j in 0..<width { row[j] = B[k * ldb + j0 + j] }
                }
                for j in width..<nr { row[j] = 0 }
            }
        }
    }
    // A as row-major (M,K): transposed A is packed once.
    var packedA: UnsafeMutablePointer<Float>? = nil
    var aPtr = A, aStride = lda
    if transA {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: M * K)
        CPUParallel.forEach(M) { r in for i in r { for k in 0..<K { p[i * K + k] = A[k * lda + i] } } }
        packedA = p
        aPtr = UnsafePointer(p)
        aStride = K
    }
    defer { packedA?.deallocate() }

    let mr = 4
    let rowBlocks = (M + mr - 1) / mr
    let a = aPtr, sa = aStride
    CPUParallel.forEach(rowBlocks) { blocks in
        var tile = [Float](repeating: 0, count: mr * nr)
        tile.withUnsafeMutableBufferPointer { tileBuf in
            let t = tileBuf.baseAddress!
            for blk in blocks {
                let i0 = blk * mr, rows = min(mr, M - i0)
                for p in 0..<panels {
                    let bp = UnsafePointer(packedB + p * K * nr)
                    microKernel4x16(a + i0 * sa, sa, rows, bp, K, t)
                    let j0 = p * nr, width = min(nr, N - j0)
                    for r in 0..<rows {
                        let c = C + (i0 + r) * ldc + j0
                        if beta == 0 {
                            for j in 0..<width { c[j] = alpha * t[r * nr + j] }
                        } else {
                            for j in 0..<width { c[j] = alpha * t[r * nr + j] + beta * c[j] }
                        }
                    }
                }
            }
        }
    }
}

/// tile (rows ≤ 4, 16) = A rows (rows, K, stride sa) · packed B panel (K, 16).
@inline(__always)
private func microKernel4x16(_ a: UnsafePointer<Float>, _ sa: Int, _ rows: Int,
                             _ b: UnsafePointer<Float>, _ K: Int, _ tile: UnsafeMutablePointer<Float>) {
    var c0 = SIMD16<Float>(), c1 = SIMD16<Float>(), c2 = SIMD16<Float>(), c3 = SIMD16<Float>()
    let braw = UnsafeRawPointer(b)
    if rows == 4 {
        let a0 = a, a1 = a + sa, a2 = a + 2 * sa, a3 = a + 3 * sa
        for k in 0..<K {
            let bv = braw.loadUnaligned(fromByteOffset: k * 64, as: SIMD16<Float>.self)
            c0 += a0[k] * bv
            c1 += a1[k] * bv
            c2 += a2[k] * bv
            c3 += a3[k] * bv
        }
    } else {
        for k in 0..<K {
            let bv = braw.loadUnaligned(fromByteOffset: k * 64, as: SIMD16<Float>.self)
            c0 += a[k] * bv
            if rows > 1 { c1 += a[sa + k] * bv }
            if rows > 2 { c2 += a[2 * sa + k] * bv }
        }
    }
    let traw = UnsafeMutableRawPointer(tile)
    traw.storeBytes(of: c0, toByteOffset: 0, as: SIMD16<Float>.self)
    traw.storeBytes(of: c1, toByteOffset: 64, as: SIMD16<Float>.self)
    traw.storeBytes(of: c2, toByteOffset: 128, as: SIMD16<Float>.self)
    traw.storeBytes(of: c3, toByteOffset: 192, as: SIMD16<Float>.self)
}
