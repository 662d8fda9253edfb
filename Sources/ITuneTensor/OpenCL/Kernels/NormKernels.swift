// The kernels of Kernels/norm.cl as typed functions: parameters in the order and under the
// names of the `.cl` signature (KernelSignatureTests checks them against the source).
// x, y, dy, dx (N, C); weight, bias (C); mean, rstd (N); row kernels run one work-group per
// row with one float (float2 for layernormBackwardDx) of scratch per work-item.

extension OpenCLBackend {
    /// y = x·rstd·weight, rstd = 1/√(mean(x²) + eps).
    func rmsnormForward(_ grid: KernelGrid, y: Tensor, rstd: Tensor, x: Tensor, weight: Tensor, C: Int, eps: Float,
                        scratch: LocalMemory) throws {
        try launch("norm", "rmsnorm_forward", grid,
                   [.buffer(y), .buffer(rstd), .buffer(x), .buffer(weight), .int(C), .float(eps), .local(scratch)])
    }

    /// dx of RMSNorm.
    func rmsnormBackwardDx(_ grid: KernelGrid, dx: Tensor, x: Tensor, weight: Tensor, rstd: Tensor, dy: Tensor, C: Int,
                           scratch: LocalMemory) throws {
        try launch("norm", "rmsnorm_backward_dx", grid,
                   [.buffer(dx), .buffer(x), .buffer(weight), .buffer(rstd), .buffer(dy), .int(C), .local(scratch)])
    }

    /// part (parts, C): Σ dy·x·rstd over each block of rowsPerPart rows; grid (C, parts).
    func rmsnormDweightPart(_ grid: KernelGrid, part: Tensor, x: Tensor, rstd: Tensor, dy: Tensor, N: Int, C: Int,
                            rowsPerPart: Int) throws {
        try launch("norm", "rmsnorm_dweight_part", grid,
                   [.buffer(part), .buffer(x), .buffer(rstd), .buffer(dy), .int(N), .int(C), .int(rowsPerPart)])
    }

    /// y = (x − mean)·rstd·weight + bias, keeping mean and rstd.
    func layernormForward(_ grid: KernelGrid, y: Tensor, mean: Tensor, rstd: Tensor, x: Tensor, weight: Tensor,
                          bias: Tensor, C: Int, eps: Float, scratch: LocalMemory) throws {
        try launch("norm", "layernorm_forward", grid,
                   [.buffer(y), .buffer(mean), .buffer(rstd), .buffer(x), .buffer(weight), .buffer(bias), .int(C),
                    .float(eps), .local(scratch)])
    }

    /// dx of LayerNorm; scratch holds one float2 per work-item.
    func layernormBackwardDx(_ grid: KernelGrid, dx: Tensor, x: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor,
                             dy: Tensor, C: Int, scratch: LocalMemory) throws {
        try launch("norm", "layernorm_backward_dx", grid,
                   [.buffer(dx), .buffer(x), .buffer(weight), .buffer(mean), .buffer(rstd), .buffer(dy), .int(C),
                    .local(scratch)])
    }

    /// partW, partB (parts, C): Σ dy·x̂ and Σ dy over each block of rows; grid (C, parts).
    func layernormDparamsPart(_ grid: KernelGrid, partW: Tensor, partB: Tensor, x: Tensor, mean: Tensor, rstd: Tensor,
                              dy: Tensor, N: Int, C: Int, rowsPerPart: Int) throws {
        try launch("norm", "layernorm_dparams_part", grid,
                   [.buffer(partW), .buffer(partB), .buffer(x), .buffer(mean), .buffer(rstd), .buffer(dy), .int(N),
                    .int(C), .int(rowsPerPart)])
    }

    /// out (C) = Σ over the parts of part (parts, C), in order.
    func sumParts(_ grid: KernelGrid, out: Tensor, part: Tensor, parts: Int, C: Int) throws {
        try launch("norm", "sum_parts", grid, [.buffer(out), .buffer(part), .int(parts), .int(C)])
    }

    /// out (N) = cosine similarity of the rows of u and v (N, C).
    func cosineRowsForward(_ grid: KernelGrid, out: Tensor, u: Tensor, v: Tensor, C: Int, s: LocalMemory) throws {
        try launch("norm", "cosine_rows_forward", grid, [.buffer(out), .buffer(u), .buffer(v), .int(C), .local(s)])
    }

    /// du, dv of the row cosine for dy (N).
    func cosineRowsBackward(_ grid: KernelGrid, du: Tensor, dv: Tensor, u: Tensor, v: Tensor, dy: Tensor, C: Int,
                            s: LocalMemory) throws {
        try launch("norm", "cosine_rows_backward", grid,
                   [.buffer(du), .buffer(dv), .buffer(u), .buffer(v), .buffer(dy), .int(C), .local(s)])
    }
}
