import Foundation

// Slices along the last dim (GPT-2's packed q,k,v projection). Kernels: Kernels/elementwise.cl.

extension Tensor {
    /// self[..., offset ..< offset + width]: self is (…, C); the result is (…, width).
    public func columns(_ offset: Int, _ width: Int) throws -> Tensor {
        guard let C = shape.last, offset >= 0, width >= 0, offset + width <= C else {
            throw TensorError.invalidArgument(op: "columns", "columns \(offset)..<\(offset + width) of shape \(shape)")
        }
        let N = count / max(C, 1)
        let out = try Tensor.empty(Array(shape.dropLast()) + [width], on: device)
        switch try execution("columns", self) {
        case .cpu:
            let x = floats, o = out.floats
            CPUParallel.forEach(N, grain: max(1, 16384 / max(width, 1))) { rows in
                for n in rows { (o + n * width).update(from: x + n * C + offset, count: width) }
            }
        case let .opencl(cl):
            try cl.launch("elementwise", "copy_columns", global: [width, N],
                          [.tensor(out), .tensor(self), .int(N), .int(C), .int(offset), .int(width)])
        }
        let inputShape = shape
        GradientTape.record("columns", inputs: [self], output: out) { g in
            let dx = try Tensor.zeros(inputShape, on: g.device)
            switch try execution("columns", g) {
            case .cpu:
                let d = dx.floats, gp = g.floats
                CPUParallel.forEach(N, grain: max(1, 16384 / max(width, 1))) { rows in
                    for n in rows { (d + n * C + offset).update(from: gp + n * width, count: width) }
                }
            case let .opencl(cl):
                try cl.launch("elementwise", "scatter_columns", global: [width, N],
                              [.tensor(dx), .tensor(g), .int(N), .int(C), .int(offset), .int(width)])
            }
            return [dx]
        }
        return out
    }

    /// Splits the last dim into consecutive parts of the given widths.
    public func split(lastDim widths: [Int]) throws -> [Tensor] {
        guard widths.reduce(0, +) == shape.last else {
            throw TensorError.shapeMismatch(op: "split", "widths \(widths) do not add up to the last dim of \(shape)")
        }
        var offset = 0
        return try widths.map { w in defer { offset += w }; return try columns(offset, w) }
    }
}
