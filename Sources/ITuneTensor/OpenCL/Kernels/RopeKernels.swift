// The kernel of Kernels/rope.cl as a typed function: parameters in the order and under the
// names of the `.cl` signature (KernelSignatureTests checks them against the source).

extension OpenCLBackend {
    /// Rotates the pairs of x (B,T,H,D) by the angles of cosTable/sinTable (P, D/2) at the
    /// positions pos ((B,T) when posBatched, else (T)); sign −1 is the backward. One work-item
    /// per pair: `pairs` = B·T·H·D/2.
    func ropeRotate(_ grid: KernelGrid, out: Tensor, x: Tensor, cosTable: Tensor, sinTable: Tensor, pos: Tensor,
                    T: Int, H: Int, D: Int, posBatched: Bool, sign: Float, pairs: Int) throws {
        try launch("rope", "rope_rotate", grid,
                   [.buffer(out), .buffer(x), .buffer(cosTable), .buffer(sinTable), .buffer(pos), .int(T), .int(H),
                    .int(D), .bool(posBatched), .float(sign), .int(pairs)])
    }
}
