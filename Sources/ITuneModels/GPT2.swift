import Foundation
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
        // Under --grad-checkpoint (training, no cache) only x stays for the backward.
        guard cache == nil else { return try forward(x, cache: cache, segments: segments) }
        let projections: [any LoRATarget] = [attention, attentionOut, fc, proj]
        return try Tensor.checkpointed(x, parameters: parameters + projections.loraFactors) {
            try self.forward($0, cache: nil, segments: segments)
        }
    }

    func forward(_ x: Tensor, cache: KVCache.Layer?, segments: AttentionSegments?) throws -> Tensor {
        let (B, T, C) = (x.shape[0], x.shape[1], x.shape[2])
        let qkv = try attention(ln1(x)).split(lastDim: [C, C, C])
        let heads = try qkv.map { try $0.reshaped([B, T, numHeads, headDim]) }
        let y = try cachedAttention(q: heads[0], k: heads[1], v: heads[2], cache: cache, segments: segments)
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
        try c.validate()
        config = c
        self.device = device
        tokenEmbedding = try Embedding("transformer.wte", count: c.vocabSize, dim: c.hiddenSize, from: source)
        positionEmbedding = try Embedding("transformer.wpe", count: c.maxPositions, dim: c.hiddenSize, from: source)
        layers = try (0..<c.numLayers).map { try GPT2Block("transformer.h.\($0)", c, from: source) }
        finalNorm = try LayerNorm("transformer.ln_f", dim: c.hiddenSize, eps: c.normEps, from: source)
    }

    /// ids is i32 (B,T); returns the final-LayerNorm hidden states (B,T,C).
    public func hiddenStates(_ ids: Tensor, positions: Tensor? = nil, cache: KVCache? = nil,
                             segments: AttentionSegments? = nil) throws -> Tensor {
        let T = ids.shape[1]
        let pos = try checkedPositions(positions, count: T, cache: cache)
        var h = try tokenEmbedding(ids) + positionEmbedding(pos)
        for (i, layer) in layers.enumerated() { h = try layer(h, cache: cache?.layer(i), segments: segments) }
        cache?.advance(by: T)
        return try finalNorm(h)
    }

    /// lm_head is tied to `wte`.
    public var outputEmbedding: Tensor { tokenEmbedding.weight }

    public func projections() -> [any LoRATarget] {
        layers.flatMap { l -> [any LoRATarget] in [l.attention, l.attentionOut, l.fc, l.proj] }
    }

    public func namedParameters() -> [(String, Tensor)] {
        var out = tokenEmbedding.namedParameters() + positionEmbedding.namedParameters()
        for l in layers { out += l.namedParameters() }
        return out + finalNorm.namedParameters()
    }
}

extension Architecture {
    public static let gpt2 = Architecture(rawValue: "gpt2")
}

extension ModelFamily {
    /// GPT2LMHeadModel: its own field names (n_embd, n_layer, …), Conv1D weights, tied lm_head.
    /// Checkpoints often lack transformers' `transformer.` prefix; both are accepted.
    public static let gpt2 = ModelFamily(
        architecture: .gpt2, classNames: ["GPT2LMHeadModel"], defaultLoRATargets: LoRAConfig.gpt2Targets,
        decode: { f in
            let vocab = try f.size("vocab_size")
            let hidden = try f.size("n_embd", "hidden_size")
            let layers = try f.size("n_layer", "num_hidden_layers")
            let heads = try f.size("n_head", "num_attention_heads")
            guard hidden % heads == 0 else {
                throw ModelFileError.malformed(file: f.file, "n_embd \(hidden) is not a multiple of n_head \(heads)")
            }
            let inner: Int
            if let n = try f.optionalSize("n_inner") { inner = n } else {
                let (four, overflow) = hidden.multipliedReportingOverflow(by: 4)
                guard !overflow else { throw ModelFileError.malformed(file: f.file, "4 × n_embd \(hidden) overflows (n_inner)") }
                inner = four
            }
            if let act = try f.string("activation_function"), !["gelu_new", "gelu_pytorch_tanh"].contains(act) {
                throw f.refuse("activation_function", "is \(act) (only the tanh GELU, gelu_new, is implemented)")
            }
            if try f.bool("scale_attn_weights") == false { throw f.refuse("scale_attn_weights", "is false (unscaled attention is not implemented)") }
            if try f.bool("scale_attn_by_inverse_layer_idx") == true {
                throw f.refuse("scale_attn_by_inverse_layer_idx", "is true (per-layer attention scaling is not implemented)")
            }
            if try f.bool("tie_word_embeddings") == false { throw f.refuse("tie_word_embeddings", "is false (GPT-2's lm_head is tied to wte here)") }
            return ModelConfig(architecture: .gpt2, vocabSize: vocab, hiddenSize: hidden, intermediateSize: inner, numLayers: layers,
                               numHeads: heads, normEps: try f.positiveFloat("layer_norm_epsilon", default: 1e-5, allowZero: true),
                               maxPositions: try f.size("n_positions", "max_position_embeddings"), tieWordEmbeddings: true,
                               qkvBias: true, outputBias: true, mlpBias: true, bosTokenID: try f.int("bos_token_id"),
                               eosTokenIDs: try f.eosTokenIDs())
        },
        encode: { c in
            ["n_embd": c.hiddenSize, "n_inner": c.intermediateSize, "n_layer": c.numLayers, "n_head": c.numHeads,
             "n_positions": c.maxPositions, "layer_norm_epsilon": c.normEps, "activation_function": "gelu_new",
             "tie_word_embeddings": true]
        },
        make: { c, device, source in try GPT2Model(c, on: device, from: source) },
        checkpointNames: { name in
            name.hasPrefix("transformer.") ? [name, String(name.dropFirst("transformer.".count))] : [name]
        })
}
