import Foundation
import ITuneTensor

/// How the next token is chosen from logits: greedy when `temperature` is 0, else sampled
/// from softmax(logits / temperature) restricted to the `topK` most likely tokens and to the
/// smallest set whose probability reaches `topP` — the order transformers applies them in.
public struct SamplingOptions: Sendable, Equatable {
    public var temperature: Float = 0
    public var topK: Int = 0
    public var topP: Float = 1
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    public var isGreedy: Bool { temperature <= 0 || topK == 1 }
}

/// A seeded sampler over one row of logits at a time.
public struct TokenSampler {
    public let options: SamplingOptions
    private var rng: SplitMix64

    public init(_ options: SamplingOptions) {
        self.options = options
        rng = SplitMix64(seed: options.seed)
    }

    /// The next token id from logits (V).
    public mutating func next(_ logits: ArraySlice<Float>) -> Int {
        let base = logits.startIndex
        if options.isGreedy {
            var best = base
            for i in logits.indices where logits[i] > logits[best] { best = i }
            return best - base
        }
        // Candidates sorted by logit, highest first (ties by id, for reproducibility).
        var order = Array(0..<logits.count)
        order.sort { logits[base + $0] != logits[base + $1] ? logits[base + $0] > logits[base + $1] : $0 < $1 }
        if options.topK > 0, options.topK < order.count { order.removeLast(order.count - options.topK) }
        let t = options.temperature
        let top = logits[base + order[0]] / t
        var probs = order.map { Double(expf(logits[base + $0] / t - top)) }
        let total = probs.reduce(0, +)
        probs = probs.map { $0 / total }
        if options.topP < 1 {
            var cumulative = 0.0, keep = 0
            // Keep tokens until the mass before them reaches top_p (the first always stays).
            while keep < probs.count && (keep == 0 || cumulative < Double(options.topP)) {
                cumulative += probs[keep]
                keep += 1
            }
            order.removeLast(order.count - keep)
            probs.removeLast(probs.count - keep)
            let kept = probs.reduce(0, +)
            probs = probs.map { $0 / kept }
        }
        let u = Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        var acc = 0.0
        for (i, p) in probs.enumerated() {
            acc += p
            if u < acc { return order[i] }
        }
        return order[order.count - 1]
    }
}
