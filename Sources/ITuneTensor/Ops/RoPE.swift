import Foundation

// Rotary position embedding in transformers' rotate-half convention. Kernels: Kernels/rope.cl.

/// cos/sin tables of rotary embeddings, each (maxPositions, D/2), built once per model.
///
/// The values are computed in Float32 the way transformers does, so that logits match it:
/// inv_freq[i] = 1 / theta^(Float(2i)/Float(D)) (Float32 pow), angle = Float(position) · inv_freq[i]
/// (a Float32 multiply), then Float32 cos/sin of that angle.
public struct RoPETable {
    /// (maxPositions, D/2)
    public let cos: Tensor, sin: Tensor
    /// D, the size of one head vector the table rotates.
    public let headDim: Int
    public var maxPositions: Int { cos.shape[0] }

    /// The default rotary frequencies of Llama-family models: inv_freq[i] = 1 / theta^(2i/D).
    public init(headDim: Int, maxPositions: Int, theta: Float, on device: Device) throws {
        guard headDim > 0, headDim % 2 == 0 else {
            throw TensorError.invalidArgument(op: "RoPETable", "headDim must be even and positive, got \(headDim)")
        }
        guard theta > 0 else { throw TensorError.invalidArgument(op: "RoPETable", "theta must be positive, got \(theta)") }
        let inverse = (0..<headDim / 2).map { i in 1 / powf(theta, Float(2 * i) / Float(headDim)) }
        try self.init(inverseFrequencies: inverse, maxPositions: maxPositions, on: device)
    }

    /// With explicit inverse frequencies (D/2 of them), for rope_scaling types such as llama3
    /// that the model layer computes.
    public init(inverseFrequencies: [Float], maxPositions: Int, on device: Device) throws {
        let half = inverseFrequencies.count
        guard half > 0 else { throw TensorError.invalidArgument(op: "RoPETable", "no inverse frequencies given") }
        guard maxPositions > 0 else {
            throw TensorError.invalidArgument(op: "RoPETable", "maxPositions must be positive, got \(maxPositions)")
        }
        var cosValues = [Float](repeating: 0, count: maxPositions * half)
        var sinValues = [Float](repeating: 0, count: maxPositions * half)
        cosValues.withUnsafeMutableBufferPointer { cp in
            sinValues.withUnsafeMutableBufferPointer { sp in
                let c = cp.baseAddress!, s = sp.baseAddress!
                inverseFrequencies.withUnsafeBufferPointer { inv in
                    // Long contexts make this millions of cos/sin; spread the positions over the cores.
                    CPUParallel.forEach(maxPositions, grain: max(1, 4096 / half)) { positions in
                        for p in positions {
                            for i in 0..<half {
                                let angle = Float(p) * inv[i]
                                c[p * half + i] = cosf(angle)
                                s[p * half + i] = sinf(angle)
                            }
                        }
                    }
                }
            }
        }
        cos = try Tensor(cosValues, shape: [maxPositions, half], on: device)
        sin = try Tensor(sinValues, shape: [maxPositions, half], on: device)
        headDim = 2 * half
    }
}

extension Tensor {
    /// Rotary position embedding (rotate-half, as transformers' Llama): for each head vector
    /// x = (x1, x2) split in halves, out = x·cos + rotate_half(x)·sin with rotate_half(x) = (−x2, x1),
    /// cos/sin at (position, i mod D/2). self is (B,T,H,D); positions an i32 tensor (B,T) or (T)
    /// of position ids (packed sequences restart them). Returns (B,T,H,D).
    public func rope(_ table: RoPETable, positions: Tensor) throws -> Tensor {
        guard dtype == .f32 else { throw TensorError.dtypeMismatch(op: "rope", expected: .f32, got: dtype) }
        guard positions.dtype == .i32 else { throw TensorError.dtypeMismatch(op: "rope", expected: .i32, got: positions.dtype) }
        guard rank == 4 else { throw TensorError.shapeMismatch(op: "rope", "input must be (B,T,H,D), got \(shape)") }
        let (B, T, H, D) = (shape[0], shape[1], shape[2], shape[3])
        guard D == table.headDim else {
            throw TensorError.shapeMismatch(op: "rope", "head dim \(D) of input \(shape) but the table is for head dim \(table.headDim)")
        }
        let batched: Bool
        if positions.shape == [B, T] { batched = true } else if positions.shape == [T] { batched = false } else {
            throw TensorError.shapeMismatch(op: "rope", "positions must be (B,T) = [\(B), \(T)] or (T) = [\(T)], got \(positions.shape)")
        }
        try checkSameDevice("rope", self, positions, table.cos, table.sin)
        // Checked on the host for both backends: a kernel would read outside the table (or
        // silently clamp) instead. Position ids are B·T values, cheap to read back.
        let ids = try positions.toIndices()
        let P = table.maxPositions
        if let k = ids.firstIndex(where: { $0 < 0 || Int($0) >= P }) {
            throw TensorError.invalidArgument(op: "rope", "position id \(ids[k]) (at index \(k) of positions \(positions.shape)) is outside the RoPE table's \(P) positions 0..<\(P)")
        }
        let x = self
        let out = try ropeRotate(x, table, positions, batched: batched, sign: 1, B: B, T: T, H: H, D: D)
        // The backward turns dy by the opposite angle; positions and tables get no gradient.
        // The backward reads no value of x (only dy): x is not kept.
        let xNeeds = x.requiresGrad
        GradientTape.record("rope", inputs: [x, positions, table.cos, table.sin], output: out) { dy in
            let dx = xNeeds
                ? try ropeRotate(dy, table, positions, batched: batched, sign: -1, B: B, T: T, H: H, D: D) : nil
            return [dx, nil, nil, nil]
        }
        return out
    }
}

// x and out are (B,T,H,D); table.cos/sin (P, D/2); positions (B,T) or (T), already validated.
// out[i] = x1·cos − x2·(sign·sin), out[i + D/2] = x2·cos + x1·(sign·sin) for i < D/2.
private func ropeRotate(_ x: Tensor, _ table: RoPETable, _ positions: Tensor, batched: Bool, sign: Float,
                        B: Int, T: Int, H: Int, D: Int) throws -> Tensor {
    let out = try Tensor.empty(x.shape, on: x.device)
    let half = D / 2
    switch try execution("rope", x, positions, table.cos, table.sin) {
    case .cpu:
        let xp = x.floats, o = out.floats, pos = positions.ints, ct = table.cos.floats, st = table.sin.floats
        CPUParallel.forEach(B * T, grain: max(1, 4096 / (H * D))) { rows in
            for bt in rows {
                let p = Int(pos[batched ? bt : bt % T])
                let cr = ct + p * half, sr = st + p * half
                for h in 0..<H {
                    let xr = xp + (bt * H + h) * D, or = o + (bt * H + h) * D
                    for i in 0..<half {
                        let c = cr[i], s = sign * sr[i]
                        let x1 = xr[i], x2 = xr[i + half]
                        or[i] = x1 * c - x2 * s
                        or[i + half] = x2 * c + x1 * s
                    }
                }
            }
        }
    case let .opencl(cl):
        let pairs = B * T * H * half
        try cl.ropeRotate(.items(pairs, groupSize: try cl.elementwiseGroupSize()), out: out, x: x, cosTable: table.cos,
                          sinTable: table.sin, pos: positions, T: T, H: H, D: D, posBatched: batched, sign: sign,
                          pairs: pairs)
    }
    return out
}
