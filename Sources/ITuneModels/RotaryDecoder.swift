import ITuneTensor

// The pre-norm rotary decoder that Llama, Mistral, Qwen2 and Phi-3 share: token embeddings,
// layers of x + attn(rmsnorm(x)) then h + mlp(rmsnorm(h)), a final RMSNorm and an lm_head
// (or the embeddings, tied). Families differ only in how attention makes q, k, v and how the
// MLP makes gate and up, so those two parts are the type parameters.

/// Self-attention with rotary positions: (B,T,C) in, (B,T,C) out.
public protocol RotaryAttention: Module {
    /// Loads or initialises the projections under `prefix` (e.g. model.layers.0.self_attn).
    init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws
    /// x is (B,T,C); positions i32 (B,T) or (T). With a cache, earlier keys and values are
    /// prepended and this call's appended.
    func callAsFunction(_ x: Tensor, rope: RoPETable, positions: Tensor, cache: KVCache.Layer?,
                        segments: AttentionSegments?) throws -> Tensor
    /// The projections, in module order, that LoRA can adapt.
    var projections: [any LoRATarget] { get }
}

/// The feed-forward of a decoder layer: (…, C) in, (…, C) out.
public protocol FeedForward: Module {
    init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws
    func callAsFunction(_ x: Tensor) throws -> Tensor
    var projections: [any LoRATarget] { get }
}

/// Rotary grouped-query attention of projected q (B,T,NH·D), k and v (B,T,NKV·D): RoPE on q and
/// k, the cache, causal attention; returns (B,T,NH·D) for the output projection.
func rotarySelfAttention(q: Tensor, k: Tensor, v: Tensor, _ c: ModelConfig, rope: RoPETable, positions: Tensor,
                         cache: KVCache.Layer?, segments: AttentionSegments?) throws -> Tensor {
    let (B, T) = (q.shape[0], q.shape[1])
    let qh = try q.reshaped([B, T, c.numHeads, c.headDim]).rope(rope, positions: positions)
    let kh = try k.reshaped([B, T, c.numKVHeads, c.headDim]).rope(rope, positions: positions)
    let vh = try v.reshaped([B, T, c.numKVHeads, c.headDim])
    let y = try cachedAttention(q: qh, k: kh, v: vh, cache: cache, segments: segments)
    return try y.reshaped([B, T, c.numHeads * c.headDim])
}

/// One pre-norm decoder layer: x + attn(norm(x)), then h + mlp(norm(h)).
public final class PreNormBlock<Attention: RotaryAttention, MLP: FeedForward>: Module {
    public let inputNorm, postAttentionNorm: RMSNorm
    public let attention: Attention
    public let mlp: MLP

    public init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws {
        inputNorm = try RMSNorm(prefix + ".input_layernorm", dim: c.hiddenSize, eps: c.normEps, from: source)
        attention = try Attention(prefix + ".self_attn", c, from: source)
        postAttentionNorm = try RMSNorm(prefix + ".post_attention_layernorm", dim: c.hiddenSize, eps: c.normEps, from: source)
        mlp = try MLP(prefix + ".mlp", c, from: source)
    }

    /// x is (B,T,C); returns (B,T,C).
    public func callAsFunction(_ x: Tensor, rope: RoPETable, positions: Tensor, cache: KVCache.Layer? = nil,
                               segments: AttentionSegments? = nil) throws -> Tensor {
        // Under --grad-checkpoint (training, no cache) only x stays for the backward.
        guard cache == nil else { return try forward(x, rope: rope, positions: positions, cache: cache, segments: segments) }
        return try Tensor.checkpointed(x, parameters: checkpointParameters) {
            try self.forward($0, rope: rope, positions: positions, cache: nil, segments: segments)
        }
    }

    func forward(_ x: Tensor, rope: RoPETable, positions: Tensor, cache: KVCache.Layer?,
                 segments: AttentionSegments?) throws -> Tensor {
        let h = try x + attention(inputNorm(x), rope: rope, positions: positions, cache: cache, segments: segments)
        return try h + mlp(postAttentionNorm(h))
    }

    /// Every tensor the block reads that may train: its weights and its LoRA factors.
    var checkpointParameters: [Tensor] {
        parameters + (attention.projections + mlp.projections).loraFactors
    }

    public func namedParameters() -> [(String, Tensor)] {
        inputNorm.namedParameters() + attention.namedParameters() + postAttentionNorm.namedParameters() + mlp.namedParameters()
    }
}

/// A rotary decoder-only model; `LlamaModel` and `Phi3Model` are its instances.
public final class RotaryDecoderModel<Attention: RotaryAttention, MLP: FeedForward>: CausalLM {
    public let config: ModelConfig
    public let device: Device
    public let embed: Embedding
    public let layers: [PreNormBlock<Attention, MLP>]
    public let norm: RMSNorm
    /// nil when tied to the embeddings.
    public let lmHead: Linear?
    public let rope: RoPETable

    public init(_ c: ModelConfig, on device: Device, from source: WeightSource) throws {
        try c.validate()
        config = c
        self.device = device
        embed = try Embedding("model.embed_tokens", count: c.vocabSize, dim: c.hiddenSize, from: source)
        layers = try (0..<c.numLayers).map { try PreNormBlock("model.layers.\($0)", c, from: source) }
        norm = try RMSNorm("model.norm", dim: c.hiddenSize, eps: c.normEps, from: source)
        lmHead = c.tieWordEmbeddings ? nil
            : try Linear("lm_head", inFeatures: c.hiddenSize, outFeatures: c.vocabSize, bias: false, from: source)
        rope = try RoPETable(inverseFrequencies: c.ropeInverseFrequencies(), maxPositions: c.maxPositions, on: device)
    }

    /// A randomly initialised model (Hugging Face's init: normal(0, 0.02), norms at one).
    public convenience init(_ c: ModelConfig, seed: UInt64 = 0, on device: Device) throws {
        try self.init(c, on: device, from: randomWeights(seed: seed, on: device))
    }

    /// ids is i32 (B,T); returns the final-norm hidden states (B,T,C).
    public func hiddenStates(_ ids: Tensor, positions: Tensor? = nil, cache: KVCache? = nil,
                             segments: AttentionSegments? = nil) throws -> Tensor {
        let T = ids.shape[1]
        let pos = try checkedPositions(positions, count: T, cache: cache)
        var h = try embed(ids)
        for (i, layer) in layers.enumerated() {
            h = try layer(h, rope: rope, positions: pos, cache: cache?.layer(i), segments: segments)
        }
        cache?.advance(by: T)
        return try norm(h)
    }

    public var outputEmbedding: Tensor { lmHead?.weight ?? embed.weight }

    public var quantizedOutputEmbedding: BlockQuantizedMatrix? { lmHead.map(\.quantizedWeight) ?? embed.quantizedWeight }

    public var quantizedEmbeddings: [BlockQuantizedMatrix] {
        [embed.quantizedWeight, lmHead?.quantizedWeight].compactMap { $0 }
    }

    public func projections() -> [any LoRATarget] {
        layers.flatMap { $0.attention.projections + $0.mlp.projections }
    }

    public func namedParameters() -> [(String, Tensor)] {
        var out = embed.namedParameters()
        for l in layers { out += l.namedParameters() }
        out += norm.namedParameters()
        if let lmHead { out += lmHead.namedParameters() }
        return out
    }
}
