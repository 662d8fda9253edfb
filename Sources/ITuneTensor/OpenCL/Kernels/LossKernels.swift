// The kernels of Kernels/loss.cl as typed functions: parameters in the order and under the
// names of the `.cl` signature (KernelSignatureTests checks them against the source).
// logits, dlogits (N, V); targets (N) i32; lse, lossRows (N); dy (1).

extension OpenCLBackend {
    /// lse and the per-row loss (0 where the target is ignoreIndex); one work-group per row.
    func crossEntropyForward(_ grid: KernelGrid, lossRows: Tensor, lse: Tensor, logits: Tensor, targets: Tensor,
                             V: Int, ignoreIndex: Int, scratch: LocalMemory) throws {
        try launch("loss", "cross_entropy_forward", grid,
                   [.buffer(lossRows), .buffer(lse), .buffer(logits), .buffer(targets), .int(V), .int(ignoreIndex),
                    .local(scratch)])
    }

    /// dlogits = (softmax − onehot)·dy·invCount, 0 on ignored rows; grid (V, N).
    func crossEntropyBackward(_ grid: KernelGrid, dlogits: Tensor, logits: Tensor, lse: Tensor, targets: Tensor,
                              dy: Tensor, N: Int, V: Int, ignoreIndex: Int, invCount: Float) throws {
        try launch("loss", "cross_entropy_backward", grid,
                   [.buffer(dlogits), .buffer(logits), .buffer(lse), .buffer(targets), .buffer(dy), .int(N), .int(V),
                    .int(ignoreIndex), .float(invCount)])
    }
}
