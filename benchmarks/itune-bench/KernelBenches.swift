import Foundation
import ITune

/// `itune-bench softmax`: softmax over the last dim of attention-score-shaped rows
/// (B·H·T rows of T), forward and forward+backward, in GB/s = bytes moved / time
/// (forward reads x and writes y: 8·N bytes; backward reads y, dy and writes dx: 12·N bytes).
struct SoftmaxBench: Benchmark {
    let name = "softmax"
    let summary = "softmax rows of T (B=4, H=9), fwd and fwd+bwd, GB/s = bytes read+written / time"

    func run(_ options: BenchOptions, _ report: (BenchResult) -> Void) throws {
        let lengths = options.lengths ?? (options.smoke ? [64] : [128, 256, 512, 1024, 2048])
        for device in options.devices {
            let label = try DeviceLabel(device)
            for T in lengths {
                let rows = 4 * 9 * T
                let x = try Tensor.uniform([rows, T], -4, 4, seed: 1, on: device, requiresGrad: true)
                let n = Double(rows * T) * 4
                let fwd = try measure(seconds: options.secondsPerCase, minReps: options.minReps) {
                    let y = try noGrad { try x.softmax() }
                    try y.backend.synchronize()
                }
                report(BenchResult(bench: name, name: "forward", label: "T \(T)", device: label, shape: [rows, T],
                                   flops: 2 * n, timing: fwd, unit: "GB/s", unitScale: 1e9, extra: ["formula": "8·rows·T bytes"]))
                let w = try Tensor.uniform([rows, T], -1, 1, seed: 2, on: device)
                let both = try measure(seconds: options.secondsPerCase, minReps: options.minReps) {
                    x.zeroGrad()
                    try (x.softmax() * w).sum().backward()
                    try x.backend.synchronize()
                }
                report(BenchResult(bench: name, name: "forward+backward", label: "T \(T)", device: label, shape: [rows, T],
                                   flops: 5 * n, timing: both, unit: "GB/s", unitScale: 1e9,
                                   extra: ["formula": "20·rows·T bytes (softmax only; the mul/sum around it is timed too)"]))
                try device.backend().releaseCachedBuffers()
            }
        }
    }
}

/// `itune-bench attention`: fused causal attention with grouped-query heads, smollm2-135m
/// heads (9 query heads, 3 kv heads, head_dim 64), batch 4, forward and forward+backward.
/// GFLOP/s counts the causal matmuls only: forward 2·B·H·T²·D (QKᵀ and PV over the T²/2 visible
/// pairs, 2 FLOPs each); backward 2.5× the forward (recomputed QKᵀ, dV, dP, dQ, dK); decode (one
/// query a row over T keys, a KV-cached decoding step) 4·B·H·T·D.
struct AttentionBench: Benchmark {
    let name = "attention"
    let summary = "causal GQA attention (B=4, 9 heads / 3 kv, D=64), fwd, fwd+bwd and decode (1 query a row), GFLOP/s of the causal matmuls"

    func run(_ options: BenchOptions, _ report: (BenchResult) -> Void) throws {
        let lengths = options.lengths ?? (options.smoke ? [32] : [128, 256, 512, 1024, 2048])
        let (B, H, KV, D) = (options.smoke ? 1 : 4, 9, 3, 64)
        for device in options.devices {
            let label = try DeviceLabel(device)
            for T in lengths {
                let q = try Tensor.randn([B, T, H, D], seed: 1, on: device, requiresGrad: true)
                let k = try Tensor.randn([B, T, KV, D], seed: 2, on: device, requiresGrad: true)
                let v = try Tensor.randn([B, T, KV, D], seed: 3, on: device, requiresGrad: true)
                let forwardFlops = 2.0 * Double(B * H) * Double(T) * Double(T) * Double(D)
                let fwd = try measure(seconds: options.secondsPerCase, minReps: options.minReps) {
                    let o = try noGrad { try Tensor.scaledDotProductAttention(q: q, k: k, v: v) }
                    try o.backend.synchronize()
                }
                report(BenchResult(bench: name, name: "forward", label: "T \(T)", device: label, shape: [B, T, H, KV, D],
                                   flops: forwardFlops, timing: fwd, extra: ["formula": "2·B·H·T²·D"]))
                let w = try Tensor.randn([B, T, H, D], seed: 4, on: device)
                let both = try measure(seconds: options.secondsPerCase, minReps: options.minReps) {
                    for t in [q, k, v] { t.zeroGrad() }
                    try (Tensor.scaledDotProductAttention(q: q, k: k, v: v) * w).sum().backward()
                    try q.backend.synchronize()
                }
                report(BenchResult(bench: name, name: "forward+backward", label: "T \(T)", device: label, shape: [B, T, H, KV, D],
                                   flops: 3.5 * forwardFlops, timing: both, extra: ["formula": "3.5 × 2·B·H·T²·D"]))
                // A decoding step: one new query a row over the T cached keys (QKᵀ and PV).
                let query = try Tensor.randn([B, 1, H, D], seed: 5, on: device)
                let decode = try measure(seconds: options.secondsPerCase, minReps: options.minReps) {
                    let o = try noGrad { try Tensor.scaledDotProductAttention(q: query, k: k, v: v) }
                    try o.backend.synchronize()
                }
                report(BenchResult(bench: name, name: "decode", label: "T \(T)", device: label, shape: [B, T, H, KV, D],
                                   flops: 4.0 * Double(B * H) * Double(T) * Double(D), timing: decode,
                                   extra: ["formula": "4·B·H·T·D (one query a row over T keys)"]))
                try device.backend().releaseCachedBuffers()
            }
        }
    }
}

