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
            try cl.copyColumns(KernelGrid(global: [width, N]), part: out, x: self, N: N, C: C, offset: offset, W: width)
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
                try cl.scatterColumns(KernelGrid(global: [width, N]), dx: dx, dpart: g, N: N, C: C, offset: offset,
                                      W: width)
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

// Slices and joins along any axis, as block copies (one per index of the leading dims): the
// KV cache grows by concatenation along T, and generation reads the last position's logits.

extension Tensor {
    /// self[…, start ..< start + length, …] along `axis`.
    public func narrow(axis: Int, start: Int, length: Int) throws -> Tensor {
        guard axis >= 0, axis < rank, start >= 0, length >= 0, start + length <= shape[axis] else {
            throw TensorError.invalidArgument(op: "narrow", "\(start)..<\(start + length) of axis \(axis) of shape \(shape)")
        }
        var outShape = shape
        outShape[axis] = length
        let out = try Tensor.empty(outShape, on: device)
        let inner = shape[(axis + 1)...].reduce(1, *), outer = shape[..<axis].reduce(1, *)
        try copyBlocks(outer: outer, from: self, stride: shape[axis] * inner, offset: start * inner,
                       to: out, stride: length * inner, offset: 0, count: length * inner)
        let inputShape = shape, sourceAxis = shape[axis]
        GradientTape.record("narrow", inputs: [self], output: out) { g in
            let dx = try Tensor.zeros(inputShape, on: g.device)
            try copyBlocks(outer: outer, from: g, stride: length * inner, offset: 0,
                           to: dx, stride: sourceAxis * inner, offset: start * inner, count: length * inner)
            return [dx]
        }
        return out
    }

    /// Joins tensors that agree on every dim but `axis`.
    public static func concatenated(_ parts: [Tensor], axis: Int) throws -> Tensor {
        guard let first = parts.first, axis >= 0, axis < first.rank else {
            throw TensorError.invalidArgument(op: "concatenated", "axis \(axis) of \(parts.map(\.shape))")
        }
        for p in parts where p.rank != first.rank
            || zip(p.shape, first.shape).enumerated().contains(where: { $0.offset != axis && $0.element.0 != $0.element.1 }) {
            throw TensorError.shapeMismatch(op: "concatenated", "\(p.shape) and \(first.shape) differ off axis \(axis)")
        }
        var outShape = first.shape
        outShape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        let out = try Tensor.empty(outShape, on: first.device)
        let inner = first.shape[(axis + 1)...].reduce(1, *), outer = first.shape[..<axis].reduce(1, *)
        var offset = 0
        for p in parts {
            try checkSameDevice("concatenated", first, p)
            try copyBlocks(outer: outer, from: p, stride: p.shape[axis] * inner, offset: 0,
                           to: out, stride: outShape[axis] * inner, offset: offset * inner, count: p.shape[axis] * inner)
            offset += p.shape[axis]
        }
        let widths = parts.map { $0.shape[axis] }
        GradientTape.record("concatenated", inputs: parts, output: out) { g in
            var start = 0
            return try widths.map { w in
                defer { start += w }
                return try noGrad { try g.narrow(axis: axis, start: start, length: w) }
            }
        }
        return out
    }
}

/// For o in 0..<outer: copies `count` floats from src[o·srcStride + srcOffset] to
/// dst[o·dstStride + dstOffset] with the backend's buffer copy (no kernel).
private func copyBlocks(outer: Int, from src: Tensor, stride srcStride: Int, offset srcOffset: Int,
                        to dst: Tensor, stride dstStride: Int, offset dstOffset: Int, count: Int) throws {
    guard count > 0 else { return }
    if srcStride == count && dstStride == count {
        // Contiguous on both sides: one copy.
        try src.backend.copy(from: src.storage, at: srcOffset * 4, to: dst.storage, at: dstOffset * 4,
                             byteCount: outer * count * 4)
        return
    }
    for o in 0..<outer {
        try src.backend.copy(from: src.storage, at: (o * srcStride + srcOffset) * 4, to: dst.storage,
                             at: (o * dstStride + dstOffset) * 4, byteCount: count * 4)
    }
}
