// The kernels of Kernels/convert.cl as typed functions: parameters in the order and under the
// names of the `.cl` signature (KernelSignatureTests checks them against the source).
// x, out (n); format 1 = bf16, 2 = f16 (`DType.w16Format`).

extension OpenCLBackend {
    /// out (16-bit, n) = x (f32, n) rounded to nearest even; grid (n).
    func convertToW16(_ grid: KernelGrid, out: Tensor, x: Tensor, n: Int, format: Int) throws {
        try launch("convert", "convert_to_w16", grid, [.buffer(out), .buffer(x), .int(n), .int(format)])
    }

    /// out (f32, n) = x (16-bit, n), exactly; grid (n).
    func convertFromW16(_ grid: KernelGrid, out: Tensor, x: Tensor, n: Int, format: Int) throws {
        try launch("convert", "convert_from_w16", grid, [.buffer(out), .buffer(x), .int(n), .int(format)])
    }

    /// out (f32, n) = x rounded to bf16 values; grid (n).
    func roundToBf16(_ grid: KernelGrid, out: Tensor, x: Tensor, n: Int) throws {
        try launch("convert", "round_to_bf16", grid, [.buffer(out), .buffer(x), .int(n)])
    }
}
