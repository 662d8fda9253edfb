import ITuneTensor

/// A layer with named parameters. Names follow Hugging Face's checkpoint keys
/// (`model.layers.0.self_attn.q_proj.weight`), so saving and loading are a walk over them.
public protocol Module: AnyObject {
    /// Every parameter with its full checkpoint name, in a stable order.
    func namedParameters() -> [(String, Tensor)]
}

extension Module {
    public var parameters: [Tensor] { namedParameters().map(\.1) }
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Marks every parameter trainable or frozen. Frozen tensors record nothing on the tape.
    public func setTrainable(_ trainable: Bool) {
        for p in parameters { p.requiresGrad = trainable }
    }
}

/// What a parameter is, so that a random initialiser can treat it as Hugging Face does.
public enum ParameterRole: Sendable {
    case weight      // a projection or embedding: normal(0, std)
    case bias        // zeros
    case normWeight  // ones
    case normBias    // zeros
}

/// Where a model's parameters come from: a checkpoint, or a seeded random initialiser. It is
/// given the checkpoint name and the expected shape.
public typealias WeightSource = (_ name: String, _ shape: [Int], _ role: ParameterRole) throws -> Tensor

/// Hugging Face's initialisation (normal(0, `std`) weights, zero biases, unit norms), seeded
/// per parameter name so that it does not depend on construction order.
public func randomWeights(seed: UInt64, std: Float = 0.02, on device: Device) -> WeightSource {
    return { name, shape, role in
        switch role {
        case .weight: return try Tensor.randn(shape, std: std, seed: seed ^ fnv1a64(name), on: device)
        case .bias, .normBias: return try Tensor.zeros(shape, on: device)
        case .normWeight: return try Tensor.full(shape, 1, on: device)
        }
    }
}

/// As `randomWeights`, with every matrix stored as `dtype` (bf16, f16; f32 is `randomWeights`)
/// and made a chunk of rows at a time (each chunk drawn from its own seed, so the values differ
/// from `randomWeights`'): no f32 copy of a large matrix ever exists, as when a 16-bit
/// checkpoint is loaded. What the benchmarks build their large random models with.
public func randomWeights(seed: UInt64, std: Float = 0.02, storingMatricesAs dtype: DType, on device: Device) -> WeightSource {
    let plain = randomWeights(seed: seed, std: std, on: device)
    guard dtype.isHalfFloat else { return plain }
    return { name, shape, role in
        guard role == .weight, shape.count == 2 else { return try plain(name, shape, role) }
        let (rows, cols) = (shape[0], shape[1])
        let out = try Tensor.empty(shape, dtype: dtype, on: device)
        let chunkRows = max(1, (1 << 20) / max(cols, 1))
        var row0 = 0
        while row0 < rows {
            let n = min(chunkRows, rows - row0)
            let chunk = try noGrad {
                try Tensor.randn([n, cols], std: std, seed: seed ^ fnv1a64(name) ^ UInt64(row0), on: device).converted(to: dtype)
            }
            try out.backend.copy(from: chunk.storage, at: 0, to: out.storage, at: row0 * cols * dtype.byteSize,
                                 byteCount: n * cols * dtype.byteSize)
            row0 += n
        }
        return out
    }
}

/// y = x · Wᵀ + b. weight is (out, in) as `nn.Linear` stores it, bias (out).
public final class Linear: Module {
    public let name: String
    public var weight: Tensor
    public var bias: Tensor?
    /// A LoRA update added to the output, when adapted.
    public var lora: LoRAAdapter?
    /// The frozen weight blockwise quantised (`quantizeBase`); when set, the forward reads it
    /// instead of `weight`.
    public var quantizedWeight: BlockQuantizedMatrix?

    public init(weight: Tensor, bias: Tensor? = nil, name: String = "") {
        self.weight = weight
        self.bias = bias
        self.name = name
    }

    /// Loads or initialises `name.weight` (out, in) and, with `bias`, `name.bias` (out).
    public init(_ name: String, inFeatures: Int, outFeatures: Int, bias: Bool, from source: WeightSource) throws {
        self.name = name
        weight = try source(name + ".weight", [outFeatures, inFeatures], .weight)
        self.bias = bias ? try source(name + ".bias", [outFeatures], .bias) : nil
        // --quantize: the decoder layers' projections become blocks as they are read (and with
        // --quantize-embeddings an untied lm_head).
        if let setting = QuantizeOnLoad.setting, name.contains(".layers.") || (setting.embeddings && name == "lm_head") {
            try quantize(setting)
        }
    }

