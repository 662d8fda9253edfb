import Foundation

// RMSNorm (Llama) and LayerNorm (GPT-2) over the last dim. Kernels: Kernels/norm.cl.
//
// The forward keeps per-row statistics (rstd, and mean for LayerNorm) for the backward. The
// weight and bias gradients are column sums over all rows; both backends sum them in a fixed
// order (no atomics), so a step gives the same bits every time on a device.

extension Tensor {
    /// RMSNorm over the last dim, as Llama computes it: y = x · rsqrt(mean(x²) + eps) · weight.
    /// self is (N,C) (any leading dims), weight (C); the result has self's shape.
    public func rmsNorm(weight: Tensor, eps: Float) throws -> Tensor {
        let (N, C) = try normRows("rmsNorm", weight: weight, bias: nil)
        let x = self, shape = self.shape
        // rstd (N) holds 1/sqrt(mean(x²) + eps) of each row. Kept on purpose: the backward
        // needs it, and it is N floats against the N·C of a second pass over x.
        func forward() throws -> (y: Tensor, rstd: Tensor) {
            let y = try Tensor.empty(shape, on: x.device)
            let rstd = try Tensor.empty([N], on: x.device)
            switch try execution("rmsNorm", x, weight) {
            case .cpu:
                let xp = x.floats, w = weight.floats, yp = y.floats, rp = rstd.floats
                CPUParallel.forEach(N, grain: max(1, 4096 / C)) { rows in
                    for row in rows {
                        let xr = xp + row * C, yr = yp + row * C
                        let r = 1 / (cpuChunkSum(xr, C, squared: true) / Float(C) + eps).squareRoot()
                        for c in 0..<C { yr[c] = xr[c] * r * w[c] }
                        rp[row] = r
                    }
                }
            case let .opencl(cl):
                let ls = try cl.rowGroupSize(long: C >= 256, kernel: "rmsnorm_forward", family: "norm")
                try cl.rmsnormForward(.rows(N, groupSize: ls), y: y, rstd: rstd, x: x, weight: weight, C: C, eps: eps,
                                      scratch: .floats(ls))
            }
            return (y, rstd)
        }
        let (y, rstd) = try forward()
        // The output is the input of the projections after the norm; their backward (LoRA's A
        // gradient, a trained weight's gradient) makes it again from x, which this op's backward
        // keeps anyway, instead of keeping a second (N,C) tensor.
        if GradMode.enabled { y.recompute = { try forward().y } }
        GradientTape.record("rmsNorm", inputs: [x, weight], output: y) { dy in
            let dx = x.requiresGrad ? try rmsNormBackwardInput(x: x, weight: weight, rstd: rstd, dy: dy, N: N, C: C) : nil
            let dw = weight.requiresGrad ? try rmsNormBackwardWeight(x: x, rstd: rstd, dy: dy, N: N, C: C) : nil
            return [dx, dw]
        }
        return y
    }

    /// LayerNorm over the last dim, as GPT-2 uses it: y = (x − mean) · rsqrt(var + eps) · weight + bias,
    /// var the biased variance. self is (N,C) (any leading dims), weight and bias (C).
    public func layerNorm(weight: Tensor, bias: Tensor, eps: Float) throws -> Tensor {
        let (N, C) = try normRows("layerNorm", weight: weight, bias: bias)
        let x = self
        let y = try Tensor.empty(shape, on: device)
        // mean and rstd (N) of each row, kept on purpose for the backward (it rebuilds
        // x̂ = (x − mean)·rstd from them instead of storing x̂, which would be N·C floats).
        let mean = try Tensor.empty([N], on: device)
        let rstd = try Tensor.empty([N], on: device)
        switch try execution("layerNorm", x, weight, bias) {
        case .cpu:
            let xp = x.floats, w = weight.floats, b = bias.floats, yp = y.floats, mp = mean.floats, rp = rstd.floats
            CPUParallel.forEach(N, grain: max(1, 4096 / C)) { rows in
                for row in rows {
                    let xr = xp + row * C, yr = yp + row * C
                    let m = cpuChunkSum(xr, C, squared: false) / Float(C)
                    // Two passes: subtracting the mean first keeps the variance accurate when |mean| ≫ std.
                    // One running sum, kept: its 32-lane form moved GPT-2's merged-LoRA logits past
                    // LoRATests' 1e-4 of the adapted model's (1.4e-4), for no measured gain.
                    var v: Float = 0
                    for c in 0..<C { let d = xr[c] - m; v += d * d }
                    let r = 1 / (v / Float(C) + eps).squareRoot()
                    for c in 0..<C { yr[c] = (xr[c] - m) * r * w[c] + b[c] }
                    mp[row] = m
                    rp[row] = r
                }
            }
        case let .opencl(cl):
            let ls = try cl.rowGroupSize(long: C >= 256, kernel: "layernorm_forward", family: "norm")
            try cl.layernormForward(.rows(N, groupSize: ls), y: y, mean: mean, rstd: rstd, x: x, weight: weight,
                                    bias: bias, C: C, eps: eps, scratch: .floats(ls))
        }
        GradientTape.record("layerNorm", inputs: [x, weight, bias], output: y) { dy in
            let dx = x.requiresGrad
                ? try layerNormBackwardInput(x: x, weight: weight, mean: mean, rstd: rstd, dy: dy, N: N, C: C) : nil
            var dw: Tensor?, db: Tensor?
            if weight.requiresGrad || bias.requiresGrad {
                (dw, db) = try layerNormBackwardParams(x: x, mean: mean, rstd: rstd, dy: dy, N: N, C: C)
            }
            return [dx, weight.requiresGrad ? dw : nil, bias.requiresGrad ? db : nil]
        }
        return y
    }

