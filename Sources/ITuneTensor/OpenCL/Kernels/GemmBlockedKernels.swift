// The kernel of Kernels/gemm_blocked.cl as a typed function: parameters in the order and under
// the names of the `.cl` signature (KernelSignatureTests checks them against the source).

extension OpenCLBackend {
    /// C (M,N) = alpha·op(A)·op(B) + beta·C per batch (the grid's third dimension), register
    /// blocked: groups of (GEMM_TSN/GEMM_WPTN, GEMM_TSM/GEMM_WPTM) work-items, one group per
    /// GEMM_TSM × GEMM_TSN tile of C.
    func gemmBlocked(_ grid: KernelGrid, M: Int, N: Int, K: Int, alpha: Float, beta: Float,
                     A: Tensor, lda: Int, strideA: Int, transA: Bool,
                     B: Tensor, ldb: Int, strideB: Int, transB: Bool,
                     C: Tensor, ldc: Int, strideC: Int) throws {
        try launch("gemm_blocked", "gemm_blocked", grid,
                   [.int(M), .int(N), .int(K), .float(alpha), .float(beta),
                    .buffer(A), .int(lda), .int(strideA), .bool(transA),
                    .buffer(B), .int(ldb), .int(strideB), .bool(transB),
                    .buffer(C), .int(ldc), .int(strideC)])
    }

    /// The same product without local memory: work-items over a grid of
    /// (⌈M/GEMM_DWM⌉, ⌈N/GEMM_DWN⌉, batch), each GEMM_DWM × GEMM_DWN outputs.
    func gemmDirect(_ grid: KernelGrid, M: Int, N: Int, K: Int, alpha: Float, beta: Float,
                    A: Tensor, lda: Int, strideA: Int, transA: Bool,
                    B: Tensor, ldb: Int, strideB: Int, transB: Bool,
                    C: Tensor, ldc: Int, strideC: Int) throws {
        try launch("gemm_blocked", "gemm_direct", grid,
                   [.int(M), .int(N), .int(K), .float(alpha), .float(beta),
                    .buffer(A), .int(lda), .int(strideA), .bool(transA),
                    .buffer(B), .int(ldb), .int(strideB), .bool(transB),
                    .buffer(C), .int(ldc), .int(strideC)])
    }

    /// The same product with B blockwise quantised (a program built with GEMM_BQ, storage.cl):
    /// B the codes, `scales`/`scaleCodes`/`scaleOffset` the absmax constants. One matrix (batch 1).
    func gemmBlockedQuant(_ grid: KernelGrid, M: Int, N: Int, K: Int, alpha: Float, beta: Float,
                          A: Tensor, lda: Int, strideA: Int, transA: Bool,
                          B: Tensor, ldb: Int, strideB: Int, transB: Bool,
                          C: Tensor, ldc: Int, strideC: Int,
                          scales: Tensor, scaleCodes: Tensor, scaleOffset: Float) throws {
        try launch("gemm_blocked", "gemm_blocked_quant", grid,
                   [.int(M), .int(N), .int(K), .float(alpha), .float(beta),
                    .buffer(A), .int(lda), .int(strideA), .bool(transA),
                    .buffer(B), .int(ldb), .int(strideB), .bool(transB),
                    .buffer(C), .int(ldc), .int(strideC),
                    .buffer(scales), .buffer(scaleCodes), .float(scaleOffset)])
    }

    /// The same product with B blockwise quantised (a program built with GEMM_BQ, storage.cl):
    /// B the codes, `scales`/`scaleCodes`/`scaleOffset` the absmax constants. One matrix (batch 1).
    func gemmDirectQuant(_ grid: KernelGrid, M: Int, N: Int, K: Int, alpha: Float, beta: Float,
                         A: Tensor, lda: Int, strideA: Int, transA: Bool,
                         B: Tensor, ldb: Int, strideB: Int, transB: Bool,
                         C: Tensor, ldc: Int, strideC: Int,
                         scales: Tensor, scaleCodes: Tensor, scaleOffset: Float) throws {
        try launch("gemm_blocked", "gemm_direct_quant", grid,
                   [.int(M), .int(N), .int(K), .float(alpha), .float(beta),
                    .buffer(A), .int(lda), .int(strideA), .bool(transA),
                    .buffer(B), .int(ldb), .int(strideB), .bool(transB),
                    .buffer(C), .int(ldc), .int(strideC),
                    .buffer(scales), .buffer(scaleCodes), .float(scaleOffset)])
    }
}
