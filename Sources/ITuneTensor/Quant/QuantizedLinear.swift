import Foundation

// x · Wᵀ with W a blockwise-quantised frozen weight (nf4, int8). W never requires gradients;
// the op records the gradient of x only (g · W, through the same dequantising GEMM).
//
// CPU: cpuSgemmQuantized dequantises one cache-sized block of W at a time into the GEMM's
// workspace. OpenCL (until a dequantising kernel exists): W is dequantised on the host one panel
// of rows at a time (at most `panelFloats` values) into a per-call scratch tensor on the device,
// and each panel's product is computed there; the f32 matrix never exists whole on either side.

extension BlockQuantizedMatrix {
    /// f32 values of one dequantised panel on an OpenCL device (16 MiB).
    public static let panelFloats = 1 << 22
}

extension Tensor {
    /// self (…, in) · wᵀ, w (out, in) quantised: (…, out).
    /// On OpenCL, W is dequantised `panelFloats` values at a time (tests make it small).
    public func linear(quantized w: BlockQuantizedMatrix, panelFloats: Int = BlockQuantizedMatrix.panelFloats) throws -> Tensor {
        guard dtype == .f32, let K = shape.last, K == w.cols else {
            throw TensorError.shapeMismatch(op: "quantized linear", "input \(dtype.rawValue) \(shape) against a weight of \(w.rows)×\(w.cols) (out, in)")
        }
        let out = try quantizedProduct(w, transposed: true, outer: Array(shape.dropLast()), panelFloats: panelFloats)
        GradientTape.record("linearQuantized", inputs: [self], output: out) { g in
            [try g.quantizedProduct(w, transposed: false, outer: Array(g.shape.dropLast()), panelFloats: panelFloats)]
        }
        return out
    }

    /// self (M, ·) · op(w): op = ᵀ for the forward (M, in) → (M, out), none for the input
    /// gradient (M, out) → (M, in). Records nothing.
    fileprivate func quantizedProduct(_ w: BlockQuantizedMatrix, transposed: Bool, outer: [Int], panelFloats: Int) throws -> Tensor {
        let K = transposed ? w.cols : w.rows, N = transposed ? w.rows : w.cols
        let M = count / max(K, 1)
        switch try execution("quantized linear", self) {
        case .cpu:
            let out = try Tensor.empty(outer + [N], on: device)
            cpuSgemmQuantized(transA: false, transB: transposed, M: M, N: N, K: K, alpha: 1, A: floats, lda: K,
                              B: w, beta: 0, C: out.floats, ldc: N)
            return out
        case .opencl:
            return try noGrad {
                let x = try reshaped([M, K])
                // Panels of whole rows of W (W is (out, in)): forward, a panel gives columns of y
                // (concatenated); backward, a panel is a depth slice of the product (summed).
                let rowsPerPanel = max(1, min(w.rows, max(panelFloats, 1) / max(w.cols, 1)))
                var host = [Float](repeating: 0, count: rowsPerPanel * w.cols)
                var parts: [Tensor] = []
                var sum: Tensor?
                var r0 = 0
                while r0 < w.rows {
                    let rows = min(rowsPerPanel, w.rows - r0)
                    host.withUnsafeMutableBufferPointer { w.dequantize(from: r0 * w.cols, count: rows * w.cols, into: $0.baseAddress!) }
                    let panel = try Tensor(Array(host[0..<(rows * w.cols)]), shape: [rows, w.cols], on: device)
                    if transposed {
                        parts.append(try x.matmul(panel, transposeB: true))
                    } else {
                        let slice = rows == w.rows ? x : try x.columns(r0, rows)
                        let p = try slice.matmul(panel)
                        if let s = sum { try s.addInPlace(p) } else { sum = p }
                    }
                    r0 += rows
                }
                let y: Tensor
                if transposed {
                    y = parts.isEmpty ? try Tensor.zeros([M, N], on: device)
                        : parts.count == 1 ? parts[0] : try Tensor.concatenated(parts, axis: 1)
                } else {
                    y = try sum ?? Tensor.zeros([M, N], on: device)
                }
                return try y.reshaped(outer + [N])
            }
        }
    }
}
