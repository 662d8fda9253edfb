import Foundation
import ITuneModels
import ITuneTensor

// Every numeric option is checked before anything is loaded or allocated, with the option named
// as the command line spells it, in the ranges PyTorch's AdamW (lr ≥ 0, 0 ≤ beta < 1, eps ≥ 0,
// weight decay ≥ 0) and PEFT's LoRA (r > 0, dropout in [0, 1)) accept. A value outside them
// would otherwise trap, fail mid-run, or train nonsense without saying so.

/// An option whose value cannot work, named as the command line spells it.
public struct OptionError: Error, CustomStringConvertible, Equatable {
    /// The long option name without dashes, e.g. "lora-rank".
    public var option: String
    /// What is wrong, e.g. "must be at least 1, not 0".
    public var message: String

    public init(option: String, message: String) {
        self.option = option
        self.message = message
    }

    public var description: String { "--\(option) \(message)" }
}

/// Range checks that throw `OptionError`s; NaN fails every one of them.
public enum OptionCheck {
    /// value ≥ minimum (whole numbers).
    public static func atLeast(_ value: Int, _ minimum: Int, _ option: String) throws {
        guard value >= minimum else { throw OptionError(option: option, message: "must be at least \(minimum), not \(value)") }
    }

    /// A finite value ≥ 0.
    public static func nonNegative<F: BinaryFloatingPoint>(_ value: F, _ option: String) throws {
        guard value.isFinite, value >= 0 else { throw OptionError(option: option, message: "must be a finite number ≥ 0, not \(value)") }
    }

    /// lower ≤ value < upper, or ≤ upper when `closed`.
    public static func inRange<F: BinaryFloatingPoint>(_ value: F, _ lower: F, _ upper: F, closed: Bool = false,
                                                       _ option: String) throws {
        guard value >= lower, closed ? value <= upper : value < upper else {
            throw OptionError(option: option, message: "must be in [\(lower), \(upper)\(closed ? "]" : ")"), not \(value)")
        }
    }
}

extension TrainerOptions {
    /// Checks every option's range; the trainer calls it before allocating anything.
    public func validate() throws {
        try OptionCheck.atLeast(batchSize, 1, "batch-size")
        try OptionCheck.atLeast(gradientAccumulation, 1, "grad-accum")
        try OptionCheck.atLeast(epochs, 1, "epochs")
        if let maxSteps { try OptionCheck.atLeast(maxSteps, 1, "max-steps") }
        try OptionCheck.nonNegative(optimizer.learningRate, "lr")
        try OptionCheck.nonNegative(optimizer.weightDecay, "weight-decay")
        try OptionCheck.inRange(optimizer.beta1, 0, 1, "beta1")
        try OptionCheck.inRange(optimizer.beta2, 0, 1, "beta2")
        try OptionCheck.nonNegative(optimizer.eps, "adam-eps")
        try OptionCheck.inRange(warmupRatio, 0, 1, closed: true, "warmup-ratio")
        if let warmupSteps { try OptionCheck.atLeast(warmupSteps, 0, "warmup-steps") }
        // ≤ 0 turns clipping off, as in transformers; NaN or infinity is a mistake.
        guard maxGradNorm.isFinite else { throw OptionError(option: "max-grad-norm", message: "must be a finite number, not \(maxGradNorm)") }
        try OptionCheck.atLeast(evalEvery, 0, "eval-every")
        try OptionCheck.atLeast(saveEvery, 0, "save-every")
        try OptionCheck.atLeast(keepCheckpoints, 1, "keep-checkpoints")
        // Each step between two reads keeps 12 bytes of records on the device.
        guard logEvery >= 1, logEvery <= 100_000 else {
            throw OptionError(option: "log-every", message: "must be in [1, 100000], not \(logEvery)")
        }
        guard padID >= 0 else { throw OptionError(option: "pad-id", message: "must be at least 0, not \(padID)") }
    }
}

