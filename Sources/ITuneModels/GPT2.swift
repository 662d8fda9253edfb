import ITuneTensor

/// One GPT-2 layer: x + attn(ln_1(x)), then h + mlp(ln_2(h)), with Conv1D projections, a
/// packed q,k,v projection and the tanh GELU.
public final class GPT2Block: Module {
    public let ln1, ln2: LayerNorm
    public let attention, attentionOut, fc, proj: Conv1D
    let numHeads, headDim: Int

    init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws {
        let C = c.hiddenSize
        ln1 = try LayerNorm(prefix + ".ln_1", dim: C, eps: c.normEps, from: source)
        attention = try Conv1D(prefix + ".attn.c_attn", inFeatures: C, outFeatures: 3 * C, from: source)
        attentionOut = try Conv1D(prefix + ".attn.c_proj", inFeatures: C, outFeatures: C, from: source)
        ln2 = try LayerNorm(prefix + ".ln_2", dim: C, eps: c.normEps, from: source)
        fc = try Conv1D(prefix + ".mlp.c_fc", inFeatures: C, outFeatures: c.intermediateSize, from: source)
        proj = try Conv1D(prefix + ".mlp.c_proj", inFeatures: c.intermediateSize, outFeatures: C, from: source)
        numHeads = c.numHeads
        headDim = c.headDim
    }

    /// x is (B,T,C); returns (B,T,C).
    public func callAsFunction(_ x: Tensor, cache: KVCache.Layer? = nil, segments: AttentionSegments? = nil) throws -> Tensor {
        let (B, T, C) = (x.shape[0], x.shape[1], x.shape[2])
        let qkv = try attention(ln1(x)).split(lastDim: [C, C, C])
        let heads = try qkv.map { try $0.reshaped([B, T, numHeads, headDim]) }
        var (kh, vh) = (heads[1], heads[2])
        if let cache { (kh, vh) = try cache.append(keys: kh, values: vh) }
        let y = try Tensor.scaledDotProductAttention(q: heads[0], k: kh, v: vh, causal: true, segments: segments)
        let h = try x + attentionOut(y.reshaped([B, T, C]))
        return try h + proj(fc(ln2(h)).gelu())
    }

    public func namedParameters() -> [(String, Tensor)] {
        ln1.namedParameters() + attention.namedParameters() + attentionOut.namedParameters()
            + ln2.namedParameters() + fc.namedParameters() + proj.namedParameters()
    }
}

/// GPT-2 (`GPT2LMHeadModel`): learned positions, LayerNorm, lm_head tied to `wte`.
/// Parameters are named as transformers' state dict does (`transformer.h.0.attn.c_attn.weight`).
public final class GPT2Model: CausalLM {
    public let config: ModelConfig
    public let device: Device
    public let tokenEmbedding, positionEmbedding: Embedding
    public let layers: [GPT2Block]
    public let finalNorm: LayerNorm

    public init(_ c: ModelConfig, on device: Device, from source: WeightSource) throws {
        config = c
        self.device = device
        tokenEmbedding = try Embedding("transformer.wte", count: c.vocabSize, dim: c.hiddenSize, from: source)
        positionEmbedding = try Embedding("transformer.wpe", count: c.maxPositions, dim: c.hiddenSize, from: source)
        layers = try (0..<c.numLayers).map { try GPT2Block("transformer.h.\($0)", c, from: source) }
        finalNorm = try LayerNorm("transformer.ln_f", dim: c.hiddenSize, eps: c.normEps, from: source)
    }

    public func logits(_ ids: Tensor, positions: Tensor? = nil, cache: KVCache? = nil,
                       segments: AttentionSegments? = nil) throws -> Tensor {
        let (B, T) = (ids.shape[0], ids.shape[1])
        let start = cache?.length ?? 0
        guard start + T <= config.maxPositions else {
            throw TensorError.invalidArgument(op: "GPT2Model", "sequence of \(start + T) tokens is longer than n_positions \(config.maxPositions)")
        }
        let pos = try positions ?? Tensor(indices: (Int32(start)..<Int32(start + T)).map { $0 }, shape: [T], on: device)
        var h = try tokenEmbedding(ids) + positionEmbedding(pos)
        for (i, layer) in layers.enumerated() { h = try layer(h, cache: cache?.layer(i), segments: segments) }
        cache?.advance(by: T)
        h = try finalNorm(h)
        return try h.linear(tokenEmbedding.weight).reshaped([B, T, config.vocabSize])
    }

    public func projections() -> [any LoRATarget] {
        layers.flatMap { l -> [any LoRATarget] in [l.attention, l.attentionOut, l.fc, l.proj] }
    }

    public func namedParameters() -> [(String, Tensor)] {
        var out = tokenEmbedding.namedParameters() + positionEmbedding.namedParameters()
        for l in layers { out += l.namedParameters() }
        return out + finalNorm.namedParameters()
    }
}
