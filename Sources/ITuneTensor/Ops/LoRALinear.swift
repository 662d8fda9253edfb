import Foundation

// LoRA's adapted linear layer as one op: y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ with a frozen W. The low-rank
// product joins the base product (on the CPU the K + r product of CPU/GemmLowRank.swift, in the
// same pass over the output; on OpenCL a second GEMM that accumulates, beta 1), and in the
// backward the input gradient's two terms (dY·W and s·(dY·B)·A) likewise: no pass of its own for
// either sum, no second (tokens × out) tensor (PEFT adds the two outputs).

/// The frozen base of an adapted linear layer: a weight tensor (f32 or stored 16-bit) or a
/// blockwise-quantised matrix (--quantize), both (out, in).
enum LowRankBase {
    case weight(Tensor)
    case quantized(BlockQuantizedMatrix)

    var outFeatures: Int {
        switch self { case let .weight(w): return w.shape[0]; case let .quantized(q): return q.rows }
    }
    var inFeatures: Int {
        switch self { case let .weight(w): return w.shape[1]; case let .quantized(q): return q.cols }
    }
    var describe: String {
        switch self {
        case let .weight(w): return "weight \(w.shape)"
        case let .quantized(q): return "\(q.format.rawValue) weight [\(q.rows), \(q.cols)]"
        }
    }
}

extension Tensor {
    /// self (…, in) · weightᵀ (out, in) + scale · (self · aᵀ) · bᵀ, with a (r, in), b (out, r);
    /// the weight frozen (no gradient), f32 or stored 16-bit; self, a and b f32.
    public func linearWithLowRank(_ weight: Tensor, a: Tensor, b: Tensor, scale: Float) throws -> Tensor {
        guard weight.rank == 2 else {
            throw TensorError.shapeMismatch(op: "linearWithLowRank", "x \(shape), weight \(weight.shape), A \(a.shape), B \(b.shape): need x of rank ≥ 2 and matrices")
        }
        guard !weight.requiresGrad else {
            throw TensorError.invalidArgument(op: "linearWithLowRank", "the weight must be frozen (LoRA's base); a trained weight takes linear and the adapter's own products")
        }
        return try linearWithLowRank(base: .weight(weight), a: a, b: b, scale: scale)
    }

    /// The same over a quantised frozen base (QLoRA): on the CPU the base's blocks are
    /// dequantised as the K + r product packs them, so that the adapter's term joins the base
    /// product as it does over an f32 weight; elsewhere the quantised product and an accumulating
    /// low-rank one.
    public func linearWithLowRank(quantized weight: BlockQuantizedMatrix, a: Tensor, b: Tensor, scale: Float) throws -> Tensor {
        try linearWithLowRank(base: .quantized(weight), a: a, b: b, scale: scale)
    }

    private func linearWithLowRank(base: LowRankBase, a: Tensor, b: Tensor, scale: Float) throws -> Tensor {
        guard rank >= 2, a.rank == 2, b.rank == 2 else {
            throw TensorError.shapeMismatch(op: "linearWithLowRank", "x \(shape), \(base.describe), A \(a.shape), B \(b.shape): need x of rank ≥ 2 and matrices")
        }
        let inF = shape[rank - 1], outF = base.outFeatures, r = a.shape[0]
        guard base.inFeatures == inF, a.shape[1] == inF, b.shape == [outF, r] else {
            throw TensorError.shapeMismatch(op: "linearWithLowRank", "x \(shape) · \(base.describe)ᵀ + (x · A \(a.shape)ᵀ) · B \(b.shape)ᵀ: the features differ")
        }
        guard dtype == .f32, a.dtype == .f32, b.dtype == .f32 else {
            throw TensorError.invalidArgument(op: "linearWithLowRank", "x, A and B must be f32, not \(dtype.rawValue), \(a.dtype.rawValue), \(b.dtype.rawValue)")
        }
        let lead = Array(shape.dropLast())
        let M = lead.reduce(1, *)
        let x = rank == 2 ? self : try reshaped([M, inF])
        // t = s · x · Aᵀ (tokens × r), the scale folded in here once.
        let t = try Tensor.empty([M, r], on: device)
        try gemm(x, a, into: t, transA: false, transB: true, M: M, N: r, K: inF, batch: 1, alpha: scale)
        let out = try Tensor.empty([M, outF], on: device)
        try gemmPlusLowRank(x, base, transB: true, t, b, transB2: true, into: out, M: M, N: outF, K: inF, r: r)

        // dA reads x (kept, or its recipe made again), dX the frozen weight and A, dB the
        // (tokens × r) product t, kept as made.
        let keptX = a.requiresGrad ? x.keptForBackward() : nil
        let keptBase: (() throws -> LowRankBase)?
        switch base {
        case let .weight(weight):
            let kept = x.requiresGrad ? weight.keptForBackward() : nil
            keptBase = kept.map { k in { .weight(try k()) } }
        case .quantized:
            keptBase = x.requiresGrad ? { base } : nil
        }
        let inputs: [Tensor]
        if case let .weight(weight) = base { inputs = [x, weight, a, b] } else { inputs = [x, a, b] }
        // The closure must not capture `inputs`: holding x there keeps every adapted layer's
        // input alive until the backward, where keptX lets a recomputable one (a norm's output)
        // be freed and made again (+330 MB at the 135M LoRA step when it did).
        let weightIsInput = inputs.count == 4
        let needsG = x.requiresGrad || a.requiresGrad
        GradientTape.record("linearWithLowRank", inputs: inputs, output: out) { dY in
            let dev = dY.device
            var dX: Tensor? = nil, dA: Tensor? = nil, dB: Tensor? = nil
            if b.requiresGrad {
                let g = try Tensor.empty([outF, r], on: dev)
                try gemm(dY, t, into: g, transA: true, transB: false, M: outF, N: r, K: M, batch: 1)
                dB = g
            }
            if needsG {
                // g = s · dY · B (tokens × r): the gradient of the low-rank product.
                let g = try Tensor.empty([M, r], on: dev)
                try gemm(dY, b, into: g, transA: false, transB: false, M: M, N: r, K: outF, batch: 1, alpha: scale)
                if let keptX {
                    let xv = try keptX()
                    let da = try Tensor.empty([r, inF], on: dev)
                    try gemm(g, xv, into: da, transA: true, transB: false, M: r, N: inF, K: M, batch: 1)
                    dA = da
                }
                if let keptBase {
                    let dx = try Tensor.empty([M, inF], on: dev)
                    try gemmPlusLowRank(dY, try keptBase(), transB: false, g, a, transB2: false, into: dx, M: M, N: inF, K: outF, r: r)
                    dX = dx
                }
            }
            return weightIsInput ? [dX, nil, dA, dB] : [dX, dA, dB]
        }
        return rank == 2 ? out : try out.reshaped(lead + [outF])
    }
}