    /// x is (…, in); returns (…, out).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        // Under LoRA with a frozen f32 or 16-bit weight, no dropout and f32 products: the base
        // and the low-rank product in one op (the sum made by the GEMMs, not a pass of its own).
        if let lora, quantizedWeight == nil, !weight.requiresGrad, x.dtype == .f32, lora.a.dtype == .f32,
           lora.b.dtype == .f32, weight.dtype == .f32 || weight.dtype.isHalfFloat, MatmulPrecision.current == .f32,
           !lora.dropsOut {
            let y = try x.linearWithLowRank(weight, a: lora.a, b: lora.b, scale: lora.scaling)
            return try bias.map { try y + $0 } ?? y
        }
        // QLoRA: the same over the quantised base (its blocks dequantised as the product packs them).
        if let lora, let quantizedWeight, x.dtype == .f32, lora.a.dtype == .f32, lora.b.dtype == .f32,
           MatmulPrecision.current == .f32, !lora.dropsOut {
            let y = try x.linearWithLowRank(quantized: quantizedWeight, a: lora.a, b: lora.b, scale: lora.scaling)
            return try bias.map { try y + $0 } ?? y
        }
        let y: Tensor
        if let quantizedWeight {
            // --quantize: the frozen weight read from its blocks (dequantised inside the GEMM).
            let product = try x.linear(quantized: quantizedWeight)
            y = try bias.map { try product + $0 } ?? product
        } else {
            y = try x.linear(weight, bias: bias, precision: MatmulPrecision.current)
        }
        guard let lora else { return y }
        return try y + lora.delta(x)
    }

    public func namedParameters() -> [(String, Tensor)] {
        [(name + ".weight", weight)] + (bias.map { [(name + ".bias", $0)] } ?? [])
    }
}

/// GPT-2's Conv1D: y = x · W + b with W stored (in, out).
public final class Conv1D: Module {
    public let name: String
    public var weight: Tensor
    public var bias: Tensor
    public var lora: LoRAAdapter?
    /// The frozen weight blockwise quantised (`quantizeBase`) as Wᵀ (out, in), so that its blocks
    /// run along `in` as an nn.Linear's do (bitsandbytes quantises a Conv1D so too: transformers
    /// transposes it into a Linear first); when set, the forward reads it instead of `weight`.
    public var quantizedWeight: BlockQuantizedMatrix?

    public init(_ name: String, inFeatures: Int, outFeatures: Int, from source: WeightSource) throws {
        self.name = name
        weight = try source(name + ".weight", [inFeatures, outFeatures], .weight)
        bias = try source(name + ".bias", [outFeatures], .bias)
        // --quantize: GPT-2's Conv1Ds are all decoder-block projections; blocks as they are read.
        if let setting = QuantizeOnLoad.setting { try quantize(setting) }
    }

    /// x is (…, in); returns (…, out).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try quantizedWeight.map { try x.linear(quantized: $0) + bias } ?? x.matmul(weight) + bias
        guard let lora else { return y }
        return try y + lora.delta(x)
    }

    public func namedParameters() -> [(String, Tensor)] { [(name + ".weight", weight), (name + ".bias", bias)] }
}

/// RMSNorm with a learned scale (C).
public final class RMSNorm: Module {
    public let name: String
    public var weight: Tensor
    public let eps: Float

    public init(_ name: String, dim: Int, eps: Float, from source: WeightSource) throws {
        self.name = name
        weight = try source(name + ".weight", [dim], .normWeight)
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.rmsNorm(weight: weight, eps: eps) }
    public func namedParameters() -> [(String, Tensor)] { [(name + ".weight", weight)] }
}

/// LayerNorm with scale and shift (C).
public final class LayerNorm: Module {
    public let name: String
    public var weight: Tensor
    public var bias: Tensor
    public let eps: Float

    public init(_ name: String, dim: Int, eps: Float, from source: WeightSource) throws {
        self.name = name
        weight = try source(name + ".weight", [dim], .normWeight)
        bias = try source(name + ".bias", [dim], .normBias)
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.layerNorm(weight: weight, bias: bias, eps: eps) }
    public func namedParameters() -> [(String, Tensor)] { [(name + ".weight", weight), (name + ".bias", bias)] }
}

/// A lookup table (V, C): token embeddings, or GPT-2's learned positions.
public final class Embedding: Module {
    public let name: String
    public var weight: Tensor
    /// The frozen table blockwise quantised (`--quantize-embeddings`); when set, lookups read
    /// it instead of `weight`.
    public var quantizedWeight: BlockQuantizedMatrix?

    public init(_ name: String, count: Int, dim: Int, from source: WeightSource) throws {
        self.name = name
        weight = try source(name + ".weight", [count, dim], .weight)
        // --quantize-embeddings: the rotary decoders' token table becomes blocks as it is read.
        if let setting = QuantizeOnLoad.setting, setting.embeddings, name == "model.embed_tokens" { try quantize(setting) }
    }

    /// ids is i32 (…); returns (…, C).
    public func callAsFunction(_ ids: Tensor) throws -> Tensor {
        if let quantizedWeight { return try quantizedWeight.embedding(ids) }
        return try weight.embedding(ids)
    }
    public func namedParameters() -> [(String, Tensor)] { [(name + ".weight", weight)] }
}
