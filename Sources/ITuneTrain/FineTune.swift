import Foundation
import ITuneData
import ITuneDistributed
import ITuneModels
import ITuneTensor
import ITuneTokenizers

/// Everything a fine-tuning run needs, with the defaults `itune-gpu train` uses (stated here
/// once: the command's help and `FineTuneConfig.options` take them from these initial values).
/// Codable with the long option names as keys (`lora-rank`, `batch-size`, `lr`): a run writes
/// it as `itune_config.json`, and `--config` reads the same keys (see FineTuneOptions.swift).
public struct FineTuneConfig: Sendable, Equatable {
    public enum Mode: String, Codable, Sendable, CaseIterable { case lora, full }

    /// The Hugging Face model directory.
    public var model: String
    /// Training data files or directories.
    public var data: [String]
    /// A mixture file (itune-gpu select writes one): tasks sampled FLAN-style instead of `data`.
    public var mixture: String? = nil
    public var format: RecordFormat? = nil
    /// A validation file, or else this fraction of the data held out.
    public var validationData: [String] = []
    public var validationSplit: Double = 0.05
    /// Template name; nil: the model's chat_template when recognised, else alpaca.
    public var template: String? = nil
    public var output = "itune-output"
    public var mode = Mode.lora
    public var lora = LoRAConfig()
    public var trainer = TrainerOptions()
    public var maxLength = 1024
    public var packing = false
    public var trainOnInputs = false
    public var skipBadRecords = false
    public var initAdapter: String? = nil
    /// The id that pads batches; nil: the tokenizer's pad token, else its eos, else 0. The
    /// `itune_config.json` of a run records the id used.
    public var padID: Int32? = nil
    public var resume = false
    /// Resume even when options that change the loss curve differ from the saved run's.
    public var resumeAnyway = false
    /// Generations written at the end, from held-out instructions.
    public var samples = 3
    /// Time every kernel of the steps (the summary's `profile`; `itune-gpu train --profile`).
    public var profile = false
    /// How the frozen base's matrices are stored under LoRA; nil: as the checkpoint stores
    /// them. Full fine-tuning keeps f32 weights (see `precision`).
    public var baseDType: BaseDType? = nil
    /// The linear layers' matmul precision; `.bf16` (full fine-tuning) keeps f32 master
    /// weights and optimizer state, as autocast does.
    public var precision = MatmulPrecision.f32
    /// Keep only each decoder block's input in the forward and recompute the block in the
    /// backward (same loss and gradients, less activation memory, about one more forward).
    public var gradCheckpoint = false
    /// LoRA: the frozen base's projections stored blockwise quantised (nf4 or int8).
    public var quantize: QuantFormat? = nil
    /// With `quantize` nf4: the absmax constants quantised too (QLoRA's double quantisation).
    public var doubleQuant = false
    /// With `quantize`: the token embeddings and the head quantised too (rotary decoders).
    public var quantizeEmbeddings = false
    /// Data parallel: gradients are summed over the ranks in buckets of this many MB.
    public var bucketMB = 25.0
    /// The ranks of the run (set from the launcher, recorded in itune_config.json): the global
    /// batch is batch-size × ranks × grad-accum.
    public var ranks = 1
    /// sft: instruction data; dpo, orpo: preference pairs ({prompt, chosen, rejected}).
    public var method = TrainingMethod.sft
    /// DPO's β (IPO's τ).
    public var beta = 0.1
    /// Conservative DPO's ε (the sigmoid loss), in [0, 0.5).
    public var labelSmoothing = 0.0
    public var lossType = PreferenceLossType.sigmoid
    /// ORPO's λ.
    public var lambda = 0.1
    /// DPO: compute the reference log-probabilities once before training (for full
    /// fine-tuning: no frozen copy of the model in memory).
    public var precomputeRef = false

    public init(model: String = "", data: [String] = []) {
        self.model = model
        self.data = data
    }