/// `itune-bench step`: one training step (forward, backward, AdamW) of a reference
/// configuration with random weights, batch 4 × 256 tokens (smoke: 2 × 32 of a tiny model), in
/// full and LoRA modes (r 8, alpha 16, q,k,v,o,gate,up,down). Tokens/s, the peak of tensor
/// memory on the device, and the process's peak resident memory.
struct StepBench: Benchmark {
    let name = "step"
    let summary = "training step tokens/s, batch 4×256: tiny and smollm2-135m, full and lora; peak memory"

    static func config(_ name: String) -> ModelConfig? {
        switch name {
        case "tiny":
            return ModelConfig(vocabSize: 8192, hiddenSize: 256, intermediateSize: 688, numLayers: 4, numHeads: 8, numKVHeads: 4,
                               maxPositions: 1024)
        case "smollm2-135m":
            return ModelConfig(vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKVHeads: 3,
                               normEps: 1e-5, ropeTheta: 100000, maxPositions: 2048, tieWordEmbeddings: true)
        case "qwen2.5-0.5b":
            // Qwen2.5-0.5B's shape: 494M parameters, a 151,936-token vocabulary, tied embeddings.
            return ModelConfig(architecture: .qwen2, vocabSize: 151_936, hiddenSize: 896, intermediateSize: 4864, numLayers: 24,
                               numHeads: 14, numKVHeads: 2, headDim: 64, normEps: 1e-6, ropeTheta: 1_000_000, maxPositions: 32768,
                               tieWordEmbeddings: true, qkvBias: true)
        case "llama-1b":
            // Llama-3.2-1B's shape: 1.24B parameters, tied embeddings.
            return ModelConfig(vocabSize: 128_256, hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32,
                               numKVHeads: 8, headDim: 64, normEps: 1e-5, ropeTheta: 500_000, maxPositions: 8192,
                               tieWordEmbeddings: true)
        case "llama-7b":
            // Llama-2-7B's shape: 6.7B parameters.
            return ModelConfig(vocabSize: 32000, hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32,
                               numKVHeads: 32, normEps: 1e-5, maxPositions: 4096)
        case "smoke":
            return ModelConfig(vocabSize: 512, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKVHeads: 2,
                               maxPositions: 128)
        default: return nil
        }
    }

    /// Training FLOPs per token as PaLM counts them (Chowdhery et al. 2022, appendix B):
    /// 6·N + 12·L·H·D·T for full fine-tuning, N the weights that take part in a matmul (every
    /// projection and the LM head; a tied embedding counts once, as the head), L layers, H heads
    /// of D, T the sequence (causal masking is not subtracted, as PaLM does not). Under LoRA the
    /// frozen weights cost their forward and the input gradient, 4·N, the adapters 6·N_adapter,
    /// and attention the same 12·L·H·D·T.
    /// `scored`: the share of tokens whose loss is taken (--answer-fraction); the head's products
    /// are needed for those rows only, so only they count.
    static func flopsPerToken(_ model: LlamaModel, lora: Bool, sequence T: Int, scored: Double = 1) -> Double {
        let c = model.config
        let projections = model.projections()
        let n = Double(projections.reduce(0) { $0 + $1.inFeatures * $1.outFeatures }) + scored * Double(c.vocabSize * c.hiddenSize)
        let adapters = Double(projections.reduce(0) { $0 + ($1.lora.map { $0.a.count + $0.b.count } ?? 0) })
        let attention = 12 * Double(c.numLayers * c.numHeads * c.headDim * T)
        return (lora ? 4 * n + 6 * adapters : 6 * n) + attention
    }

