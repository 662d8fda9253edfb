import Foundation
import ITuneData
import ITuneModels
import ITuneTensor

// Fine-tuning an encoder-decoder model (T5, FLAN-T5, mT5) on input → target examples: full
// fine-tuning or LoRA with PEFT's T5 names, AdamW, a warmup + decay schedule, gradient clipping.
// A library-level loop beside `Trainer` (which trains decoders): same optimizer, schedule and
// clipping, batches of `Seq2SeqBatch`. Checkpointing, evaluation and the CLI go through
// `Trainer` for decoders only so far.

public struct Seq2SeqTrainingOptions: Sendable {
    public var steps: Int
    public var batchSize: Int
    public var learningRate: Float
    public var warmupSteps: Int
    public var weightDecay: Float
    public var maxGradNorm: Float
    /// nil: full fine-tuning.
    public var lora: LoRAConfig?
    public var seed: UInt64

    public init(steps: Int, batchSize: Int = 8, learningRate: Float = 3e-4, warmupSteps: Int = 0, weightDecay: Float = 0,
                maxGradNorm: Float = 1, lora: LoRAConfig? = nil, seed: UInt64 = 0) {
        self.steps = steps
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
        self.weightDecay = weightDecay
        self.maxGradNorm = maxGradNorm
        self.lora = lora
        self.seed = seed
    }
}

/// Trains `model` on `examples` in place (batches in a seeded shuffle, reshuffled each pass);
/// returns the loss of every step. With `options.lora`, adapters are added first and only they
/// train. Why: instruction-tuning T5-family models as transformers + PEFT would.
public func trainSeq2Seq(_ model: T5Model, examples: [Seq2SeqExample], options o: Seq2SeqTrainingOptions) throws -> [Float] {
    guard !examples.isEmpty else { throw TensorError.invalidArgument(op: "trainSeq2Seq", "no examples to train on") }
    guard o.steps > 0, o.batchSize > 0 else {
        throw TensorError.invalidArgument(op: "trainSeq2Seq", "steps \(o.steps) and batch size \(o.batchSize) must be positive")
    }
    let parameters: [Tensor]
    if let lora = o.lora {
        parameters = try model.addLoRA(lora, seed: o.seed)
    } else {
        model.setTrainable(true)
        parameters = model.parameters
    }
    let optimizer = try AdamW(parameters: parameters, config: AdamWConfig(learningRate: o.learningRate, weightDecay: o.weightDecay))
    let schedule = LRSchedule(peak: o.learningRate, warmupSteps: o.warmupSteps, totalSteps: o.steps)
    var order: [Int] = []
    var rng = o.seed &+ 0x9E37_79B9_7F4A_7C15
    var losses: [Float] = []
    for step in 0..<o.steps {
        var rows: [Seq2SeqExample] = []
        while rows.count < min(o.batchSize, examples.count) {
            if order.isEmpty {
                order = Array(examples.indices)
                for i in stride(from: order.count - 1, to: 0, by: -1) {  // Fisher–Yates, splitmix64
                    rng = rng &+ 0x9E37_79B9_7F4A_7C15
                    var z = rng
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    order.swapAt(i, Int((z ^ (z >> 31)) % UInt64(i + 1)))
                }
            }
            rows.append(examples[order.removeLast()])
        }
        let batch = Seq2SeqBatch(rows, padID: Int32(model.config.padTokenID))
        let ids = try Tensor(indices: batch.inputIDs, shape: [batch.batch, batch.inputLength], on: model.device)
        let loss = try model.loss(inputIDs: ids, mask: batch.inputMask, labels: batch.labels, decoderLength: batch.targetLength)
        try loss.backward()
        _ = try clipGradients(optimizer.parameters, maxNorm: o.maxGradNorm)
        try optimizer.update(learningRate: schedule.rate(at: step + 1))
        optimizer.zeroGrad()
        losses.append(try loss.item())
    }
    return losses
}
