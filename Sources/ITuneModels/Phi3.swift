import Foundation
import ITuneTensor

// Phi-3 (Phi3ForCausalLM): Llama's pre-norm rotary decoder with fused projections. qkv_proj
// packs q (NH·D), k and v (NKV·D each) along its output; gate_up_proj packs gate then up
// (I each). LoRA adapts the fused modules, under the names PEFT gives them.

/// Self-attention with one fused qkv_proj and o_proj.
public final class Phi3Attention: RotaryAttention {
    public let qkv, o: Linear
    let config: ModelConfig

    public init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws {
        qkv = try Linear(prefix + ".qkv_proj", inFeatures: c.hiddenSize, outFeatures: (c.numHeads + 2 * c.numKVHeads) * c.headDim,
                         bias: false, from: source)
        o = try Linear(prefix + ".o_proj", inFeatures: c.numHeads * c.headDim, outFeatures: c.hiddenSize, bias: false, from: source)
        config = c
    }

    /// x is (B,T,C); positions i32 (B,T) or (T). Returns (B,T,C).
    public func callAsFunction(_ x: Tensor, rope: RoPETable, positions: Tensor, cache: KVCache.Layer? = nil,
                               segments: AttentionSegments? = nil) throws -> Tensor {
        let (q, kv) = (config.numHeads * config.headDim, config.numKVHeads * config.headDim)
        let parts = try qkv(x).split(lastDim: [q, kv, kv])
        return try o(rotarySelfAttention(q: parts[0], k: parts[1], v: parts[2], config, rope: rope, positions: positions,
                                         cache: cache, segments: segments))
    }

    public var projections: [any LoRATarget] { [qkv, o] }

    public func namedParameters() -> [(String, Tensor)] { qkv.namedParameters() + o.namedParameters() }
}

/// SwiGLU with a fused gate_up_proj: down(silu(gate) * up), gate the first half of its output.
public final class Phi3MLP: FeedForward {
    public let gateUp, down: Linear
    let intermediateSize: Int

    public init(_ prefix: String, _ c: ModelConfig, from source: WeightSource) throws {
        gateUp = try Linear(prefix + ".gate_up_proj", inFeatures: c.hiddenSize, outFeatures: 2 * c.intermediateSize, bias: false, from: source)
        down = try Linear(prefix + ".down_proj", inFeatures: c.intermediateSize, outFeatures: c.hiddenSize, bias: false, from: source)
        intermediateSize = c.intermediateSize
    }

    /// x is (…, C); returns (…, C).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let parts = try gateUp(x).split(lastDim: [intermediateSize, intermediateSize])
        return try down(Tensor.swiglu(gate: parts[0], up: parts[1]))
    }

    public var projections: [any LoRATarget] { [gateUp, down] }

    public func namedParameters() -> [(String, Tensor)] { gateUp.namedParameters() + down.namedParameters() }
}

/// A Phi-3 causal language model (Phi-3-mini-4k, Phi-3.5-mini with default RoPE, …).
public typealias Phi3Model = RotaryDecoderModel<Phi3Attention, Phi3MLP>

extension Architecture {
    public static let phi3 = Architecture(rawValue: "phi3")
}

extension ModelFamily {
    /// Phi3ForCausalLM: no biases, a sliding window, RMSNorm epsilon 1e-5 by default. The 128k
    /// models' `longrope` scaling is refused by name.
    public static let phi3 = ModelFamily(
        architecture: .phi3, classNames: ["Phi3ForCausalLM"],
        defaultLoRATargets: ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
        decode: { f in try f.unbiasedWindowedConfig(.phi3, className: "Phi3ForCausalLM", normEps: 1e-5, maxPositions: 4096) },
        encode: { c in
            // transformers' default pad_token_id (32000) would not fit a smaller vocabulary.
            c.windowedRotaryDecoderJSON().merging(["pad_token_id": NSNull()]) { $1 }
        },
        make: { c, device, source in try Phi3Model(c, on: device, from: source) })
}
