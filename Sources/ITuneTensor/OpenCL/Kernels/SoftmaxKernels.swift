// The kernels of Kernels/softmax.cl as typed functions: parameters in the order and under the
// names of the `.cl` signature (KernelSignatureTests checks them against the source).
// x, y, dy, dx are (N, C); one work-group per row, `scratch` one float per work-item.

extension OpenCLBackend {
    /// y = softmax(x) over each row of C.
    func softmaxForward(_ grid: KernelGrid, y: Tensor, x: Tensor, C: Int, scratch: LocalMemory) throws {
        try launch("softmax", "softmax_forward", grid, [.buffer(y), .buffer(x), .int(C), .local(scratch)])
    }

    /// dx = y·(dy − Σ dy·y) per row.
    func softmaxBackward(_ grid: KernelGrid, dx: Tensor, y: Tensor, dy: Tensor, C: Int, scratch: LocalMemory) throws {
        try launch("softmax", "softmax_backward", grid, [.buffer(dx), .buffer(y), .buffer(dy), .int(C), .local(scratch)])
    }
}
