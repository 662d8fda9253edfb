import ITuneTensor

/// Self-attention with rotary positions and grouped-query heads.
public final class LlamaAttention: Module {
    public let q, k, v, o: Linear
    let numHeads, numKVHeads, headDim: Int

    init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws {
        q = try Linear(prefix + ".q_proj", inFeatures: c.hiddenSize, outFeatures: c.numHeads * c.headDim, bias: c.qkvBias, from: source)
        k = try Linear(prefix + ".k_proj", inFeatures: c.hiddenSize, outFeatures: c.numKVHeads * c.headDim, bias: c.qkvBias, from: source)
        v = try Linear(prefix + ".v_proj", inFeatures: c.hiddenSize, outFeatures: c.numKVHeads * c.headDim, bias: c.qkvBias, from: source)
        o = try Linear(prefix + ".o_proj", inFeatures: c.numHeads * c.headDim, outFeatures: c.hiddenSize, bias: c.outputBias, from: source)
        numHeads = c.numHeads
        numKVHeads = c.numKVHeads
        headDim = c.headDim
    }

    /// x is (B,T,C); positions i32 (B,T) or (T). Returns (B,T,C). With a cache, the keys and
    /// values of earlier positions are prepended and this call's are appended to it.
    public func callAsFunction(_ x: Tensor, rope: RoPETable, positions: Tensor, cache: KVCache.Layer? = nil,
                               segments: AttentionSegments? = nil) throws -> Tensor {
        let (B, T) = (x.shape[0], x.shape[1])
        let qh = try q(x).reshaped([B, T, numHeads, headDim]).rope(rope, positions: positions)
        var kh = try k(x).reshaped([B, T, numKVHeads, headDim]).rope(rope, positions: positions)
        var vh = try v(x).reshaped([B, T, numKVHeads, headDim])
        if let cache { (kh, vh) = try cache.append(keys: kh, values: vh) }
        let y = try Tensor.scaledDotProductAttention(q: qh, k: kh, v: vh, causal: true, segments: segments)
        return try o(y.reshaped([B, T, numHeads * headDim]))
    }

    public func namedParameters() -> [(String, Tensor)] {
        q.namedParameters() + k.namedParameters() + v.namedParameters() + o.namedParameters()
    }
}

/// The SwiGLU feed-forward: down(silu(gate(x)) * up(x)).
public final class LlamaMLP: Module {
    public let gate, up, down: Linear

    init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws {
        gate = try Linear(prefix + ".gate_proj", inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: c.mlpBias, from: source)
        up = try Linear(prefix + ".up_proj", inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: c.mlpBias, from: source)
        down = try Linear(prefix + ".down_proj", inFeatures: c.intermediateSize, outFeatures: c.hiddenSize, bias: c.mlpBias, from: source)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try down(Tensor.swiglu(gate: gate(x), up: up(x)))
    }

    public func namedParameters() -> [(String, Tensor)] {
        gate.namedParameters() + up.namedParameters() + down.namedParameters()
    }
}

/// One pre-norm decoder layer: x + attn(norm(x)), then h + mlp(norm(h)).
public final class LlamaBlock: Module {
    public let inputNorm, postAttentionNorm: RMSNorm
    public let attention: LlamaAttention
    public let mlp: LlamaMLP

    public init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws {
        inputNorm = try RMSNorm(prefix + ".input_layernorm", dim: c.hiddenSize, eps: c.normEps, from: source)
        attention = try LlamaAttention(prefix + ".self_attn", c, from: source)
        postAttentionNorm = try RMSNorm(prefix + ".post_attention_layernorm", dim: c.hiddenSize, eps: c.normEps, from: source)
        mlp = try LlamaMLP(prefix + ".mlp", c, from: source)
    }

    /// x is (B,T,C); returns (B,T,C).
    public func callAsFunction(_ x: Tensor, rope: RoPETable, positions: Tensor, cache: KVCache.Layer? = nil,
                               segments: AttentionSegments? = nil) throws -> Tensor {
        let h = try x + attention(inputNorm(x), rope: rope, positions: positions, cache: cache, segments: segments)
        return try h + mlp(postAttentionNorm(h))
    }

    public func namedParameters() -> [(String, Tensor)] {
        inputNorm.namedParameters() + attention.namedParameters() + postAttentionNorm.namedParameters() + mlp.namedParameters()
    }
}

/// A Llama-family causal language model (Llama, Mistral, Qwen2).
public final class LlamaModel: CausalLM {
    public let config: ModelConfig
    public let device: Device
    public let embed: Embedding
    public let layers: [LlamaBlock]
    public let norm: RMSNorm
    /// nil when tied to the embeddings.
    public let lmHead: Linear?
    public let rope: RoPETable

    public init(_ c: ModelConfig, on device: Device, from source: WeightSource) throws {
        config = c
        self.device = device
        embed = try Embedding("model.embed_tokens", count: c.vocabSize, dim: c.hiddenSize, from: source)
        layers = try (0..<c.numLayers).map { try LlamaBlock("model.layers.\($0)", c, from: source) }
        norm = try RMSNorm("model.norm", dim: c.hiddenSize, eps: c.normEps, from: source)
        lmHead = c.tieWordEmbeddings ? nil
            : try Linear("lm_head", inFeatures: c.hiddenSize, outFeatures: c.vocabSize, bias: false, from: source)
        rope = try RoPETable(inverseFrequencies: c.ropeInverseFrequencies(), maxPositions: c.maxPositions, on: device)
    }

    /// A randomly initialised model (Hugging Face's init: normal(0, 0.02), norms at one).
    public convenience init(_ c: ModelConfig, seed: UInt64 = 0, on device: Device) throws {
        try self.init(c, on: device, from: randomWeights(seed: seed, on: device))
    }

    public func hiddenStates(_ ids: Tensor, positions: Tensor? = nil, cache: KVCache? = nil,
                             segments: AttentionSegments? = nil) throws -> Tensor {
        let T = ids.shape[1]
        let start = cache?.length ?? 0
        guard start + T <= config.maxPositions else {
            throw TensorError.invalidArgument(op: "LlamaModel", "\(start + T) positions exceed max_position_embeddings \(config.maxPositions)")
        }
        let pos = try positions ?? Tensor(indices: (Int32(start)..<Int32(start + T)).map { $0 }, shape: [T], on: device)
        var h = try embed(ids)
        for (i, layer) in layers.enumerated() {
            h = try layer(h, rope: rope, positions: pos, cache: cache?.layer(i), segments: segments)
        }
        cache?.advance(by: T)
        return try norm(h)
    }

    /// ids is i32 (B,T); positions i32 (B,T) or (T), default the T positions after what the
    /// cache holds. Returns logits (B,T,V).
    public func logits(_ ids: Tensor, positions: Tensor? = nil, cache: KVCache? = nil,
                       segments: AttentionSegments? = nil) throws -> Tensor {
        let (B, T) = (ids.shape[0], ids.shape[1])
        let h = try hiddenStates(ids, positions: positions, cache: cache, segments: segments)
        return try h.linear(lmHead?.weight ?? embed.weight).reshaped([B, T, config.vocabSize])
    }

    public func projections() -> [any LoRATarget] {
        layers.flatMap { l -> [any LoRATarget] in
            [l.attention.q, l.attention.k, l.attention.v, l.attention.o, l.mlp.gate, l.mlp.up, l.mlp.down]
        }
    }

    public func namedParameters() -> [(String, Tensor)] {
        var out = embed.namedParameters()
        for l in layers { out += l.namedParameters() }
        out += norm.namedParameters()
        if let lmHead { out += lmHead.namedParameters() }
        return out
    }
}
