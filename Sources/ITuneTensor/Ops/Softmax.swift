import Foundation

// Softmax over the last dim. Kernels: Kernels/softmax.cl.

extension Tensor {
    /// Softmax over the last dimension. self is (N, C) (any leading dims); so is the result.
    public func softmax() throws -> Tensor {
        guard let C = shape.last, C > 0 else { throw TensorError.shapeMismatch(op: "softmax", "needs a non-empty last dim, got \(shape)") }
        let N = count / C
        let y = try Tensor.empty(shape, on: device)
        switch try execution("softmax", self) {
        case .cpu:
            let x = floats, o = y.floats
            CPUParallel.forEach(N, grain: max(1, 4096 / C)) { rows in
                for r in rows { softmaxRowCPU(x + r * C, o + r * C, C) }
            }
        case let .opencl(cl):
            let ls = try cl.rowGroupSize(long: C >= 256, kernel: "softmax_forward", family: "softmax")
            try cl.softmaxForward(.rows(N, groupSize: ls), y: y, x: self, C: C, scratch: .floats(ls))
        }
        // The output is kept for the backward pass: dx needs only y.
        GradientTape.record("softmax", inputs: [self], output: y) { dy in
            let dx = try Tensor.empty(y.shape, on: y.device)
            switch try execution("softmax", y, dy) {
            case .cpu:
                let yp = y.floats, d = dy.floats, o = dx.floats
                CPUParallel.forEach(N, grain: max(1, 4096 / C)) { rows in
                    for r in rows { softmaxBackwardRow(yp + r * C, d + r * C, o + r * C, C) }
                }
            case let .opencl(cl):
                let ls = try cl.rowGroupSize(long: C >= 256, kernel: "softmax_backward", family: "softmax")
                try cl.softmaxBackward(.rows(N, groupSize: ls), dx: dx, y: y, dy: dy, C: C, scratch: .floats(ls))
            }
            return [dx]
        }
        return y
    }
}

/// y = softmax(x) for one row of C values (max subtracted for stability).
@inline(__always)
func softmaxRowCPU(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ C: Int) {
    let m = maxOf(x, C)
    scaleRow(y, C, 1 / expShifted(x, y, C, shift: m))
}