    /// The preference objective of a dpo/orpo run; nil for sft.
    public var preferenceObjective: PreferenceObjective? {
        method == .sft ? nil : PreferenceObjective(method: method, beta: beta, labelSmoothing: labelSmoothing, lossType: lossType, lambda: lambda)
    }

    /// `mode == .full`, as the `full` option spells it.
    var full: Bool {
        get { mode == .full }
        set { mode = newValue ? .full : .lora }
    }
}

/// The storage of a LoRA run's frozen base matrices (`--base-dtype`).
public enum BaseDType: String, Codable, Sendable, CaseIterable {
    case f32, bf16, f16

    public var dtype: DType {
        switch self {
        case .f32: return .f32
        case .bf16: return .bf16
        case .f16: return .f16
        }
    }
}

/// What a run produced.
public struct FineTuneResult: Sendable {
    public var summary: TrainingSummary
    /// The PEFT adapter directory (LoRA) or the model directory (full).
    public var outputDirectory: URL
    public var stats: TokenizeStats
    public var samples: [(instruction: String, expected: String, got: String)]
}

/// Loads a Hugging Face model directory and instruction data, and fine-tunes: LoRA adapters
/// written in PEFT's format, or all weights written as a model directory.
public struct FineTuneJob {
    public let config: FineTuneConfig
    public let device: Device
    /// The ranks of a data-parallel run: each trains on its share of every global batch, and
    /// rank 0 alone logs and writes.
    public let communicator: any Communicator

    public init(config: FineTuneConfig, device: Device, communicator: any Communicator = SingleProcessCommunicator()) {
        self.config = config
        self.device = device
        self.communicator = communicator
    }

