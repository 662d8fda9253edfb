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
        let steps = try timeTrainingSteps(options, backend: backend, optimizer: optimizer, context: context) {
            try model.loss(inputIDs: ids, labels: labels, decoderLength: Td)
        }
        var result = BenchResult(bench: name, name: mode, label: "flan-t5-small", device: label, shape: [B, Te, Td],
                                 flops: Double(B * (Te + Td) * L), timing: steps.timing, unit: "tokens/s", unitScale: 1,
                                 extra: ["mode": mode, "config": "flan-t5-small", "base_dtype": "f32", "grad_checkpoint": false,
                                         "parameters": model.parameterCount,
                                         "trainable": trainable.reduce(0) { $0 + $1.count },
                                         "input_tokens": B * Te, "target_tokens": B * Td])
        result.extra.merge(steps.json(backend)) { a, _ in a }
        report(result)
        if let profile = steps.profile, !options.json { print(profile.table()) }
        backend.releaseCachedBuffers()
    }
}
