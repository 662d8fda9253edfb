import Foundation

// LoRA's adapted linear layer as one op: y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ with a frozen W. The low-rank
// product is accumulated into the base product's output by the GEMM (beta 1), and in the
// backward the input gradient's two terms (dY·W and s·(dY·B)·A) likewise into one buffer: no
// pass of its own for either sum, no second (tokens × out) tensor (PEFT adds the two outputs).

extension Tensor {
    /// self (…, in) · weightᵀ (out, in) + scale · (self · aᵀ) · bᵀ, with a (r, in), b (out, r);
    /// the weight frozen (no gradient), f32 or stored 16-bit; self, a and b f32.
    public func linearWithLowRank(_ weight: Tensor, a: Tensor, b: Tensor, scale: Float) throws -> Tensor {
        guard rank >= 2, weight.rank == 2, a.rank == 2, b.rank == 2 else {
            throw TensorError.shapeMismatch(op: "linearWithLowRank", "x \(shape), weight \(weight.shape), A \(a.shape), B \(b.shape): need x of rank ≥ 2 and matrices")
        }
        let inF = shape[rank - 1], outF = weight.shape[0], r = a.shape[0]
        guard weight.shape[1] == inF, a.shape[1] == inF, b.shape == [outF, r] else {
            throw TensorError.shapeMismatch(op: "linearWithLowRank", "x \(shape) · weight \(weight.shape)ᵀ + (x · A \(a.shape)ᵀ) · B \(b.shape)ᵀ: the features differ")
        }
        guard !weight.requiresGrad else {
            throw TensorError.invalidArgument(op: "linearWithLowRank", "the weight must be frozen (LoRA's base); a trained weight takes linear and the adapter's own products")
        }
        guard dtype == .f32, a.dtype == .f32, b.dtype == .f32 else {
            throw TensorError.invalidArgument(op: "linearWithLowRank", "x, A and B must be f32, not \(dtype.rawValue), \(a.dtype.rawValue), \(b.dtype.rawValue)")
        }
        let lead = Array(shape.dropLast())
        let M = lead.reduce(1, *)
        let x = rank == 2 ? self : try reshaped([M, inF])
        let t = try Tensor.empty([M, r], on: device)
        try gemm(x, a, into: t, transA: false, transB: true, M: M, N: r, K: inF, batch: 1)
        let out = try Tensor.empty([M, outF], on: device)
        try gemm(x, weight, into: out, transA: false, transB: true, M: M, N: outF, K: inF, batch: 1)
        try gemm(t, b, into: out, transA: false, transB: true, M: M, N: outF, K: r, batch: 1, alpha: scale, beta: 1)

        // dA reads x (kept, or its recipe made again), dX the frozen weight and A, dB the
        // (tokens × r) product t, kept as made.
        let keptX = a.requiresGrad ? x.keptForBackward() : nil
        let keptW = x.requiresGrad ? weight.keptForBackward() : nil
        let needsG = x.requiresGrad || a.requiresGrad
        GradientTape.record("linearWithLowRank", inputs: [x, weight, a, b], output: out) { dY in
            let dev = dY.device
            var dX: Tensor? = nil, dA: Tensor? = nil, dB: Tensor? = nil
            if b.requiresGrad {
                let g = try Tensor.empty([outF, r], on: dev)
                try gemm(dY, t, into: g, transA: true, transB: false, M: outF, N: r, K: M, batch: 1, alpha: scale)
                dB = g
            }
            guard needsG else { return [nil, nil, nil, dB] }
            // g = s · dY · B (tokens × r): the gradient of the low-rank product.
            let g = try Tensor.empty([M, r], on: dev)
            try gemm(dY, b, into: g, transA: false, transB: false, M: M, N: r, K: outF, batch: 1, alpha: scale)
            if let keptX {
                let xv = try keptX()
                let da = try Tensor.empty([r, inF], on: dev)
                try gemm(g, xv, into: da, transA: true, transB: false, M: r, N: inF, K: M, batch: 1)
                dA = da
            }
            if let keptW {
                let w = try keptW()
                let dx = try Tensor.empty([M, inF], on: dev)
                try gemm(dY, w, into: dx, transA: false, transB: false, M: M, N: inF, K: outF, batch: 1)
                try gemm(g, a, into: dx, transA: false, transB: false, M: M, N: inF, K: r, batch: 1, beta: 1)
                dX = dx
            }
            return [dX, nil, dA, dB]
        }
        return rank == 2 ? out : try out.reshaped(lead + [outF])
    }
}
