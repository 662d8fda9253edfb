import Foundation

// GEMM with a blockwise-quantised B operand (an nf4 or int8 frozen weight): CPU/GemmHalf.swift's
// driver with the dequantisation of a run of a stored row as its reader, so that B is dequantised
// while the GEMM packs it (or, for a few rows, one cache-sized block at a time); the whole f32
// matrix never exists.

/// Row-major C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C, where B is the quantised
/// matrix: (K,N), or (N,K) when `transB` (a linear layer's weight). beta = 0: C is not read.
func cpuSgemmQuantized(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                       A: UnsafePointer<Float>, lda: Int, B: BlockQuantizedMatrix,
                       beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int, onePass: Bool = true) {
    precondition(transB ? (B.rows == N && B.cols == K) : (B.rows == K && B.cols == N), "cpuSgemmQuantized: B shape")
    cpuSgemmConvertingB(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda,
                        beta: beta, C: C, ldc: ldc, reader: B.rowReader, onePass: onePass)
}

extension BlockQuantizedMatrix {
    /// Runs of rows dequantised (for the converting GEMM).
    var rowReader: StoredRowReader {
        let ld = cols, copy = host()
        return StoredRowReader(read: { row, col0, count, dst in
            self.dequantize(copy, from: row * ld + col0, count: count, into: dst)
        })
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
