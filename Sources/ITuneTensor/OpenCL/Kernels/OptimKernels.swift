// The kernels of Kernels/optim.cl as typed functions: parameters in the order and under the
// names of the `.cl` signature (KernelSignatureTests checks them against the source).

extension OpenCLBackend {
    /// One AdamW step over n parameters p with gradient g and moments m, v (all (n)); the
    /// clipping scale, skip flag and bias corrections come from control (see StepControl).
    func adamwUpdate(_ grid: KernelGrid, p: Tensor, g: Tensor, m: Tensor, v: Tensor, n: Int, lr: Float, beta1: Float,
                     beta2: Float, eps: Float, weightDecay: Float, control: Tensor) throws {
        try launch("optim", "adamw_update", grid,
                   [.buffer(p), .buffer(g), .buffer(m), .buffer(v), .int(n), .float(lr), .float(beta1), .float(beta2),
                    .float(eps), .float(weightDecay), .buffer(control)])
    }

    /// A step's clipping scale, skip flag and bias corrections into control, from the
    /// gradients' Σg² and the losses in sums (nSums + nLosses); record ≥ 0 keeps its loss and norm.
    func optimizerStepPrepare(_ grid: KernelGrid, control: Tensor, sums: Tensor, nSums: Int, nLosses: Int, maxNorm: Float,
                              beta1: Float, beta2: Float, halt: Bool, record: Int) throws {
        try launch("optim", "optimizer_step_prepare", grid,
                   [.buffer(control), .buffer(sums), .int(nSums), .int(nLosses), .float(maxNorm), .float(beta1),
                    .float(beta2), .bool(halt), .int(record)])
    }

    /// out[outOffset + group] = Σ x² (square) or Σ x over each group's chunk of x (n).
    func sumSquaresPartial(_ grid: KernelGrid, out: Tensor, outOffset: Int, x: Tensor, n: Int, chunk: Int,
                           square: Bool, s: LocalMemory) throws {
        try launch("optim", "sum_squares_partial", grid,
                   [.buffer(out), .int(outOffset), .buffer(x), .int(n), .int(chunk), .bool(square), .local(s)])
    }

    /// x (n) *= factor.
    func scaleInPlace(_ grid: KernelGrid, x: Tensor, n: Int, factor: Float) throws {
        try launch("optim", "scale_in_place", grid, [.buffer(x), .int(n), .float(factor)])
    }
}
