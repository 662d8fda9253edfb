import Foundation
import ITuneTensor

/// How `generate` picks and stops.
public struct GenerationOptions: Sendable {
    public var maxNewTokens: Int
    public var sampling: SamplingOptions
    /// Token ids that end generation (eos); they are not part of the output.
    public var stopTokens: Set<Int32>

    public init(maxNewTokens: Int = 128, sampling: SamplingOptions = SamplingOptions(), stopTokens: Set<Int32> = []) {
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.stopTokens = stopTokens
    }
}

public struct GenerationResult: Sendable {
    public enum StopReason: String, Sendable { case stopToken = "stop_token", caller, maxNewTokens = "max_new_tokens", contextFull = "context_full" }
    public var tokens: [Int32]
    public var stopReason: StopReason
    /// Seconds for the prompt (prefill) and for the generated tokens (decode).
    public var prefillSeconds: Double
    public var decodeSeconds: Double
}

extension CausalLM {
    /// Continues `prompt` one token at a time with a KV cache: the prompt runs once, then each
    /// step feeds only the newest token. `onToken` sees every generated token as it comes (for
    /// streaming, and for stop strings, which need the tokenizer) and returns false to stop.
    public func generate(prompt: [Int32], options: GenerationOptions,
                         onToken: (Int32) throws -> Bool = { _ in true }) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw TensorError.invalidArgument(op: "generate", "the prompt has no tokens") }
        return try noGrad {
            let cache = makeCache()
            var sampler = TokenSampler(options.sampling)
            var input = prompt, out: [Int32] = []
            var reason = GenerationResult.StopReason.maxNewTokens
            let start = Date()
            var prefill = 0.0
            while out.count < options.maxNewTokens {
                if cache.length + input.count > config.maxSequenceLength { reason = .contextFull; break }
                let ids = try Tensor(indices: input, shape: [1, input.count], on: device)
                let logits = try self.logits(ids, positions: nil, cache: cache, segments: nil)
                let last = try logits.narrow(axis: 1, start: input.count - 1, length: 1).toArray()
                if out.isEmpty { prefill = Date().timeIntervalSince(start) }
                let token = Int32(sampler.next(last[...]))
                if options.stopTokens.contains(token) { reason = .stopToken; break }
                out.append(token)
                if try !onToken(token) { reason = .caller; break }
                input = [token]
            }
            let total = Date().timeIntervalSince(start)
            return GenerationResult(tokens: out, stopReason: reason, prefillSeconds: prefill, decodeSeconds: total - prefill)
        }
    }
}