    func run(_ options: BenchOptions, _ report: (BenchResult) -> Void) throws {
        if let ranks = options.ranks { return try RankScaling(options: options, ranks: ranks).run() }
        let configs = options.configs ?? (options.smoke ? ["smoke"] : ["tiny", "smollm2-135m"])
        let modes = options.modes ?? ["full", "lora"]
        for device in options.devices {
            let label = try DeviceLabel(device)
            for cname in configs {
                if cname == "flan-t5-small" {
                    for mode in modes {
                        guard mode == "full" || mode == "lora" else { throw BenchError.usage("unknown mode '\(mode)' (full, lora)") }
                        try runT5(options, device: device, label: label, mode: mode, report)
                    }
                    continue
                }
                guard let config = Self.config(cname) else { throw BenchError.usage("unknown config '\(cname)' (tiny, smollm2-135m, qwen2.5-0.5b, llama-1b, llama-7b, flan-t5-small)") }
                // Batch 4 × 256; the 0.5B model 2 × 256, as people tune it on small machines.
                // The Llama shapes 1 × 512 (issue 17's memory figures).
                let (B, T) = options.smoke ? (2, 32) : cname == "qwen2.5-0.5b" ? (2, 256) : cname.hasPrefix("llama-") ? (1, 512) : (4, 256)
                for mode in modes {
                    guard mode == "full" || mode == "lora" else { throw BenchError.usage("unknown mode '\(mode)' (full, lora)") }
                    for baseName in mode == "lora" ? options.baseDTypes ?? ["f32"] : ["f32"] {
                      for checkpointing in options.gradCheckpointOnly ? [true] : options.gradCheckpoint ? [false, true] : [false] {
                        // nf4/int8: as `train --quantize` loads a bf16 checkpoint: each decoder
                        // projection quantised as soon as it is made (never the whole base in f32,
                        // so that the 7B shape fits), the embeddings and head in bf16.
                        let quant = QuantFormat(rawValue: baseName)
                        guard let base = quant != nil ? DType.bf16 : DType(rawValue: baseName), base == .f32 || base.isHalfFloat else {
                            throw BenchError.usage("unknown --base-dtype '\(baseName)' (f32, bf16, f16, nf4, int8)")
                        }
                        let backend = try device.backend()
                        backend.releaseCachedBuffers()
                        backend.resetPeak()
                        // Under LoRA the frozen matrices are stored as `base` (each made in f32 and
                        // converted, as a 16-bit checkpoint would be loaded without the f32 step).
                        let setting = quant.map {
                            QuantizeSetting(format: $0, doubleQuant: options.doubleQuant && $0 == .nf4, embeddings: options.quantizeEmbeddings)
                        }
                        let model = try QuantizeOnLoad.$setting.withValue(setting) {
                            try LlamaModel(config, on: device, from: randomWeights(seed: 1, storingMatricesAs: base, on: device))
                        }
                        let trainable: [Tensor]
                        if mode == "lora" {
                            // r 8 (alpha 16) as the peers; the Llama shapes r 16 (alpha 32), issue 17's memory rows.
                            let rank = cname.hasPrefix("llama-") ? 16 : 8
                            trainable = try model.addLoRA(LoRAConfig(rank: rank, alpha: Float(2 * rank), dropout: 0), seed: 1)
                        } else {
                            model.setTrainable(true)
                            trainable = model.parameters
                        }
                        // The peak of the step, from the model as it stays (not the conversion's
                        // f32 temporaries, which the pool would otherwise keep).
                        try backend.synchronize()
                        backend.releaseCachedBuffers()
                        backend.resetPeak()
                        let L = options.logEvery
                        let optimizer = try AdamW(parameters: trainable, config: AdamWConfig(learningRate: 1e-4), stepRecords: L)
                        var g = SplitMix64(seed: 3)
                        let tokens = (0..<(B * T)).map { _ in Int32(g.next() % UInt64(config.vocabSize)) }
                        let ids = try Tensor(indices: tokens, shape: [B, T], on: device)
                        // --answer-fraction: each row's first tokens are a prompt the loss ignores.
                        let prompt = min(T - 1, Int((1 - options.answerFraction) * Double(T)))
                        let labels = prompt == 0 ? tokens : tokens.enumerated().map { $0.offset % T < prompt ? -100 : $0.element }
                        let context = TrainingContext(seed: 1)
                        context.gradientCheckpointing = checkpointing
                        let saved = try options.savedTensors ? savedActivations(context: context, optimizer: optimizer) {
                            try model.loss(ids, labels: labels)
                        } : nil
                        let steps = try timeTrainingSteps(options, backend: backend, optimizer: optimizer, context: context) {
                            try model.loss(ids, labels: labels)
                        }
                        let perToken = Self.flopsPerToken(model, lora: mode == "lora", sequence: T, scored: Double(T - prompt) / Double(T))
                        let storage = baseName + (setting?.doubleQuant == true ? "+dq" : "") + (setting?.embeddings == true ? "+emb" : "")
                        let answers = options.answerFraction < 1 ? " answers \(options.answerFraction)" : ""
                        var result = BenchResult(bench: name, name: (baseName == "f32" ? mode : "\(mode) \(storage)") + (checkpointing ? " ckpt" : "") + answers, label: cname,
                                                 device: label, shape: [B, T],
                                                 flops: Double(B * T * L), timing: steps.timing, unit: "tokens/s", unitScale: 1,
                                                 extra: ["mode": mode, "config": cname, "base_dtype": baseName, "grad_checkpoint": checkpointing,
                                                         "double_quant": setting?.doubleQuant == true,
                                                         "quantize_embeddings": setting?.embeddings == true,
                                                         "parameters": model.parameterCount,
                                                         "trainable": trainable.reduce(0) { $0 + $1.count },
                                                         "flops_per_token": perToken, "answer_fraction": options.answerFraction])
                        result.extra.merge(steps.json(backend)) { a, _ in a }
                        if let saved {
                            result.extra["saved_mb"] = Double(saved.reduce(0) { $0 + $1.bytes }) / 1e6
                            result.extra["saved_by_op_mb"] = Dictionary(uniqueKeysWithValues: saved.map { ($0.op, Double($0.bytes) / 1e6) })
                            if !options.json {
                                print("saved for the backward after one forward (\(label.id) \(cname) \(mode) \(baseName)\(checkpointing ? " ckpt" : "")):")
                                for s in saved { print("  \(s.op): \(String(format: "%.1f", Double(s.bytes) / 1e6)) MB") }
                            }
                        }
                        if device == .cpu {
                            // Model FLOP utilisation: the step's FLOPs at this rate over the measured peak.
                            let peak = MachinePeak.ofThisMachine(smoke: options.smoke).gflops
                            result.extra["mfu"] = result.gflopsMedian * perToken / 1e9 / peak
                            result.extra["peak_gflops"] = peak
                        }
                        report(result)
                        if let profile = steps.profile, !options.json { print(profile.table()) }
                        backend.releaseCachedBuffers()
                      }
                    }
                }
            }
        }
    }
}