extension FineTuneConfig {
    /// Checks every option that can be checked without the model: ranges, and that there is
    /// data. `FineTuneJob.run` calls it first; a config file gets the same checks.
    public func validate() throws {
        guard !model.isEmpty else { throw OptionError(option: "model", message: "is required (a Hugging Face model directory)") }
        guard !data.isEmpty || mixture != nil else {
            throw OptionError(option: "data", message: "is required: give --data FILE (instruction records) or --mixture FILE")
        }
        try OptionCheck.inRange(validationSplit, 0, 1, "validation-split")
        try OptionCheck.atLeast(maxLength, 1, "max-length")
        try OptionCheck.atLeast(samples, 0, "samples")
        guard bucketMB.isFinite, bucketMB > 0, bucketMB <= 2048 else {
            throw OptionError(option: "bucket-mb", message: "must be a number of MB in (0, 2048], not \(bucketMB)")
        }
        try OptionCheck.atLeast(ranks, 1, "ranks")
        if let padID { try OptionCheck.atLeast(Int(padID), 0, "pad-id") }
        if mode == .lora && initAdapter == nil {
            try OptionCheck.atLeast(lora.rank, 1, "lora-rank")
            guard lora.alpha.isFinite, lora.alpha > 0 else {
                throw OptionError(option: "lora-alpha", message: "must be a finite number > 0, not \(lora.alpha)")
            }
            try OptionCheck.inRange(lora.dropout, 0, 1, "lora-dropout")
            guard !lora.targetModules.isEmpty, !lora.targetModules.contains("") else {
                throw OptionError(option: "lora-targets", message: "must name at least one module (e.g. q_proj,v_proj), not '\(lora.targetModules.joined(separator: ","))'")
            }
        }
        if mode == .full, let base = baseDType, base != .f32 {
            throw OptionError(option: "base-dtype", message: "\(base.rawValue) stores a frozen base; full fine-tuning trains every weight in f32 (--precision bf16 gives bf16 matmuls with f32 master weights)")
        }
        if mode == .full, let q = quantize {
            throw OptionError(option: "quantize", message: "\(q.rawValue) quantises a frozen base under LoRA; full fine-tuning trains every weight in f32")
        }
        if quantizeEmbeddings, quantize == nil {
            throw OptionError(option: "quantize-embeddings", message: "quantises the embeddings in the base's format: give it with --quantize nf4 or int8")
        }
        if doubleQuant, quantize != .nf4 {
            throw OptionError(option: "double-quant", message: "quantises nf4's absmax constants: give it with --quantize nf4")
        }
        if mode == .lora, precision != .f32 {
            throw OptionError(option: "precision", message: "\(precision.rawValue) is for full fine-tuning (--full); under LoRA, --base-dtype keeps the frozen base in 16 bits")
        }
        try validatePreference()
        try trainer.validate()
    }

    /// The preference options: in range, and only with what preference training supports.
    func validatePreference() throws {
        guard method != .sft else { return }
        guard beta.isFinite, beta > 0 else { throw OptionError(option: "beta", message: "must be a finite number > 0, not \(beta)") }
        try OptionCheck.inRange(labelSmoothing, 0, 0.5, "label-smoothing")
        try OptionCheck.nonNegative(lambda, "lambda")
        let m = method.rawValue
        if packing { throw OptionError(option: "packing", message: "is off for --method \(m): each pair's chosen and rejected rows are scored whole") }
        if mixture != nil { throw OptionError(option: "mixture", message: "samples instruction tasks; --method \(m) reads preference pairs from --data") }
        if trainOnInputs { throw OptionError(option: "train-on-inputs", message: "does not apply to --method \(m): the pairs are compared on their answers") }
        if method == .orpo && precomputeRef { throw OptionError(option: "precompute-ref", message: "is for DPO: ORPO has no reference model") }
        if lossType == .ipo && labelSmoothing != 0 {
            throw OptionError(option: "label-smoothing", message: "applies to the sigmoid loss (conservative DPO), not to --loss-type ipo")
        }
    }

    /// The checks that need the loaded model, made before any adapter is allocated: the LoRA
    /// targets exist and r is no larger than any adapted layer's smaller dimension (as PEFT
    /// requires), and the pad id is in the vocabulary.
    public func validate(for model: any CausalLM, lora: LoRAConfig) throws {
        if let padID, Int(padID) >= model.config.vocabSize {
            throw OptionError(option: "pad-id", message: "must be below the vocabulary size \(model.config.vocabSize), not \(padID)")
        }
        guard mode == .lora, initAdapter == nil else { return }
        let targets = model.loraTargets(lora)
        guard !targets.isEmpty else {
            throw OptionError(option: "lora-targets", message: "matches no module of this model (\(lora.targetModules.joined(separator: ","))); its projections are named like \(Set(model.projections().map { $0.name.split(separator: ".").last.map(String.init) ?? $0.name }).sorted().joined(separator: ", "))")
        }
        // The narrowest adapted layer bounds r.
        if let t = targets.min(by: { min($0.inFeatures, $0.outFeatures) < min($1.inFeatures, $1.outFeatures) }),
           lora.rank > min(t.inFeatures, t.outFeatures) {
            throw OptionError(option: "lora-rank", message: "must be at most \(min(t.inFeatures, t.outFeatures)), the smaller dimension of \(t.name) (\(t.outFeatures)×\(t.inFeatures)), not \(lora.rank)")
        }
    }
}

extension GenerationOptions {
    /// Checks the token budget and the sampling options (`max-new-tokens`, `temperature`,
    /// `top-k`, `top-p` as `itune-gpu generate` spells them).
    public func validate() throws {
        try OptionCheck.atLeast(maxNewTokens, 1, "max-new-tokens")
        try OptionCheck.nonNegative(sampling.temperature, "temperature")
        try OptionCheck.atLeast(sampling.topK, 0, "top-k")
        guard sampling.topP > 0, sampling.topP <= 1 else {
            throw OptionError(option: "top-p", message: "must be in (0, 1], not \(sampling.topP)")
        }
    }
}
