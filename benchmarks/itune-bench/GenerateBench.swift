import Foundation
import ITune

/// `itune-bench generate`: greedy generation with the KV cache from a random-weight model of a
/// reference shape (default qwen2.5-0.5b; `--configs`), a 16-token prompt (`--prompt-tokens`) and
/// 64 new tokens.
/// Decode tokens/s, and on the CPU the bound memory bandwidth puts on it: each new token reads
/// every weight that takes part in a matmul once (the tied embedding as the head), so decode is
/// capped at read bandwidth / (bytes per weight × those weights). The matrices are stored as
/// `--base-dtype` says (default bf16, as the reference checkpoints store them and as
/// `itune-gpu generate` keeps them on the CPU; `--base-dtype f32,bf16` for both side by side).
/// `--rows N` decodes N prompts together as the rows of one batch (one read of the weights per
/// step for all of them): tokens/s and the bound count every row's tokens.
struct GenerateBench: Benchmark {
    let name = "generate"
    let summary = "greedy generation tokens/s (16-token prompt, 64 new tokens, KV cache), qwen2.5-0.5b, bf16 matrices (--base-dtype); CPU: the memory-bandwidth bound"

    func run(_ options: BenchOptions, _ report: (BenchResult) -> Void) throws {
        let configs = options.configs ?? (options.smoke ? ["smoke"] : ["qwen2.5-0.5b"])
        let newTokens = options.smoke ? 8 : 64, promptLength = options.promptTokens
        for device in options.devices {
            let label = try DeviceLabel(device)
            for cname in configs {
                guard let config = StepBench.config(cname) else {
                    throw BenchError.usage("unknown config '\(cname)' (tiny, smollm2-135m, qwen2.5-0.5b)")
                }
                for dtypeName in options.baseDTypes ?? ["bf16"] {
                    // nf4, int8: the projections quantised while loading from bf16 (and with
                    // --quantize-embeddings the tied table too), as `generate --quantize` does.
                    let quant = QuantFormat(rawValue: dtypeName)
                    guard let dtype = quant != nil ? DType.bf16 : DType(rawValue: dtypeName), dtype == .f32 || dtype.isHalfFloat else {
                        throw BenchError.usage("generate: unknown --base-dtype '\(dtypeName)' (f32, bf16, f16, nf4, int8)")
                    }
                    let backend = try device.backend()
                    backend.releaseCachedBuffers()
                    let setting = quant.map {
                        QuantizeSetting(format: $0, doubleQuant: options.doubleQuant && $0 == .nf4, embeddings: options.quantizeEmbeddings)
                    }
                    let model = try QuantizeOnLoad.$setting.withValue(setting) {
                        try LlamaModel(config, on: device, from: randomWeights(seed: 1, storingMatricesAs: dtype, on: device))
                    }
                    var g = SplitMix64(seed: 5)
                    let prompts = (0..<options.rows).map { _ in
                        (0..<promptLength).map { _ in Int32(g.next() % UInt64(config.vocabSize)) }
                    }
                    let generation = GenerationOptions(maxNewTokens: newTokens)
                    var last: GenerationResult?
                    var generatedTokens = 0
                    var calls = 0
                    let timing = try measure(warmup: 1, seconds: options.secondsPerCase, minReps: options.minReps) {
                        // --rows: every prompt as a row of one batch (CausalLM's generate(prompts:)).
                        if prompts.count == 1 {
                            last = try model.generate(prompt: prompts[0], options: generation)
                            generatedTokens = last?.tokens.count ?? 0
                        } else {
                            let rows = try model.generate(prompts: prompts, options: generation)
                            last = rows.first
                            generatedTokens = rows.reduce(0) { $0 + $1.tokens.count }
                        }
                        calls += 1
                        // --profile: every call after the first (the warm-up), per op.
                        if calls == 1 && options.profile { try backend.startProfiling() }
                    }
                    if let profile = try backend.stopProfiling(), calls > 1 {
                        let table = StepProfile(profile: profile, steps: 2...calls).table()
                        if !options.json { print("generate calls (prompt \(promptLength), \(newTokens) new tokens), per call:\n" + table) }
                    }
                    guard let result = last else { continue }
                    // Weights read per decoded token: every projection and the head.
                    let projections = model.projections()
                    let matmulWeights = projections.reduce(0) { $0 + $1.inFeatures * $1.outFeatures } + config.vocabSize * config.hiddenSize
                    // As stored: blocks (codes and constants) or dtype's bytes a weight.
                    let headBytes = model.quantizedOutputEmbedding?.byteCount ?? config.vocabSize * config.hiddenSize * dtype.byteSize
                    let weightBytes = projections.reduce(0) { $0 + ($1.quantizedWeight?.byteCount ?? $1.inFeatures * $1.outFeatures * dtype.byteSize) }
                        + headBytes
                    let storage = dtypeName + (setting?.doubleQuant == true ? "+dq" : "") + (setting?.embeddings == true ? "+emb" : "")
                    // Every row's tokens; the first of each comes from the prefill.
                    let decoded = max(generatedTokens - options.rows, 1)
                    var extra: [String: Any] = [
                        "config": cname, "prompt_tokens": promptLength, "new_tokens": generatedTokens, "rows": options.rows,
                        "prefill_ms": result.prefillSeconds * 1e3, "decode_tokens_per_s": Double(decoded) / result.decodeSeconds,
                        "matmul_weights": matmulWeights, "weight_bytes_per_token": weightBytes,
                        "weights_dtype": storage,
                    ]
                    if device == .cpu {
                        let peak = MachinePeak.ofThisMachine(smoke: options.smoke)
                        // One read of the weights serves every row of a step.
                        let bound = peak.readGBs * 1e9 / Double(weightBytes) * Double(options.rows)
                        extra["bandwidth_bound_tokens_per_s"] = bound
                        extra["read_gbs"] = peak.readGBs
                        extra["fraction_of_bound"] = Double(decoded) / result.decodeSeconds / bound
                    }
                    // The rate columns: generated tokens over the whole call (prefill included).
                    report(BenchResult(bench: name, name: "greedy \(storage)" + (options.rows > 1 ? " \(options.rows) rows" : ""), label: cname,
                                       device: label, shape: [promptLength, newTokens], flops: Double(generatedTokens), timing: timing,
                                       unit: "tokens/s", unitScale: 1,
                                       extra: extra))
                    backend.releaseCachedBuffers()
                }
            }
        }
    }
}