/// out (M,N) = a (M,K) · op(base) + a2 (M,r) · op(b2), a and a2 row-major f32, the base an f32,
/// 16-bit or quantised matrix (op: transposed where asked). On the CPU, where the shape takes the
/// packed path, one K + r product (cpuSgemmPlusLowRank) whose B packer reads the base in its own
/// storage; elsewhere the two products, the second accumulating (beta 1).
private func gemmPlusLowRank(_ a: Tensor, _ base: LowRankBase, transB: Bool, _ a2: Tensor, _ b2: Tensor, transB2: Bool,
                             into out: Tensor, M: Int, N: Int, K: Int, r: Int) throws {
    let storage: String
    var operands = [a, a2, b2, out]
    switch base {
    case let .weight(b):
        storage = b.dtype == .f32 ? "" : " \(b.dtype.rawValue)"
        operands.insert(b, at: 1)
    case let .quantized(q):
        storage = " \(q.format.rawValue)"
    }
    let profiled = { "matmul n\(transB ? "t" : "n") \(M)×\(N)×\(K)+\(r)" + storage }
    var baseFits = true
    if case let .weight(b) = base { baseFits = b.dtype == .f32 || b.dtype.isHalfFloat }
    if out.device == .cpu, cpuSgemmPlusLowRankApplies(M: M, N: N, K: K, r: r), baseFits,
       a.dtype == .f32, a2.dtype == .f32, b2.dtype == .f32, out.dtype == .f32,
       case .cpu = try execution("matmul", operands, profiledAs: profiled) {
        let packB: GemmBPacker
        switch base {
        case let .weight(b):
            let ldb = transB ? K : N
            packB = b.dtype.isHalfFloat
                ? storedBPacker(w16RowReader(b.storage.host.assumingMemoryBound(to: UInt16.self), format: b.dtype, ldb: ldb),
                                transB: transB)
                : f32BPacker(transB: transB, B: b.floats, ldb: ldb)
        case let .quantized(q):
            packB = storedBPacker(q.rowReader, transB: transB)
        }
        _ = cpuSgemmPlusLowRank(M: M, N: N, K: K, A: a.floats, lda: K, packB: packB, r: r, A2: a2.floats, lda2: r,
                                B2: b2.floats, ldb2: transB2 ? r : N, transB2: transB2, beta: 0, C: out.floats, ldc: N)
        return
    }
    switch base {
    case let .weight(b): try gemm(a, b, into: out, transA: false, transB: transB, M: M, N: N, K: K, batch: 1)
    case let .quantized(q): try a.quantizedProduct(q, transposed: transB, into: out, M: M, N: N, K: K)
    }
    try gemm(a2, b2, into: out, transA: false, transB: transB2, M: M, N: N, K: r, batch: 1, beta: 1)
}
