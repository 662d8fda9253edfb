import Foundation
import ITune

// `itune-bench step --configs flan-t5-small`: one training step of google/flan-t5-small's shape
// (T5 v1.1: d_model 512, 8 encoder and 8 decoder layers, 6 heads of 64, d_ff 1024 gated-GELU,
// vocabulary 32128, untied lm_head) with random weights, batch 4 × (256 input, 64 target)
// tokens (smoke: 2 × (32, 8)), full and LoRA (r 8, alpha 16 on q,k,v,o,wi_0,wi_1,wo of both
// stacks). tokens/s counts the tokens of both sides. scripts/bench_peers.py runs the same step
// with transformers' T5ForConditionalGeneration (+ PEFT).

extension StepBench {
    static let flanT5Small = T5Config(vocabSize: 32128, dModel: 512, dKV: 64, dFF: 1024, numLayers: 8, numHeads: 6,
                                      activation: .geluNew, gated: true, tieWordEmbeddings: false)
    static let flanT5SmallLoRATargets = ["q", "k", "v", "o", "wi_0", "wi_1", "wo"]

    func runT5(_ options: BenchOptions, device: Device, label: DeviceLabel, mode: String, _ report: (BenchResult) -> Void) throws {
        let (B, Te, Td) = options.smoke ? (2, 32, 8) : (4, 256, 64)
        let c = Self.flanT5Small
        let backend = try device.backend()
        backend.releaseCachedBuffers()
        backend.resetPeak()
        let model = try T5Model(c, seed: 1, on: device)
        let trainable: [Tensor]
        if mode == "lora" {
            trainable = try model.addLoRA(LoRAConfig(rank: 8, alpha: 16, dropout: 0, targetModules: Self.flanT5SmallLoRATargets), seed: 1)
        } else {
            model.setTrainable(true)
            trainable = model.parameters
        }
        try backend.synchronize()
        backend.releaseCachedBuffers()
        backend.resetPeak()
        let L = options.logEvery
        let optimizer = try AdamW(parameters: trainable, config: AdamWConfig(learningRate: 1e-4), stepRecords: L)
        var g = SplitMix64(seed: 3)
        let inputs = (0..<(B * Te)).map { _ in Int32(g.next() % UInt64(c.vocabSize)) }
        let labels = (0..<(B * Td)).map { _ in Int32(g.next() % UInt64(c.vocabSize)) }
        let ids = try Tensor(indices: inputs, shape: [B, Te], on: device)
        let context = TrainingContext(seed: 1)
        var runs = 0
        var warm = backend.counters
        var warmRSS = 0.0
        let timing = try measure(warmup: 1, seconds: options.secondsPerCase, minReps: options.minReps) {
            for k in 0..<L {
                let loss = try context.run { try model.loss(inputIDs: ids, labels: labels, decoderLength: Td) }
                try context.run { try loss.backward() }
                try optimizer.step(losses: [loss], maxGradNorm: 1, haltOnNonFinite: false, record: k)
                optimizer.zeroGrad()
            }
            _ = try optimizer.readSteps(L)
            runs += 1
            if runs == 1 {
                warm = backend.counters
                warmRSS = maxResidentMB()
            }
        }
        let perStep = StepCounters(delta: backend.counters.since(warm), steps: (runs - 1) * L)
        try backend.synchronize()
        let rss = maxResidentMB()
        var result = BenchResult(bench: name, name: mode, label: "flan-t5-small", device: label, shape: [B, Te, Td],
                                 flops: Double(B * (Te + Td) * L), timing: timing, unit: "tokens/s", unitScale: 1,
                                 extra: ["mode": mode, "config": "flan-t5-small", "base_dtype": "f32", "grad_checkpoint": false,
                                         "parameters": model.parameterCount,
                                         "trainable": trainable.reduce(0) { $0 + $1.count },
                                         "input_tokens": B * Te, "target_tokens": B * Td,
                                         "peak_tensor_mb": Double(backend.peakBytesInUse) / 1e6,
                                         "max_rss_mb": rss, "max_rss_after_first_step_mb": warmRSS,
                                         "rss_growth_after_first_step_mb": rss - warmRSS])
        result.extra.merge(perStep.json) { a, _ in a }
        result.extra["log_every"] = L
        report(result)
        backend.releaseCachedBuffers()
    }
}
