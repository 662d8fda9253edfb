// The kernel of Kernels/gemm.cl as a typed function: parameters in the order and under the
// names of the `.cl` signature (KernelSignatureTests checks them against the source).

extension OpenCLBackend {
    /// C (M,N) = alpha·op(A)·op(B) + beta·C per batch (the grid's third dimension), row-major
    /// with leading dims lda/ldb/ldc and element strides between batch matrices. The grid's
    /// groups are TS×TS.
    func gemmTiled(_ grid: KernelGrid, M: Int, N: Int, K: Int, alpha: Float, beta: Float,
                   A: Tensor, lda: Int, strideA: Int, transA: Bool,
                   B: Tensor, ldb: Int, strideB: Int, transB: Bool,
                   C: Tensor, ldc: Int, strideC: Int) throws {
        try launch("gemm", "gemm_tiled", grid,
                   [.int(M), .int(N), .int(K), .float(alpha), .float(beta),
                    .buffer(A), .int(lda), .int(strideA), .bool(transA),
                    .buffer(B), .int(ldb), .int(strideB), .bool(transB),
                    .buffer(C), .int(ldc), .int(strideC)])
    }
}
