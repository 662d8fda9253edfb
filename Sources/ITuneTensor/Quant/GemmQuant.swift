import Foundation

// GEMM with a blockwise-quantised B operand (an nf4 or int8 frozen weight): as GemmHalf.swift
// does for 16-bit weights, op(B) is dequantised one cache-sized block at a time into a reused
// workspace that cpuSgemm then packs; the whole f32 matrix never exists.

/// Row-major C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C, where B is the quantised
/// matrix: (K,N), or (N,K) when `transB` (a linear layer's weight). beta = 0: C is not read.
func cpuSgemmQuantized(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                       A: UnsafePointer<Float>, lda: Int, B: BlockQuantizedMatrix,
                       beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
    precondition(transB ? (B.rows == N && B.cols == K) : (B.rows == K && B.cols == N), "cpuSgemmQuantized: B shape")
    cpuSgemmConvertingB(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda,
                        beta: beta, C: C, ldc: ldc) { row0, rows, col0, cols, block in
        dequantizeRows(B, row0: row0, rows: rows, col0: col0, cols: cols, into: block)
    }
}

/// dst (rows, cols), densely packed = B[row0..<row0+rows, col0..<col0+cols] dequantised.
private func dequantizeRows(_ b: BlockQuantizedMatrix, row0: Int, rows: Int, col0: Int, cols: Int,
                            into dst: UnsafeMutablePointer<Float>) {
    let grain = max(1, 16_384 / max(cols, 1))
    let ld = b.cols
    nonisolated(unsafe) let dst = dst
    CPUParallel.forEach(rows, grain: grain) { range in
        for r in range { b.dequantize(from: (row0 + r) * ld + col0, count: cols, into: dst + r * cols) }
    }
}

extension BlockQuantizedMatrix {
    /// x (M, cols) · selfᵀ: a linear layer's y (M, rows) with this (out, in) weight, on the host.
    public func linear(_ x: [Float], rows M: Int) throws -> [Float] {
        guard x.count == M * cols else {
            throw TensorError.shapeMismatch(op: "quantized linear", "\(x.count) inputs for \(M) rows of \(cols)")
        }
        var y = [Float](repeating: 0, count: M * rows)
        x.withUnsafeBufferPointer { a in
            y.withUnsafeMutableBufferPointer { c in
                cpuSgemmQuantized(transA: false, transB: true, M: M, N: rows, K: cols, alpha: 1, A: a.baseAddress!, lda: cols,
                                  B: self, beta: 0, C: c.baseAddress!, ldc: rows)
            }
        }
        return y
    }

    /// g (M, rows) · self: the input gradient (M, cols) of `linear`, on the host.
    public func linearInputGradient(_ g: [Float], rows M: Int) throws -> [Float] {
        guard g.count == M * rows else {
            throw TensorError.shapeMismatch(op: "quantized linear backward", "\(g.count) gradients for \(M) rows of \(rows)")
        }
        var dx = [Float](repeating: 0, count: M * cols)
        g.withUnsafeBufferPointer { a in
            dx.withUnsafeMutableBufferPointer { c in
                cpuSgemmQuantized(transA: false, transB: false, M: M, N: cols, K: rows, alpha: 1, A: a.baseAddress!, lda: rows,
                                  B: self, beta: 0, C: c.baseAddress!, ldc: cols)
            }
        }
        return dx
    }
}