/// The activations one forward of `loss` leaves alive for its backward, in bytes by the op that
/// made them (largest first; the loss itself included); then the backward runs and the
/// gradients are dropped, so the timed steps start as before.
func savedActivations(context: TrainingContext, optimizer: AdamW, loss: () throws -> Tensor) throws -> [(op: String, bytes: Int)] {
    context.tape.logsOutputs = true
    defer { context.tape.logsOutputs = false }
    let l = try context.run { try loss() }
    let saved = context.tape.liveOutputBytes()
    try context.run { try l.backward() }
    optimizer.zeroGrad()
    return saved
}

/// A training step's timed runs, as `itune-bench step` measures every model: one run is
/// `--log-every` L optimizer steps as the trainer takes them (clipping, the divergence check and
/// AdamW decided on the device, then one read of the L steps' losses and norms, which waits for
/// their forward and backward; the last update runs under the next run). After the first run
/// the counters, resident memory and page faults are taken (a steady-state step should map
/// nothing new, so both stay flat) and, with --profile, profiling starts.
struct TimedTrainingSteps {
    var timing: Timing
    var perStep: StepCounters
    var profile: StepProfile?
    var warmRSS: Double
    var rss: Double
    var faultsPerStep: Double
    var logEvery: Int
    /// The process's resident set when the steps began (the model loaded, the loading's
    /// temporaries handed back), its peak up to then, and its peak over the steps alone; nil
    /// where the system cannot say (only Linux can reset the peak).
    var loadedRSS: Double?
    var loadPeakRSS: Double?
    var stepPeakRSS: Double?

