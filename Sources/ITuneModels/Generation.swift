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
                let last = try lastLogits(ids, positions: nil, cache: cache, segments: nil).toArray()
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

extension CausalLM {
    /// `generate` for several prompts at once, one row of a batch each: decoding reads every
    /// weight once per step for all rows instead of once per row per step, which is what a token
    /// costs on a CPU (decoding is bound by memory bandwidth). The prompts are left-padded to the
    /// longest; the padding is an attention segment of its own, so no token sees it, and each
    /// row's positions start at its first real token. Each row gets its own sampler (the same
    /// stream as a `generate` of that prompt alone) and stops on its own; a stopped row leaves
    /// the batch (its cached keys and values dropped), so that the rows still decoding are all
    /// that a step computes. `onToken(row, token)` sees each row's tokens as `generate`'s
    /// does and returns false to stop that row. Returns one result per prompt, in order, with the
    /// batch's prefill and decode times. The padded length counts against the model's context
    /// (`contextFull` comes when the longest row reaches it).
    public func generate(prompts: [[Int32]], options: GenerationOptions,
                         onToken: (Int, Int32) throws -> Bool = { _, _ in true }) throws -> [GenerationResult] {
        guard !prompts.isEmpty else { return [] }
        if let empty = prompts.firstIndex(where: \.isEmpty) {
            throw TensorError.invalidArgument(op: "generate", "prompt \(empty) has no tokens")
        }
        let B = prompts.count, longest = prompts.map(\.count).max() ?? 0
        let pads = prompts.map { longest - $0.count }
        return try noGrad {
            let cache = makeCache()
            var samplers = (0..<B).map { _ in TokenSampler(options.sampling) }
            var outs = [[Int32]](repeating: [], count: B)
            var reasons = [GenerationResult.StopReason?](repeating: nil, count: B)
            // The prompt rows, left-padded with their own first token (any id would do: no
            // query sees the padding, and its outputs are dropped).
            var input: [Int32] = [], positions: [Int32] = []
            for (b, p) in prompts.enumerated() {
                input += [Int32](repeating: p[0], count: pads[b]) + p
                positions += [Int32](repeating: 0, count: pads[b]) + (0..<p.count).map(Int32.init)
            }
            var width = longest
            // The prompts whose rows the batch holds, in row order.
            var active = Array(0..<B)
            let start = Date()
            var prefill = 0.0
            var step = 0
            while !active.isEmpty {
                if step >= options.maxNewTokens {
                    for b in active { reasons[b] = .maxNewTokens }
                    break
                }
                if cache.length + width > config.maxSequenceLength {
                    for b in active { reasons[b] = .contextFull }
                    break
                }
                let total = cache.length + width
                let segments = try AttentionSegments(lengths: active.map { pads[$0] > 0 ? [pads[$0], total - pads[$0]] : [total] },
                                                     rowLength: total, on: device)
                let ids = try Tensor(indices: input, shape: [active.count, width], on: device)
                let pos = try Tensor(indices: positions, shape: [active.count, width], on: device)
                let last = try lastLogits(ids, positions: pos, cache: cache, segments: segments).toArray()
                if step == 0 { prefill = Date().timeIntervalSince(start) }
                let V = config.vocabSize
                var next: [Int32] = []
                for (row, b) in active.enumerated() {
                    let token = Int32(samplers[b].next(last[(row * V)..<((row + 1) * V)]))
                    if options.stopTokens.contains(token) {
                        reasons[b] = .stopToken
                    } else {
                        outs[b].append(token)
                        if try !onToken(b, token) { reasons[b] = .caller }
                    }
                    next.append(token)
                }
                // Rows that stopped leave the batch and the cache.
                let going = active.indices.filter { reasons[active[$0]] == nil }
                if going.count < active.count {
                    try cache.keepRows(going)
                    next = going.map { next[$0] }
                    active = going.map { active[$0] }
                }
                input = next
                positions = active.map { Int32(total - pads[$0]) }
                width = 1
                step += 1
            }
            let total = Date().timeIntervalSince(start)
            return (0..<B).map {
                GenerationResult(tokens: outs[$0], stopReason: reasons[$0] ?? .maxNewTokens, prefillSeconds: prefill,
                                 decodeSeconds: total - prefill)
            }
        }
    }
}
