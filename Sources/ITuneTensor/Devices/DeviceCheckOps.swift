import Foundation

// The ops `itune-gpu devices --check` runs, each on small and odd shapes (sizes that are not
// multiples of any work-group or tile size, rows shorter and longer than a reduction group),
// forward and, where the op has one, backward.

/// How close the device must come to the CPU path (DESIGN.md, "Numbers that must hold").
public enum CheckTolerance: String, Sendable {
    /// 1e-5 relative (1e-6 absolute near zero): each output element is one formula of its inputs.
    case elementwise
    /// 1e-4 relative (1e-5 absolute): sums in another order (reductions, norms, matmul, attention).
    case reduction
    /// Bit for bit: the same integer arithmetic (dropout masks).
    case exact

    public var relative: Float {
        switch self {
        case .elementwise: return 1e-5
        case .reduction: return 1e-4
        case .exact: return 0
        }
    }

    public var absolute: Float {
        switch self {
        case .elementwise: return 1e-6
        case .reduction: return 1e-5
        case .exact: return 0
        }
    }
}

/// One op of the check: inputs of `shapes` (seeded values in [-1, 1)) and a function that maps
/// them, on whichever device they live, to the tensor compared.
struct CheckedOp {
    var name: String
    var tolerance: CheckTolerance
    var shapes: [[Int]]
    /// Compare the gradients of Σ f(x)·w (fixed random w) for every input as well.
    var backward = true
    /// The GEMM the device must use for this op (matmul is checked with both).
    var gemm: GemmImplementation? = nil
    /// Inputs in [0, 1) instead of [-1, 1): long dot products then do not cancel to near zero,
    /// where f32 rounding of either side (≈ √K·ε·|terms|) would exceed a relative tolerance.
    var nonNegative = false
    var body: ([Tensor]) throws -> Tensor
}

extension CheckedOp {
    /// Every op of the runtime, in the order `devices --check` prints them.
    static let all: [CheckedOp] = elementwise + reductions + matmuls + attention + losses + others

    static let elementwise: [CheckedOp] = [
        CheckedOp(name: "add (broadcast)", tolerance: .elementwise, shapes: [[3, 33], [33]]) { try $0[0] + $0[1] },
        CheckedOp(name: "mul (broadcast)", tolerance: .elementwise, shapes: [[3, 33], [33]]) { try $0[0] * $0[1] },
        CheckedOp(name: "scale", tolerance: .elementwise, shapes: [[2, 257]]) { try $0[0].scaled(by: 0.37) },
        CheckedOp(name: "silu", tolerance: .elementwise, shapes: [[2, 257]]) { try $0[0].silu() },
        CheckedOp(name: "gelu (tanh)", tolerance: .elementwise, shapes: [[2, 257]]) { try $0[0].gelu() },
        CheckedOp(name: "gelu (exact)", tolerance: .elementwise, shapes: [[2, 257]]) { try $0[0].geluExact() },
        CheckedOp(name: "swiglu", tolerance: .elementwise, shapes: [[2, 127], [2, 127]]) {
            try Tensor.swiglu(gate: $0[0], up: $0[1])
        },
        CheckedOp(name: "rope", tolerance: .elementwise, shapes: [[2, 7, 3, 34]]) { inputs in
            let device = inputs[0].device
            let table = try RoPETable(headDim: 34, maxPositions: 64, theta: 10_000, on: device)
            let positions: [Int32] = [0, 5, 63, 2, 17, 9, 1, 40, 3, 3, 8, 61, 0, 12]
            return try inputs[0].rope(table, positions: Tensor(indices: positions, shape: [2, 7], on: device))
        },
        CheckedOp(name: "columns (slice)", tolerance: .elementwise, shapes: [[3, 35]]) { try $0[0].columns(1, 33) },
        CheckedOp(name: "dropout", tolerance: .exact, shapes: [[257]]) { try $0[0].dropout(p: 0.3, seed: 0x5EED_0F_C43C) },
    ]