    /// Checks the shapes of a norm over the last dim; returns (rows N, channels C).
    private func normRows(_ op: String, weight: Tensor, bias: Tensor?) throws -> (Int, Int) {
        guard dtype == .f32 else { throw TensorError.dtypeMismatch(op: op, expected: .f32, got: dtype) }
        guard let C = shape.last, C > 0 else {
            throw TensorError.shapeMismatch(op: op, "needs a non-empty last dim, got \(shape)")
        }
        for (what, t) in [("weight", weight), ("bias", bias)] {
            guard let t else { continue }
            guard t.shape == [C], t.dtype == .f32 else {
                throw TensorError.shapeMismatch(op: op, "\(what) must be f32 of shape [\(C)] for input \(shape), got \(t.dtype.rawValue) \(t.shape)")
            }
        }
        return (count / C, C)
    }
}

/// The weight/bias gradients sum each column over blocks of this many rows, then the blocks in
/// order: the blocks give an OpenCL device C·(N/64) work-items instead of C, and the split
/// depends only on N, so the result does not depend on the device's scheduling.
private let normRowsPerPart = 64

// x, dy, dx are (N,C); weight (C); rstd (N).
// dx = r·w·dy − x · r³/C · Σ_c(dy·w·x)
private func rmsNormBackwardInput(x: Tensor, weight: Tensor, rstd: Tensor, dy: Tensor, N: Int, C: Int) throws -> Tensor {
    let dx = try Tensor.empty(x.shape, on: x.device)
    switch try execution("rmsNorm backward", x, dy) {
    case .cpu:
        let xp = x.floats, w = weight.floats, rp = rstd.floats, d = dy.floats, o = dx.floats
        CPUParallel.forEach(N, grain: max(1, 4096 / C)) { rows in
            for row in rows {
                let xr = xp + row * C, dr = d + row * C, or = o + row * C
                let r = rp[row]
                let k = r * r * r * cpuDot(dr, w, C, times: xr) / Float(C)
                for c in 0..<C { or[c] = r * w[c] * dr[c] - xr[c] * k }
            }
        }
    case let .opencl(cl):
        let ls = try cl.rowGroupSize(long: C >= 256, kernel: "rmsnorm_backward_dx", family: "norm")
        try cl.rmsnormBackwardDx(.rows(N, groupSize: ls), dx: dx, x: x, weight: weight, rstd: rstd, dy: dy, C: C,
                                 scratch: .floats(ls))
    }
    return dx
}

