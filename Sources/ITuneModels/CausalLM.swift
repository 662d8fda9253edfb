import Foundation
import ITuneTensor

/// A decoder-only language model: token ids in, next-token logits out.
public protocol CausalLM: Module {
    var config: ModelConfig { get }
    var device: Device { get }
    /// ids is i32 (B,T); positions i32 (B,T) or (T), default the T positions after what
    /// `cache` holds (0..<T without one). Returns logits (B,T,V). A cache gets this call's keys
    /// and values appended; `segments` keeps packed examples apart.
    func logits(_ ids: Tensor, positions: Tensor?, cache: KVCache?, segments: AttentionSegments?) throws -> Tensor
    /// Every projection (Linear or Conv1D) in module order: what LoRA can adapt.
    func projections() -> [any LoRATarget]
}

/// Keys and values of the positions seen so far, per layer: decoding then runs one new token
/// through the model instead of the whole sequence again.
public final class KVCache {
    public final class Layer {
        public private(set) var keys: Tensor?
        public private(set) var values: Tensor?

        /// keys and values are (B,T,NKV,D); returns everything cached so far, these included.
        public func append(keys k: Tensor, values v: Tensor) throws -> (Tensor, Tensor) {
            let (newK, newV) = try noGrad {
                (try keys.map { try Tensor.concatenated([$0, k], axis: 1) } ?? k.detached(),
                 try values.map { try Tensor.concatenated([$0, v], axis: 1) } ?? v.detached())
            }
            keys = newK
            values = newV
            return (newK, newV)
        }
    }

    public let layers: [Layer]
    /// Positions cached.
    public private(set) var length = 0

    public init(layers: Int) { self.layers = (0..<layers).map { _ in Layer() } }

    func layer(_ i: Int) -> Layer { layers[i] }
    func advance(by n: Int) { length += n }
}

extension CausalLM {
    public func callAsFunction(_ ids: Tensor) throws -> Tensor { try logits(ids, positions: nil, cache: nil, segments: nil) }

    public func makeCache() -> KVCache { KVCache(layers: config.numLayers) }

    /// Mean cross-entropy of logits at t against `targets` at t (already shifted: the caller
    /// puts the next token, or -100 where no loss is taken). ids and targets are i32 (B,T).
    public func loss(_ ids: Tensor, targets: Tensor, positions: Tensor? = nil, segments: AttentionSegments? = nil) throws -> Tensor {
        let out = try logits(ids, positions: positions, cache: nil, segments: segments)
        return try out.reshaped([-1, config.vocabSize]).crossEntropy(targets: targets.reshaped([-1]))
    }

    /// Hugging Face's loss convention: `labels` aligned with ids (-100 = ignored), shifted
    /// inside so that logits at t predict labels at t+1.
    /// With `segments` and `positions`, packed rows keep attention and positions inside each example.
    public func loss(_ ids: Tensor, labels: [Int32], segments: AttentionSegments? = nil,
                     positions: Tensor? = nil) throws -> Tensor {
        let (B, T) = (ids.shape[0], ids.shape[1])
        var shifted = [Int32](repeating: -100, count: B * T)
        for b in 0..<B { for t in 0..<(T - 1) { shifted[b * T + t] = labels[b * T + t + 1] } }
        return try loss(ids, targets: Tensor(indices: shifted, shape: [B, T], on: device), positions: positions, segments: segments)
    }
}

/// Loads a Hugging Face model directory (config.json + safetensors) onto `device`.
public func loadPretrained(_ directory: URL, on device: Device) throws -> any CausalLM {
    let config = try ModelConfig(configJSON: directory.appendingPathComponent("config.json"))
    let checkpoint = try Checkpoint(directory: directory)
    let source: WeightSource = { name, shape, _ in
        // GPT-2 checkpoints often lack the `transformer.` prefix that transformers' state dict has.
        if !checkpoint.contains(name), name.hasPrefix("transformer."),
           checkpoint.contains(String(name.dropFirst("transformer.".count))) {
            return try checkpoint.tensor(String(name.dropFirst("transformer.".count)), on: device, shape: shape)
        }
        return try checkpoint.tensor(name, on: device, shape: shape)
    }
    switch config.architecture {
    case .llama, .mistral, .qwen2: return try LlamaModel(config, on: device, from: source)
    case .gpt2: return try GPT2Model(config, on: device, from: source)
    }
}
