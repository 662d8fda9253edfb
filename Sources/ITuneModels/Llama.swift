import Foundation
import ITuneTensor

// Llama (Llama 2/3, TinyLlama, SmolLM2), Mistral and Qwen2: separate q, k, v, o projections
// and a SwiGLU MLP of gate, up and down. Qwen2 puts biases on q, k, v; Llama's
// `attention_bias` also on o, its `mlp_bias` on the MLP.

/// Self-attention with separate q_proj, k_proj, v_proj and o_proj.
public final class LlamaAttention: RotaryAttention {
    public let q, k, v, o: Linear
    let config: ModelConfig

    public init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws {
        q = try Linear(prefix + ".q_proj", inFeatures: c.hiddenSize, outFeatures: c.numHeads * c.headDim, bias: c.qkvBias, from: source)
        k = try Linear(prefix + ".k_proj", inFeatures: c.hiddenSize, outFeatures: c.numKVHeads * c.headDim, bias: c.qkvBias, from: source)
        v = try Linear(prefix + ".v_proj", inFeatures: c.hiddenSize, outFeatures: c.numKVHeads * c.headDim, bias: c.qkvBias, from: source)
        o = try Linear(prefix + ".o_proj", inFeatures: c.numHeads * c.headDim, outFeatures: c.hiddenSize, bias: c.outputBias, from: source)
        config = c
    }

    /// x is (B,T,C); positions i32 (B,T) or (T). Returns (B,T,C).
    public func callAsFunction(_ x: Tensor, rope: RoPETable, positions: Tensor, cache: KVCache.Layer? = nil,
                               segments: AttentionSegments? = nil) throws -> Tensor {
        try o(rotarySelfAttention(q: q(x), k: k(x), v: v(x), config, rope: rope, positions: positions,
                                  cache: cache, segments: segments))
    }

    public var projections: [any LoRATarget] { [q, k, v, o] }

    public func namedParameters() -> [(String, Tensor)] {
        q.namedParameters() + k.namedParameters() + v.namedParameters() + o.namedParameters()
    }
}

/// The SwiGLU feed-forward: down(silu(gate(x)) * up(x)).
public final class LlamaMLP: FeedForward {
    public let gate, up, down: Linear

    public init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws {
        gate = try Linear(prefix + ".gate_proj", inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: c.mlpBias, from: source)
        up = try Linear(prefix + ".up_proj", inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: c.mlpBias, from: source)
        down = try Linear(prefix + ".down_proj", inFeatures: c.intermediateSize, outFeatures: c.hiddenSize, bias: c.mlpBias, from: source)
    }

    /// x is (…, C); returns (…, C).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try down(Tensor.swiglu(gate: gate(x), up: up(x)))
    }

    public var projections: [any LoRATarget] { [gate, up, down] }

    public func namedParameters() -> [(String, Tensor)] {
        gate.namedParameters() + up.namedParameters() + down.namedParameters()
    }
}

/// One Llama layer.
public typealias LlamaBlock = PreNormBlock<LlamaAttention, LlamaMLP>
/// A Llama-family causal language model (Llama, Mistral, Qwen2).
public typealias LlamaModel = RotaryDecoderModel<LlamaAttention, LlamaMLP>

extension Architecture {
    public static let llama = Architecture(rawValue: "llama")
    public static let mistral = Architecture(rawValue: "mistral")
    public static let qwen2 = Architecture(rawValue: "qwen2")
}

extension ModelFamily {
    /// LlamaForCausalLM: `attention_bias` (q, k, v and o) and `mlp_bias` are read and built.
    public static let llama = ModelFamily(
        architecture: .llama, classNames: ["LlamaForCausalLM"], defaultLoRATargets: LoRAConfig.llamaTargets,
        decode: { f in
            var c = try f.rotaryDecoderConfig(.llama)
            let attentionBias = try f.bool("attention_bias") ?? false
            (c.qkvBias, c.outputBias) = (attentionBias, attentionBias)
            c.mlpBias = try f.bool("mlp_bias") ?? false
            return c
        },
        encode: { c in c.rotaryDecoderJSON().merging(["attention_bias": c.qkvBias, "mlp_bias": c.mlpBias]) { $1 } },
        make: { c, device, source in try LlamaModel(c, on: device, from: source) })

    /// MistralForCausalLM: Llama's layout without biases, and a sliding window.
    public static let mistral = ModelFamily(
        architecture: .mistral, classNames: ["MistralForCausalLM"], defaultLoRATargets: LoRAConfig.llamaTargets,
        decode: { f in try f.unbiasedWindowedConfig(.mistral, className: "MistralForCausalLM") },
        encode: { c in c.windowedRotaryDecoderJSON() },
        make: { c, device, source in try LlamaModel(c, on: device, from: source) })

    /// Qwen2ForCausalLM: biases on q, k and v; a sliding window on the layers from
    /// `max_window_layers` on when `use_sliding_window` is set (or as `layer_types` lists).
    public static let qwen2 = ModelFamily(
        architecture: .qwen2, classNames: ["Qwen2ForCausalLM"], defaultLoRATargets: LoRAConfig.llamaTargets,
        decode: { f in
            try f.refuseTrue("attention_bias", "mlp_bias", family: "Qwen2ForCausalLM")
            var c = try f.rotaryDecoderConfig(.qwen2)
            c.qkvBias = true
            guard try f.bool("use_sliding_window") == true, let window = try f.slidingWindow() else { return c }
            let first: Int
            if f.has("layer_types") {
                guard let types = f.json["layer_types"] as? [String], types.count == c.numLayers,
                      types.allSatisfy({ ["full_attention", "sliding_attention"].contains($0) }) else {
                    throw f.refuse("layer_types", "must list full_attention or sliding_attention for each of the \(c.numLayers) layers")
                }
                first = types.firstIndex(of: "sliding_attention") ?? c.numLayers
                guard types[first...].allSatisfy({ $0 == "sliding_attention" }) else {
                    throw f.refuse("layer_types", "mixes sliding and full layers after the first sliding one (only max_window_layers' pattern is implemented)")
                }
            } else {
                first = try f.int("max_window_layers") ?? 28
                guard first >= 0 else { throw f.refuse("max_window_layers", "is negative (\(first))") }
            }
            if first < c.numLayers { (c.slidingWindow, c.firstSlidingWindowLayer) = (window, first) }
            return c
        },
        encode: { c in
            var j = c.rotaryDecoderJSON()
            j["use_sliding_window"] = c.slidingWindow != nil
            j["sliding_window"] = c.slidingWindow.map { $0 as Any } ?? NSNull()
            j["max_window_layers"] = c.slidingWindow == nil ? c.numLayers : c.firstSlidingWindowLayer
            j["layer_types"] = (0..<c.numLayers).map { c.slidingWindow != nil && $0 >= c.firstSlidingWindowLayer ? "sliding_attention" : "full_attention" }
            return j
        },
        make: { c, device, source in try LlamaModel(c, on: device, from: source) })
}
