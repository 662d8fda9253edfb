// The kernels of Kernels/elementwise.cl as typed functions: parameters in the order and under
// the names of the `.cl` signature (KernelSignatureTests checks them against the source).
// n counts elements; every kernel guards it, so grids may be rounded up.

extension OpenCLBackend {
    /// out = a + b[i % nb]; a, out (n), b (nb).
    func addBcast(_ grid: KernelGrid, out: Tensor, a: Tensor, b: Tensor, n: Int, nb: Int) throws {
        try launch("elementwise", "add_bcast", grid, [.buffer(out), .buffer(a), .buffer(b), .int(n), .int(nb)])
    }

    /// out = a · b[i % nb]; a, out (n), b (nb).
    func mulBcast(_ grid: KernelGrid, out: Tensor, a: Tensor, b: Tensor, n: Int, nb: Int) throws {
        try launch("elementwise", "mul_bcast", grid, [.buffer(out), .buffer(a), .buffer(b), .int(n), .int(nb)])
    }

    /// out = a · s.
    func scale(_ grid: KernelGrid, out: Tensor, a: Tensor, s: Float, n: Int) throws {
        try launch("elementwise", "scale", grid, [.buffer(out), .buffer(a), .float(s), .int(n)])
    }

    /// y += alpha · x.
    func axpy(_ grid: KernelGrid, y: Tensor, x: Tensor, alpha: Float, n: Int) throws {
        try launch("elementwise", "axpy", grid, [.buffer(y), .buffer(x), .float(alpha), .int(n)])
    }

    /// out = silu(x).
    func siluForward(_ grid: KernelGrid, out: Tensor, x: Tensor, n: Int) throws {
        try launch("elementwise", "silu_forward", grid, [.buffer(out), .buffer(x), .int(n)])
    }

    /// dx = dy · silu'(x).
    func siluBackward(_ grid: KernelGrid, dx: Tensor, x: Tensor, dy: Tensor, n: Int) throws {
        try launch("elementwise", "silu_backward", grid, [.buffer(dx), .buffer(x), .buffer(dy), .int(n)])
    }

    /// out = relu(x).
    func reluForward(_ grid: KernelGrid, out: Tensor, x: Tensor, n: Int) throws {
        try launch("elementwise", "relu_forward", grid, [.buffer(out), .buffer(x), .int(n)])
    }

    /// dx = dy where x > 0, else 0.
    func reluBackward(_ grid: KernelGrid, dx: Tensor, x: Tensor, dy: Tensor, n: Int) throws {
        try launch("elementwise", "relu_backward", grid, [.buffer(dx), .buffer(x), .buffer(dy), .int(n)])
    }

    /// out = gelu(x), tanh form.
    func geluForward(_ grid: KernelGrid, out: Tensor, x: Tensor, n: Int) throws {
        try launch("elementwise", "gelu_forward", grid, [.buffer(out), .buffer(x), .int(n)])
    }

    /// dx = dy · gelu'(x), tanh form.
    func geluBackward(_ grid: KernelGrid, dx: Tensor, x: Tensor, dy: Tensor, n: Int) throws {
        try launch("elementwise", "gelu_backward", grid, [.buffer(dx), .buffer(x), .buffer(dy), .int(n)])
    }

    /// out = gelu(x), erf form.
    func geluErfForward(_ grid: KernelGrid, out: Tensor, x: Tensor, n: Int) throws {
        try launch("elementwise", "gelu_erf_forward", grid, [.buffer(out), .buffer(x), .int(n)])
    }

    /// dx = dy · gelu'(x), erf form.
    func geluErfBackward(_ grid: KernelGrid, dx: Tensor, x: Tensor, dy: Tensor, n: Int) throws {
        try launch("elementwise", "gelu_erf_backward", grid, [.buffer(dx), .buffer(x), .buffer(dy), .int(n)])
    }

    /// out = silu(gate) · up.
    func swigluForward(_ grid: KernelGrid, out: Tensor, gate: Tensor, up: Tensor, n: Int) throws {
        try launch("elementwise", "swiglu_forward", grid, [.buffer(out), .buffer(gate), .buffer(up), .int(n)])
    }

    /// dgate and dup of SwiGLU for dy.
    func swigluBackward(_ grid: KernelGrid, dgate: Tensor, dup: Tensor, gate: Tensor, up: Tensor, dy: Tensor,
                        n: Int) throws {
        try launch("elementwise", "swiglu_backward", grid,
                   [.buffer(dgate), .buffer(dup), .buffer(gate), .buffer(up), .buffer(dy), .int(n)])
    }

    /// out (cols) = column sums of x (rows, cols), of x·y when useY.
    func columnSum(_ grid: KernelGrid, out: Tensor, x: Tensor, y: Tensor, useY: Bool, rows: Int, cols: Int) throws {
        try launch("elementwise", "column_sum", grid,
                   [.buffer(out), .buffer(x), .buffer(y), .bool(useY), .int(rows), .int(cols)])
    }

    /// partial[group] = Σ x over each group's chunk of x (n).
    func sumPartial(_ grid: KernelGrid, partial: Tensor, x: Tensor, n: Int, chunk: Int, scratch: LocalMemory) throws {
        try launch("elementwise", "sum_partial", grid, [.buffer(partial), .buffer(x), .int(n), .int(chunk), .local(scratch)])
    }

    /// out (n) = value[0] · s.
    func fill(_ grid: KernelGrid, out: Tensor, value: Tensor, s: Float, n: Int) throws {
        try launch("elementwise", "fill", grid, [.buffer(out), .buffer(value), .float(s), .int(n)])
    }

    /// part (N, W) = x (N, C)[:, offset ..< offset + W]; grid (W, N).
    func copyColumns(_ grid: KernelGrid, part: Tensor, x: Tensor, N: Int, C: Int, offset: Int, W: Int) throws {
        try launch("elementwise", "copy_columns", grid, [.buffer(part), .buffer(x), .int(N), .int(C), .int(offset), .int(W)])
    }

    /// dx (N, C)[:, offset ..< offset + W] = dpart (N, W); grid (W, N).
    func scatterColumns(_ grid: KernelGrid, dx: Tensor, dpart: Tensor, N: Int, C: Int, offset: Int, W: Int) throws {
        try launch("elementwise", "scatter_columns", grid,
                   [.buffer(dx), .buffer(dpart), .int(N), .int(C), .int(offset), .int(W)])
    }

    /// out = x · mask / (1 − p), element i kept when hash(seed, i) ≥ threshold.
    func dropoutApply(_ grid: KernelGrid, out: Tensor, x: Tensor, n: Int, seedLo: UInt32, seedHi: UInt32,
                      threshold: UInt32, invKeep: Float) throws {
        try launch("elementwise", "dropout_apply", grid,
                   [.buffer(out), .buffer(x), .int(n), .uint(seedLo), .uint(seedHi), .uint(threshold), .float(invKeep)])
    }
}
