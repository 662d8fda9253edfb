import Foundation
import ITuneTensor

/// A decoder-only language model: token ids in, next-token logits out.
public protocol CausalLM: LoRAHost {
    var config: ModelConfig { get }
    var device: Device { get }
    /// ids is i32 (B,T); positions i32 (B,T) or (T), default the T positions after what
    /// `cache` holds (0..<T without one). Returns logits (B,T,V). A cache gets this call's keys
    /// and values appended; `segments` keeps packed examples apart.
    func logits(_ ids: Tensor, positions: Tensor?, cache: KVCache?, segments: AttentionSegments?) throws -> Tensor
    /// The final-norm hidden states (B,T,C) that `logits` projects to the vocabulary: what
    /// sentence embeddings pool. Arguments as for `logits`.
    func hiddenStates(_ ids: Tensor, positions: Tensor?, cache: KVCache?, segments: AttentionSegments?) throws -> Tensor
    /// (V,C): what projects hidden states to logits, the lm_head or the tied token embeddings.
    var outputEmbedding: Tensor { get }
    /// Every projection (Linear or Conv1D) in module order: what LoRA can adapt.
    func projections() -> [any LoRATarget]
    /// The head's weight as blocks (`--quantize-embeddings`), read instead of `outputEmbedding`.
    var quantizedOutputEmbedding: BlockQuantizedMatrix? { get }
    /// Every quantised embedding table or head, each once (for memory counts).
    var quantizedEmbeddings: [BlockQuantizedMatrix] { get }
}

extension CausalLM {
    /// Families whose embeddings cannot be quantised have none.
    public var quantizedOutputEmbedding: BlockQuantizedMatrix? { nil }
    public var quantizedEmbeddings: [BlockQuantizedMatrix] { [] }

    /// The hidden states times `outputEmbedding`ᵀ: logits (B,T,V).
    public func logits(_ ids: Tensor, positions: Tensor?, cache: KVCache?, segments: AttentionSegments?) throws -> Tensor {
        let (B, T) = (ids.shape[0], ids.shape[1])
        let h = try hiddenStates(ids, positions: positions, cache: cache, segments: segments)
        return try vocabularyProjection(h).reshaped([B, T, config.vocabSize])
    }

    /// Hidden states (…, C) through the head: the quantised one where there is one. (…, V).
    func vocabularyProjection(_ h: Tensor) throws -> Tensor {
        if let q = quantizedOutputEmbedding { return try h.linear(quantized: q) }
        return try h.linear(outputEmbedding)
    }

    /// The logits of each row's last position only, (B, V): what decoding samples from. The head
    /// (the model's largest product: vocabulary × hidden) runs on B rows, not B·T — a prompt's
    /// prefill no longer computes, nor holds, logits for every one of its positions.
    public func lastLogits(_ ids: Tensor, positions: Tensor?, cache: KVCache?, segments: AttentionSegments?) throws -> Tensor {
        let (B, T) = (ids.shape[0], ids.shape[1])
        let h = try hiddenStates(ids, positions: positions, cache: cache, segments: segments)
        let last = try (T == 1 ? h : h.narrow(axis: 1, start: T - 1, length: 1)).reshaped([B, h.shape[h.rank - 1]])
        return try vocabularyProjection(last)
    }

    public func callAsFunction(_ ids: Tensor) throws -> Tensor { try logits(ids, positions: nil, cache: nil, segments: nil) }

    /// hiddenStates with the defaults: positions 0..<T, no cache, one example per row.
    public func hiddenStates(_ ids: Tensor) throws -> Tensor {
        try hiddenStates(ids, positions: nil, cache: nil, segments: nil)
    }

    /// A cache that grows up to the longest sequence this model computes correctly.
    public func makeCache() -> KVCache { KVCache(layers: config.numLayers, maxLength: config.maxSequenceLength) }

    /// PEFT `target_modules` for this model's family when the user names none.
    public var defaultLoRATargets: [String] { config.architecture.family?.defaultLoRATargets ?? LoRAConfig.llamaTargets }

    /// `positions`, or the T positions after what `cache` holds, once the sequence is checked
    /// against the family's limits (max_position_embeddings, sliding_window).
    func checkedPositions(_ positions: Tensor?, count T: Int, cache: KVCache?) throws -> Tensor {
        let start = cache?.length ?? 0
        try config.checkSequenceLength(start: start, count: T)
        return try positions ?? Tensor(indices: (0..<T).map { Int32(start + $0) }, shape: [T], on: device)
    }

    /// Mean cross-entropy of logits at t against `targets` at t (already shifted: the caller
    /// puts the next token, or -100 where no loss is taken). ids and targets are i32 (B,T).
    public func loss(_ ids: Tensor, targets: Tensor, positions: Tensor? = nil, segments: AttentionSegments? = nil) throws -> Tensor {
        // The head and the loss in chunks of rows: the (B·T, V) logits never exist whole.
        let h = try hiddenStates(ids, positions: positions, cache: nil, segments: segments)
        return try headCrossEntropy(h, targets: targets)
    }

    /// The head and its mean cross-entropy over hidden states (…, C) against targets (the same
    /// rows, i32, −100 not scored), without keeping the logits: what every loss of this model
    /// ends in.
    public func headCrossEntropy(_ hidden: Tensor, targets: Tensor) throws -> Tensor {
        let rows = try hidden.reshaped([-1, config.hiddenSize])
        if let q = quantizedOutputEmbedding {
            // --quantize-embeddings (LoRA only, so f32 matmul precision): the head read from its blocks.
            return try rows.linearCrossEntropy(quantized: q, targets: targets.reshaped([-1]))
        }
        if MatmulPrecision.current == .bf16 {
            // --precision bf16: the head's operands in bf16 (the logits and the loss stay f32).
            return try rows.roundedToBFloat16().linearCrossEntropy(weight: outputEmbedding.converted(to: .bf16),
                                                                    targets: targets.reshaped([-1]))
        }
        return try rows.linearCrossEntropy(weight: outputEmbedding, targets: targets.reshaped([-1]))
    }

    /// Each row's summed log-probability of its scored targets: Σₜ log p(targetₜ | …), what DPO
    /// and ORPO compare. hidden is (S, T, C) (from `hiddenStates`), targets S·T i32 values already
    /// shifted (−100 not scored). Returns (S) and each row's count of scored targets. The head
    /// runs once per row (its loss's gradient differs per row), never on the whole (S·T, V).
    public func sequenceLogProbs(_ hidden: Tensor, targets: [Int32]) throws -> (logProbs: Tensor, counts: [Int]) {
        let (S, T) = (hidden.shape[0], hidden.shape[1])
        guard targets.count == S * T else {
            throw TensorError.shapeMismatch(op: "sequenceLogProbs", "\(targets.count) targets for hidden states \(hidden.shape)")
        }
        let flat = try hidden.reshaped([S * T, config.hiddenSize])
        var parts: [Tensor] = [], counts: [Int] = []
        for s in 0..<S {
            let rowTargets = Array(targets[(s * T)..<((s + 1) * T)])
            let n = rowTargets.reduce(0) { $0 + ($1 == -100 ? 0 : 1) }
            counts.append(n)
            // Mean cross-entropy × count = −Σ log p; a row with nothing scored sums to 0.
            let ce = try headCrossEntropy(flat.narrow(axis: 0, start: s * T, length: T),
                                          targets: Tensor(indices: rowTargets, shape: [T], on: device))
            parts.append(try ce.scaled(by: -Float(n)).reshaped([1]))
        }
        return (try Tensor.concatenated(parts, axis: 0), counts)
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