    public func run(log rootLog: (String) -> Void = { print($0) }, onEvent: (TrainerEvent) -> Void = { _ in }) throws -> FineTuneResult {
        var c = config
        c.ranks = communicator.size
        try c.validate()
        let root = communicator.isRoot
        func log(_ line: String) { if root { rootLog(line) } }
        let modelDir = URL(fileURLWithPath: c.model)
        if try ModelFamily.of(directory: modelDir).kind == .encoderDecoder {
            guard c.method == .sft else {
                throw OptionError(option: "method", message: "\(c.method.rawValue) trains decoder-only models; \(c.model) is an encoder-decoder (T5) model")
            }
            return try runSeq2Seq(c, log: log, onEvent: onEvent)
        }
        let out = URL(fileURLWithPath: c.output)
        let configURL = out.appendingPathComponent("itune_config.json")
        if c.resume, root { try checkResumable(c, savedConfig: configURL, log: log) }
        // Under LoRA the base is frozen and may stay in 16 bits; trained weights are f32.
        let matrices: DType = c.mode == .lora ? try c.baseDType?.dtype ?? Checkpoint(directory: modelDir).matrixDType() : .f32
        // --quantize (LoRA): each projection quantised as it is read (one full matrix at a time).
        let onLoad = c.mode == .lora ? c.quantize.map {
            QuantizeSetting(format: $0, doubleQuant: c.doubleQuant, embeddings: c.quantizeEmbeddings)
        } : nil
        let bundle = try QuantizeOnLoad.$setting.withValue(onLoad) { try ModelBundle(directory: modelDir, on: device, matrices: matrices) }
        let model = bundle.model, tokenizer = bundle.tokenizer
        log(String(format: "model: %@ (%@, %.1fM parameters, matrices stored as %@) loaded in %.2f s on %@", modelDir.path,
                   model.config.architecture.rawValue, Double(model.parameterCount) / 1e6, matrices.rawValue, bundle.loadSeconds,
                   "\(device)"))
        if c.precision == .bf16 { log("precision: bf16 matmuls (f32 accumulation), f32 master weights and AdamW state") }
        let (template, why) = try PromptTemplate.resolve(c.template, tokenizer: tokenizer)
        log("template: \(template.name) (\(why))")

        // Data: files, or a task mixture sampled from its files; preference pairs for dpo/orpo.
        var trainExamples: [Example] = [], validationExamples: [Example] = []
        var preferenceData: (train: [TrainingRow], validation: [TrainingRow], stats: TokenizeStats)?
        if c.method != .sft {
            preferenceData = try preferenceRows(c, tokenizer: tokenizer, template: template, log: log)
        } else {
            (trainExamples, validationExamples) = try readExamples(c, log: log)
        }
        let options = TokenizeOptions(template: template, maxLength: c.maxLength, trainOnInputs: c.trainOnInputs)
        let (train, stats) = preferenceData != nil ? ([], preferenceData!.stats) : try DatasetTokenizer.tokenize(trainExamples, tokenizer, options)
        if let noRows = stats.noRowsError(maxLength: c.maxLength) { throw noRows }
        let (validation, _) = try DatasetTokenizer.tokenize(validationExamples, tokenizer, options)
        if preferenceData == nil {
            log("tokens: \(stats.tokens) in \(train.count) training examples; \(stats.truncated) truncated to \(c.maxLength) (\(stats.truncatedTokens) tokens cut), \(stats.droppedNoAnswer) dropped with no answer left; \(validation.count) validation examples")
        }
        var rows: [TrainingRow]
        var validationRows = validation.map { TrainingRow(ids: $0.ids, labels: $0.labels) }
        if let preferenceData {
            rows = preferenceData.train
            validationRows = preferenceData.validation
        } else if c.packing {
            rows = DatasetTokenizer.pack(permutation(count: train.count, seed: c.trainer.seed).map { train[$0] }, rowLength: c.maxLength)
                .map { TrainingRow(ids: $0.ids, labels: $0.labels, lengths: $0.lengths) }
            log("packing: \(train.count) examples into \(rows.count) rows of up to \(c.maxLength) tokens")
        } else {
            rows = train.map { TrainingRow(ids: $0.ids, labels: $0.labels) }
        }

        // What trains.
        let trainable: [(String, Tensor)]
        var loraConfig = c.lora
        switch c.mode {
        case .lora:
            if loraConfig.targetModules == LoRAConfig.llamaTargets { loraConfig.targetModules = model.defaultLoRATargets }
            try c.validate(for: model, lora: loraConfig)
            if let initDir = c.initAdapter {
                loraConfig = try model.loadAdapter(from: URL(fileURLWithPath: initDir), trainable: true)
                log("LoRA: starting from the adapter in \(initDir) (r \(loraConfig.rank), alpha \(loraConfig.alpha))")
            } else {
                try model.addLoRA(loraConfig, seed: c.trainer.seed)
            }
            trainable = model.loraParameters
            if let format = c.quantize {
                let n = try model.quantizeBase(format, doubleQuant: c.doubleQuant)
                let quantizedBytes = model.projections().compactMap { $0.quantizedWeight?.byteCount }.reduce(0, +)
                log("quantize: \(n) frozen projections stored as \(format.rawValue) blocks of \(BlockQuantizedMatrix.blockSize)\(c.doubleQuant ? " with double-quantised constants" : ""): \(String(format: "%.1f", Double(quantizedBytes) / 1e6)) MB")
                if c.quantizeEmbeddings {
                    guard model.quantizedOutputEmbedding != nil else {
                        throw OptionError(option: "quantize-embeddings", message: "is implemented for the rotary decoders (Llama, Qwen2, Mistral, Phi-3); \(model.config.architecture.rawValue) keeps its embeddings as stored")
                    }
                    let bytes = model.quantizedEmbeddings.reduce(0) { $0 + $1.byteCount }
                    log("quantize: the token embeddings\(model.quantizedEmbeddings.count > 1 ? " and lm_head" : " (tied to the head)") stored as \(format.rawValue) blocks: \(String(format: "%.1f", Double(bytes) / 1e6)) MB")
                }
            }
            let count = trainable.reduce(0) { $0 + $1.1.count }
            log(String(format: "LoRA: r %d, alpha %g%@, dropout %g on %@: %d trainable parameters (%.2f%% of %.1fM)",
                       loraConfig.rank, loraConfig.alpha, loraConfig.useRSLoRA ? " (rsLoRA)" : "", loraConfig.dropout,
                       loraConfig.targetModules.joined(separator: ","), count,
                       100 * Double(count) / Double(model.parameterCount), Double(model.parameterCount) / 1e6))
        case .full:
            model.setTrainable(true)
            trainable = model.namedParameters()
            log("full fine-tuning: \(model.parameterCount) parameters")
        }

        if c.mode == .full { try c.validate(for: model, lora: loraConfig) }
        // The config written below records the pad id used.
        c.padID = c.padID ?? Int32(tokenizer.padTokenID ?? tokenizer.eosTokenID ?? 0)
        var trainerOptions = c.trainer
        trainerOptions.padID = c.padID ?? 0
        trainerOptions.preference = c.preferenceObjective
        // DPO's reference: the adapters switched off (LoRA), a frozen copy (full), or log-probs
        // computed now, before any step (and before --resume loads a checkpoint).
        var reference: PreferenceReference?
        if c.method == .dpo {
            if c.precomputeRef {
                let now: PreferenceReference = c.mode == .lora ? .adaptersOff : .frozen(model)
                let began = Date()
                rows = try precomputeReferenceLogProbs(model: model, reference: now, rows: rows, batchSize: trainerOptions.batchSize,
                                                       padID: trainerOptions.padID)
                validationRows = try precomputeReferenceLogProbs(model: model, reference: now, rows: validationRows,
                                                                 batchSize: trainerOptions.batchSize, padID: trainerOptions.padID)
                reference = .precomputed
                log(String(format: "reference: log-probabilities of %d pairs computed before training (%.1f s)", rows.count + validationRows.count,
                           Date().timeIntervalSince(began)))
            } else if c.mode == .lora {
                reference = .adaptersOff
                log("reference: the base model with the LoRA adapters switched off")
            } else {
                let copy = try ModelBundle(directory: modelDir, on: device, matrices: .f32).model
                copy.setTrainable(false)
                reference = .frozen(copy)
                log("reference: a frozen copy of \(modelDir.path) (--precompute-ref computes its log-probabilities once instead)")
            }
        }
        if let o = trainerOptions.preference {
            log(o.method == .orpo ? "objective: ORPO, lambda \(o.lambda)"
                : "objective: DPO \(o.lossType.rawValue), beta \(o.beta)\(o.labelSmoothing > 0 ? ", label smoothing \(o.labelSmoothing)" : "")")
        }
        let trainer = try Trainer(model: model, trainable: trainable, options: trainerOptions, train: rows,
                                  validation: validationRows, outputDirectory: out,
                                  communicator: communicator, bucketBytes: Int(c.bucketMB * 1_048_576))
        trainer.reference = reference
        trainer.profile = c.profile
        trainer.context.matmulPrecision = c.precision
        trainer.context.gradientCheckpointing = c.gradCheckpoint
        if c.gradCheckpoint { log("gradient checkpointing: each block's input kept, the block recomputed in the backward") }
        let longest = rows.map(\.ids.count).max() ?? c.maxLength
        log(MemoryEstimate(model: model, trainable: trainable.map(\.1), tokensPerMicroBatch: trainerOptions.batchSize * longest, checkpointing: c.gradCheckpoint).description)
        let ranks = communicator.size > 1 ? " × \(communicator.size) ranks = global batch \(trainer.globalBatchSize * trainerOptions.gradientAccumulation)" : ""
        log("training: \(trainer.totalSteps) steps (\(trainer.stepsPerEpoch) per epoch), batch \(trainerOptions.batchSize) × \(trainerOptions.gradientAccumulation) accumulation\(ranks), lr \(trainerOptions.optimizer.learningRate) \(trainerOptions.decay.rawValue) with \(trainer.schedule.warmupSteps) warm-up steps")
        if root {
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            try OutputFiles.writeAtomically(c.encodedJSON(), to: configURL)
        }
        let summary = try trainer.run(resume: c.resume, onEvent: onEvent)
        // The other ranks hold the same weights; rank 0 writes them and the samples.
        guard root else {
            return FineTuneResult(summary: summary, outputDirectory: out, stats: stats, samples: [])
        }

        // Outputs.
        let final: URL
        switch c.mode {
        case .lora:
            final = out.appendingPathComponent("adapter")
            try model.saveAdapter(to: final, config: loraConfig, baseModel: modelDir.path)
        case .full:
            final = out.appendingPathComponent("model")
            try model.savePretrained(to: final, tokenizerDirectory: modelDir)
        }
        // Sample generations on held-out (or training) instructions, decoded together as one
        // batch per kind of prompt (raw or templated: they differ in the special tokens added).
        var picked: [(instruction: String, response: String, prompt: String, raw: Bool)] = []
        for e in (validationExamples.isEmpty ? trainExamples : validationExamples).prefix(preferenceData == nil ? c.samples : 0) {
            guard let turn = e.conversation.turns.first, e.conversation.text == nil else { continue }
            let prompt = e.rawPrompt ? turn.instruction : try template.generationPrompt(instruction: turn.instruction, input: turn.input,
                                                                                        system: e.conversation.system)
            picked.append((turn.instruction, turn.response, prompt, e.rawPrompt))
        }
        var texts = [String](repeating: "", count: picked.count)
        for raw in [false, true] {
            let rows = picked.indices.filter { picked[$0].raw == raw }
            guard !rows.isEmpty else { continue }
            let out = try bundle.generate(prompts: rows.map { picked[$0].prompt }, options: GenerationOptions(maxNewTokens: 64),
                                          stopStrings: template.stopStrings, addSpecialTokens: raw || !template.writesOwnSpecialTokens)
            for (row, o) in zip(rows, out) { texts[row] = o.text }
        }
        let samples = zip(picked, texts).map { ($0.instruction, $0.response, $1.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return FineTuneResult(summary: summary, outputDirectory: final, stats: stats, samples: samples)
    }
}

extension FineTuneJob {
    /// The run's examples: the data files, or a task mixture sampled from its files (or both),
    /// and the validation examples (`--validation-data`, else `--validation-split` of them).
    func readExamples(_ c: FineTuneConfig, log: (String) -> Void) throws -> (train: [Example], validation: [Example]) {
        var allExamples: [Example] = []
        if !c.data.isEmpty {
            let loaded = try DatasetReader.read(c.data, format: c.format, skipBadRecords: c.skipBadRecords)
            for f in loaded.files { log("data: \(f.path): \(f.records) examples (\(f.format.rawValue))") }
            if loaded.skipped > 0 {
                log("warning: skipped \(loaded.skipped) bad record(s); first: \(loaded.skipMessages.joined(separator: " | "))")
            }
            allExamples = loaded.examples
        }
        if let path = c.mixture {
            let mixture = try Mixture.read(path)
            let tasks = try mixture.tasks.map { t in
                try DatasetReader.read(t.files, format: c.format, skipBadRecords: c.skipBadRecords).examples
            }
            let (examples, counts) = MixtureSampler.sample(tasks, weights: mixture.tasks.map { $0.weight ?? 1 }, mixture: mixture,
                                                           seed: c.trainer.seed)
            let total = max(counts.reduce(0, +), 1)
            for (t, n) in zip(mixture.tasks, counts) {
                log(String(format: "mixture: %@: %d of %d examples (%.1f%%)", t.name, n, tasks[mixture.tasks.firstIndex(of: t)!].count,
                           100 * Double(n) / Double(total)))
            }
            allExamples += examples
        }
        guard !allExamples.isEmpty else { throw TrainError.invalid("no training data: give --data FILE or --mixture FILE") }
        var trainExamples = allExamples, validationExamples: [Example] = []
        if !c.validationData.isEmpty {
            validationExamples = try DatasetReader.read(c.validationData, format: c.format, skipBadRecords: c.skipBadRecords).examples
        } else if c.validationSplit > 0, allExamples.count >= 20 {
            (trainExamples, validationExamples) = DatasetTokenizer.split(allExamples, fraction: c.validationSplit, seed: c.trainer.seed)
        }
        return (trainExamples, validationExamples)
    }

    /// Preference pairs from --data (and --validation-data, or a --validation-split of them),
    /// tokenized with the run's template: rows of chosen and rejected sequences.
    func preferenceRows(_ c: FineTuneConfig, tokenizer: Tokenizer, template: PromptTemplate,
                        log: (String) -> Void) throws -> (train: [TrainingRow], validation: [TrainingRow], stats: TokenizeStats) {
        let loaded = try PreferenceReader.read(c.data, skipBadRecords: c.skipBadRecords)
        for f in loaded.files { log("data: \(f.path): \(f.pairs) preference pairs") }
        if loaded.skipped > 0 { log("warning: skipped \(loaded.skipped) bad record(s); first: \(loaded.skipMessages.joined(separator: " | "))") }
        var train = loaded.pairs, validation: [PreferenceExample] = []
        if !c.validationData.isEmpty {
            validation = try PreferenceReader.read(c.validationData, skipBadRecords: c.skipBadRecords).pairs
        } else if c.validationSplit > 0, train.count >= 20 {
            (train, validation) = DatasetTokenizer.split(train, fraction: c.validationSplit, seed: c.trainer.seed)
        }
        let options = TokenizeOptions(template: template, maxLength: c.maxLength)
        let (trainPairs, stats) = try DatasetTokenizer.tokenizePairs(train, tokenizer, options)
        if let noRows = stats.noRowsError(maxLength: c.maxLength) { throw noRows }
        let (validationPairs, _) = try DatasetTokenizer.tokenizePairs(validation, tokenizer, options)
        log("tokens: \(stats.tokens) in \(trainPairs.count) training pairs (chosen and rejected); \(stats.truncated) sequences truncated to \(c.maxLength), \(stats.droppedNoAnswer) pairs dropped with an answer cut away; \(validationPairs.count) validation pairs")
        func row(_ p: TokenizedPair) -> TrainingRow {
            TrainingRow(chosen: (p.chosen.ids, p.chosen.labels), rejected: (p.rejected.ids, p.rejected.labels))
        }
        return (trainPairs.map(row), validationPairs.map(row), stats)
    }

    /// Refuses to resume when a checkpoint exists and an option that changes the loss curve
    /// differs from the run that wrote `savedConfig`, naming each, unless `resumeAnyway`.
    func checkResumable(_ config: FineTuneConfig, savedConfig: URL, log: (String) -> Void) throws {
        let checkpoints = URL(fileURLWithPath: config.output).appendingPathComponent("checkpoints")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? []
        guard names.contains(where: { $0.hasPrefix("step-") }) else { return }
        let changes: [String]
        do {
            var saved = try FineTuneConfig.read(contentsOf: savedConfig)
            // Another rank count gives the same curve when the global batch is the same.
            if saved.ranks != config.ranks, saved.trainer.batchSize * saved.ranks == config.trainer.batchSize * config.ranks {
                log("resuming the run of \(saved.ranks) rank(s) × batch \(saved.trainer.batchSize) with \(config.ranks) × \(config.trainer.batchSize): the same global batch")
                saved.trainer.batchSize = config.trainer.batchSize
                saved.ranks = config.ranks
            }
            changes = config.curveChanges(from: saved)
        } catch {
            guard config.resumeAnyway else {
                throw TrainError.invalid("--resume: cannot compare with the saved options (\(error)); --resume-anyway continues without comparing")
            }
            log("warning: --resume-anyway: cannot compare with the saved options (\(error))")
            return
        }
        guard !changes.isEmpty else { return }
        let list = changes.joined(separator: "; ")
        guard config.resumeAnyway else {
            throw TrainError.invalid("--resume would change the loss curve of the run in \(config.output): \(list). Give the saved values (\(savedConfig.path)), or --resume-anyway to continue regardless")
        }
        log("warning: --resume-anyway with changed options: \(list)")
    }
}

extension JSONEncoder {
    static var pretty: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }
}
