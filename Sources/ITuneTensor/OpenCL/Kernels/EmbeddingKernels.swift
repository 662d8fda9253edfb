// The kernels of Kernels/embedding.cl as typed functions: parameters in the order and under
// the names of the `.cl` signature (KernelSignatureTests checks them against the source).
// weight, dweight (V, C); ids (n) i32; out, dy (n, C).

extension OpenCLBackend {
    /// out[i] = weight[ids[i]]; grid (C, n).
    func embeddingForward(_ grid: KernelGrid, out: Tensor, weight: Tensor, ids: Tensor, n: Int, C: Int) throws {
        try launch("embedding", "embedding_forward", grid, [.buffer(out), .buffer(weight), .buffer(ids), .int(n), .int(C)])
    }

    /// out[i] = weight[ids[i]] from a 16-bit table (format 1 = bf16, 2 = f16); grid (C, n).
    func embeddingForwardW16(_ grid: KernelGrid, out: Tensor, weight: Tensor, ids: Tensor, n: Int, C: Int,
                             format: Int) throws {
        try launch("embedding", "embedding_forward_w16", grid,
                   [.buffer(out), .buffer(weight), .buffer(ids), .int(n), .int(C), .int(format)])
    }

    /// out[i] = the dequantised row ids[i] of a blockwise-quantised table (grid constants
    /// GEMM_BQ, GEMM_BQ_DQ as the quantised GEMMs'); grid (C, n).
    func embeddingForwardQuant(_ grid: KernelGrid, out: Tensor, codes: Tensor, ids: Tensor, n: Int, C: Int,
                               scales: Tensor, scaleCodes: Tensor, scaleOffset: Float) throws {
        try launch("embedding", "embedding_forward_quant", grid,
                   [.buffer(out), .buffer(codes), .buffer(ids), .int(n), .int(C), .buffer(scales), .buffer(scaleCodes),
                    .float(scaleOffset)])
    }

    /// dweight rows of the U distinct ids (CSR: uniqueIds (U), offsets (U+1), positions (n)),
    /// written, or with `accumulate` added to the rows there; grid (C, U).
    func embeddingBackward(_ grid: KernelGrid, dweight: Tensor, dy: Tensor, uniqueIds: Tensor, offsets: Tensor,
                           positions: Tensor, U: Int, C: Int, accumulate: Bool) throws {
        try launch("embedding", "embedding_backward", grid,
                   [.buffer(dweight), .buffer(dy), .buffer(uniqueIds), .buffer(offsets), .buffer(positions), .int(U),
                    .int(C), .bool(accumulate)])
    }
}