    static let reductions: [CheckedOp] = [
        CheckedOp(name: "sum", tolerance: .reduction, shapes: [[4097]]) { try $0[0].sum() },
        CheckedOp(name: "mean", tolerance: .reduction, shapes: [[33, 3]]) { try $0[0].mean() },
        CheckedOp(name: "softmax (short rows)", tolerance: .reduction, shapes: [[7, 33]]) { try $0[0].softmax() },
        CheckedOp(name: "softmax (long rows)", tolerance: .reduction, shapes: [[5, 1031]]) { try $0[0].softmax() },
        CheckedOp(name: "rmsnorm", tolerance: .reduction, shapes: [[7, 257], [257]]) {
            try $0[0].rmsNorm(weight: $0[1], eps: 1e-5)
        },
        CheckedOp(name: "layernorm", tolerance: .reduction, shapes: [[7, 257], [257], [257]]) {
            try $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-5)
        },
        CheckedOp(name: "cosine similarity", tolerance: .reduction, shapes: [[4, 33], [4, 33]]) {
            try $0[0].cosineSimilarity($0[1])
        },
        CheckedOp(name: "sum of squares (clip)", tolerance: .reduction, shapes: [[4099]], backward: false) {
            try Tensor([try $0[0].sumOfSquares()], shape: [1])
        },
    ]

    static let matmuls: [CheckedOp] = GemmImplementation.allCases.flatMap { gemm -> [CheckedOp] in
        let label = gemm == .clblast ? "CLBlast" : "gemm.cl"
        let ops: [CheckedOp] = [
            CheckedOp(name: "matmul \(label)", tolerance: .reduction, shapes: [[33, 127], [127, 7]], gemm: gemm) {
                try $0[0].matmul($0[1])
            },
            CheckedOp(name: "matmul \(label) batched ᵀ", tolerance: .reduction, shapes: [[3, 5, 17], [3, 9, 5]],
                      gemm: gemm) {
                try $0[0].matmul($0[1], transposeA: true, transposeB: true)
            },
            // Odd sizes over several tiles of gemm.cl in each direction.
            CheckedOp(name: "matmul \(label) 387×385×391", tolerance: .reduction, shapes: [[387, 385], [385, 391]],
                      gemm: gemm, nonNegative: true) {
                try $0[0].matmul($0[1])
            },
        ] + (gemm == .clblast ? [
            // Above CLBlast's direct-kernel threshold (m·n·k ≥ XGEMM_MIN_INDIRECT_SIZE³; on PoCL
            // between 340M and 906M): its indirect GEMM, whose work-groups come from its
            // database (128 work-items on PoCL), is the one a small device's limit refuses.
            // Forward only: the backward's products are the same kernel.
            CheckedOp(name: "matmul CLBlast 971×977×983", tolerance: .reduction, shapes: [[971, 977], [977, 983]],
                      backward: false, gemm: gemm, nonNegative: true) {
                try $0[0].matmul($0[1])
            },
        ] : [])
        return ops
    } + [(QuantFormat.nf4, true), (.int8, false)].map { format, dq in
        // A quantised base's projection (--quantize): the device reads the blocks; the backward
        // checks the input gradient (g·W, the other layout of the same blocks).
        CheckedOp(name: "linear \(format.rawValue)\(dq ? " double-quant" : "") 67×130·(70×130)ᵀ", tolerance: .reduction,
                  shapes: [[67, 130]]) { inputs in
            var g = SplitMix64(seed: 0xB10C)
            let w = (0..<(70 * 130)).map { _ in 0.1 * (2 * g.nextFloat() - 1) }
            let q = try w.withUnsafeBufferPointer {
                try BlockQuantizedMatrix(quantizing: $0, rows: 70, cols: 130, format: format, doubleQuant: dq)
            }
            return try inputs[0].linear(quantized: q)
        }
    }

    static let attention: [CheckedOp] = [
        CheckedOp(name: "attention (causal, GQA)", tolerance: .reduction,
                  shapes: [[2, 33, 4, 20], [2, 33, 2, 20], [2, 33, 2, 20]]) {
            try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2])
        },
        CheckedOp(name: "attention (decode, Tq<Tk)", tolerance: .reduction,
                  shapes: [[2, 5, 4, 16], [2, 19, 2, 16], [2, 19, 2, 16]]) {
            try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2])
        },
    ]

    static let losses: [CheckedOp] = [
        CheckedOp(name: "cross-entropy", tolerance: .reduction, shapes: [[7, 33]]) { inputs in
            let targets: [Int32] = [3, 0, -100, 32, 7, 7, 19]
            return try inputs[0].crossEntropy(targets: Tensor(indices: targets, shape: [7], on: inputs[0].device))
        },
        CheckedOp(name: "linear cross-entropy", tolerance: .reduction, shapes: [[7, 20], [33, 20]]) { inputs in
            let targets: [Int32] = [1, -100, 32, 0, 5, 5, 30]
            return try inputs[0].linearCrossEntropy(weight: inputs[1],
                                                    targets: Tensor(indices: targets, shape: [7], on: inputs[0].device),
                                                    chunkRows: 3)
        },
    ]

    static let others: [CheckedOp] = [
        CheckedOp(name: "embedding", tolerance: .elementwise, shapes: [[33, 20]]) { inputs in
            let ids: [Int32] = [0, 32, 5, 5, 17, 1, 32]
            return try inputs[0].embedding(Tensor(indices: ids, shape: [7], on: inputs[0].device))
        },
        CheckedOp(name: "adamw step", tolerance: .elementwise, shapes: [[257], [257], [257], [257]], backward: false) { inputs in
            let (p, g, m) = (inputs[0], inputs[1], inputs[2])
            let v = try inputs[3] * inputs[3]  // second moments are never negative
            try p.adamWUpdate(grad: g, m: m, v: v, step: 3, config: AdamWConfig(learningRate: 1e-2, weightDecay: 0.1))
            return try Tensor.concatenated([p, m, v], axis: 0)
        },
    ]
}