// dweight (C) = Σ_rows dy·x·rstd
private func rmsNormBackwardWeight(x: Tensor, rstd: Tensor, dy: Tensor, N: Int, C: Int) throws -> Tensor {
    let dw = try Tensor.empty([C], on: x.device)
    switch try execution("rmsNorm backward", x, dy) {
    case .cpu:
        let xp = x.floats, rp = rstd.floats, d = dy.floats, o = dw.floats
        // Each thread owns a block of columns and walks the rows in order.
        CPUParallel.forEach(C, grain: 64) { cols in
            for c in cols { o[c] = 0 }
            for row in 0..<N {
                let base = row * C, r = rp[row]
                for c in cols { o[c] += d[base + c] * xp[base + c] * r }
            }
        }
    case let .opencl(cl):
        let parts = max(1, (N + normRowsPerPart - 1) / normRowsPerPart)
        let part = parts == 1 ? dw : try Tensor.empty([parts, C], on: x.device)
        try cl.rmsnormDweightPart(KernelGrid(global: [C, parts]), part: part, x: x, rstd: rstd, dy: dy, N: N, C: C,
                                  rowsPerPart: normRowsPerPart)
        if parts > 1 {
            try cl.sumParts(.items(C), out: dw, part: part, parts: parts, C: C)
        }
    }
    return dw
}

// x, dy, dx are (N,C); weight (C); mean, rstd (N).
// With g = dy·w and x̂ = (x − mean)·rstd: dx = rstd · (g − mean(g) − x̂·mean(g·x̂))
private func layerNormBackwardInput(x: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, dy: Tensor,
                                    N: Int, C: Int) throws -> Tensor {
    let dx = try Tensor.empty(x.shape, on: x.device)
    switch try execution("layerNorm backward", x, dy) {
    case .cpu:
        let xp = x.floats, w = weight.floats, mp = mean.floats, rp = rstd.floats, d = dy.floats, o = dx.floats
        CPUParallel.forEach(N, grain: max(1, 4096 / C)) { rows in
            for row in rows {
                let xr = xp + row * C, dr = d + row * C, or = o + row * C
                let m = mp[row], r = rp[row]
                // Σ g and Σ g·x̂ with g = dy·w, x̂ = (x − mean)·rstd (rstd taken out of the sum).
                let sg = cpuDot(dr, w, C), sgx = r * cpuDot(dr, w, C, times: xr, centre: m)
                let mg = sg / Float(C), mgx = sgx / Float(C)
                for c in 0..<C {
                    let xhat = (xr[c] - m) * r
                    or[c] = r * (dr[c] * w[c] - mg - xhat * mgx)
                }
            }
        }
    case let .opencl(cl):
        let ls = try cl.rowGroupSize(long: C >= 256, kernel: "layernorm_backward_dx", family: "norm")
        try cl.layernormBackwardDx(.rows(N, groupSize: ls), dx: dx, x: x, weight: weight, mean: mean, rstd: rstd,
                                   dy: dy, C: C, scratch: .float2s(ls))
    }
    return dx
}

// dweight (C) = Σ_rows dy·x̂, dbias (C) = Σ_rows dy
private func layerNormBackwardParams(x: Tensor, mean: Tensor, rstd: Tensor, dy: Tensor,
                                     N: Int, C: Int) throws -> (Tensor, Tensor) {
    let dw = try Tensor.empty([C], on: x.device)
    let db = try Tensor.empty([C], on: x.device)
    switch try execution("layerNorm backward", x, dy) {
    case .cpu:
        let xp = x.floats, mp = mean.floats, rp = rstd.floats, d = dy.floats, ow = dw.floats, ob = db.floats
        // Each thread owns a block of columns and walks the rows in order.
        CPUParallel.forEach(C, grain: 64) { cols in
            for c in cols { ow[c] = 0; ob[c] = 0 }
            for row in 0..<N {
                let base = row * C, m = mp[row], r = rp[row]
                for c in cols {
                    ow[c] += d[base + c] * ((xp[base + c] - m) * r)
                    ob[c] += d[base + c]
                }
            }
        }
    case let .opencl(cl):
        let parts = max(1, (N + normRowsPerPart - 1) / normRowsPerPart)
        let partW = parts == 1 ? dw : try Tensor.empty([parts, C], on: x.device)
        let partB = parts == 1 ? db : try Tensor.empty([parts, C], on: x.device)
        try cl.layernormDparamsPart(KernelGrid(global: [C, parts]), partW: partW, partB: partB, x: x, mean: mean,
                                    rstd: rstd, dy: dy, N: N, C: C, rowsPerPart: normRowsPerPart)
        if parts > 1 {
            try cl.sumParts(.items(C), out: dw, part: partW, parts: parts, C: C)
            try cl.sumParts(.items(C), out: db, part: partB, parts: parts, C: C)
        }
    }
    return (dw, db)
}
