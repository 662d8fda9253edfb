import Foundation
import ITuneData
import ITuneModels
import ITuneTensor

// Fine-tuning an encoder-decoder model (T5, FLAN-T5, mT5) on input → target examples: full
// fine-tuning or LoRA with PEFT's T5 names, AdamW, a warmup + decay schedule, gradient clipping.
// The loop is `Trainer`'s, whose rows then carry a target (TrainingRow(input:target:)).

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

/// Trains `model` on `examples` in place with `Trainer` (the loop every run takes: batches in
/// a seeded shuffle per epoch, AdamW, warm-up then cosine decay, clipping); returns the loss of
/// every step. With `options.lora`, adapters are added first and only they train. The trainer's
/// files (metrics.jsonl, the loss curve) go to a temporary directory removed at the end; a run
/// that wants checkpoints and `--resume` uses `Trainer` (or `itune-gpu train`) with its own
/// output directory. Why: instruction-tuning T5-family models as transformers + PEFT would.
public func trainSeq2Seq(_ model: T5Model, examples: [Seq2SeqExample], options o: Seq2SeqTrainingOptions) throws -> [Float] {
    guard !examples.isEmpty else { throw TensorError.invalidArgument(op: "trainSeq2Seq", "no examples to train on") }
    guard o.steps > 0, o.batchSize > 0 else {
        throw TensorError.invalidArgument(op: "trainSeq2Seq", "steps \(o.steps) and batch size \(o.batchSize) must be positive")
    }
    let trainable: [(String, Tensor)]
    if let lora = o.lora {
        try model.addLoRA(lora, seed: o.seed)
        trainable = model.loraParameters
    } else {
        model.setTrainable(true)
        trainable = model.namedParameters()
    }
    var t = TrainerOptions()
    t.batchSize = o.batchSize
    t.maxSteps = o.steps
    t.optimizer = AdamWConfig(learningRate: o.learningRate, weightDecay: o.weightDecay)
    t.warmupSteps = o.warmupSteps
    t.maxGradNorm = o.maxGradNorm
    t.seed = o.seed
    t.padID = Int32(model.config.padTokenID)
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("itune-seq2seq-\(getpid())-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: out) }
    let summary = try Trainer(model: model, trainable: trainable, options: t,
                              train: examples.map { TrainingRow(input: $0.input, target: $0.target) }, outputDirectory: out).run()
    return summary.history.map { Float($0.1) }
}