    /// Memory, counters and profile fields of a step row.
    func json(_ backend: any Backend) -> [String: Any] {
        var out: [String: Any] = ["peak_tensor_mb": Double(backend.peakBytesInUse) / 1e6,
                                  "max_rss_mb": rss, "max_rss_after_first_step_mb": warmRSS,
                                  "rss_growth_after_first_step_mb": rss - warmRSS,
                                  "minor_faults_per_step_after_first": faultsPerStep, "log_every": logEvery]
        if let loadedRSS { out["rss_at_first_step_mb"] = loadedRSS }
        if let loadPeakRSS { out["max_rss_loading_mb"] = loadPeakRSS }
        if let stepPeakRSS { out["max_rss_steps_mb"] = stepPeakRSS }
        out.merge(perStep.json) { a, _ in a }
        if let profile { out["profile"] = profile.json }
        return out
    }
}

/// Times `loss` (one micro-batch's forward) with its backward, both in `context`, and the
/// optimizer step; see TimedTrainingSteps.
func timeTrainingSteps(_ options: BenchOptions, backend: any Backend, optimizer: AdamW, context: TrainingContext,
                       loss: () throws -> Tensor) throws -> TimedTrainingSteps {
    let L = options.logEvery
    // The steps' own resident peak, apart from the loading's (random f32 weights converted).
    PeakMemory.trimAllocator()
    let loadPeak = PeakMemory.residentPeakBytes().map { Double($0) / 1e6 }
    let loaded = PeakMemory.currentResidentBytes().map { Double($0) / 1e6 }
    let peakReset = PeakMemory.resetResidentPeak()
    var runs = 0
    var warm = backend.counters
    var warmRSS = 0.0, warmFaults = 0
    let timing = try measure(warmup: options.warmup, seconds: options.secondsPerCase, minReps: options.minReps) {
        for k in 0..<L {
            let l = try context.run { try loss() }
            try context.run { try l.backward() }
            try optimizer.step(losses: [l], maxGradNorm: 1, haltOnNonFinite: false, record: k)
            optimizer.zeroGrad()
        }
        _ = try optimizer.readSteps(L)
        runs += 1
        if runs == 1 {
            if options.profile { try backend.startProfiling() }
            warm = backend.counters
            warmRSS = maxResidentMB()
            warmFaults = minorPageFaults()
        }
    }
    // Counted at enqueue, so taken before the closing wait (which is no step's).
    let perStep = StepCounters(delta: backend.counters.since(warm), steps: (runs - 1) * L)
    let profile = try backend.stopProfiling().map { StepProfile(profile: $0, steps: (L + 1)...(runs * L)) }
    try backend.synchronize()
    let rss = maxResidentMB()  // before the peak's buffers can count
    let stepPeak = peakReset ? PeakMemory.residentPeakBytes().map { Double($0) / 1e6 } : nil
    return TimedTrainingSteps(timing: timing, perStep: perStep, profile: profile, warmRSS: warmRSS, rss: rss,
                              faultsPerStep: Double(minorPageFaults() - warmFaults) / Double(max((runs - 1) * L, 1)),
                              logEvery: L, loadedRSS: loaded, loadPeakRSS: loadPeak, stepPeakRSS: stepPeak)
}

/// Peak resident set size of this process so far, in MB.
func maxResidentMB() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) * 1024 / 1e6  // KiB (until 2026-11-30 this divided by 1e3: 2.4% low)
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss) / 1e6  // bytes
    #endif
}

/// Minor page faults of this process so far (pages mapped for the first time).
func minorPageFaults() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return Int(usage.ru_minflt)
}

/// A step bench's device counters after warm-up, per optimizer step.
struct StepCounters {
    /// What the device did over `steps` timed steps.
    let delta: DeviceCounters
    let steps: Int

    var json: [String: Any] {
        let n = Double(max(steps, 1))
        return ["syncs_per_step": Double(delta.blockingSyncs) / n, "bytes_up_per_step": Double(delta.bytesUploaded) / n,
                "bytes_down_per_step": Double(delta.bytesDownloaded) / n,
                "launches_per_step": Double(delta.totalLaunches) / n,
                "new_buffers_after_warmup": delta.newBuffers]
    }
}
