import Foundation
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers

// `itune-gpu train` on an encoder-decoder (T5-family) model directory: the same options and the
// same `Trainer` as decoders (checkpoints, --resume, --eval-every, metrics.jsonl, the loss
// curve), with rows of encoder input → decoder target. Inputs and targets are each cut to
// --max-length; LoRA targets PEFT's T5 names unless --lora-targets says otherwise; outputs are
// the PEFT adapter (LoRA) or the model's safetensors beside a copy of its config and tokenizer
// files (full).
//
// --packing is refused: packing several examples into one encoder row and one decoder row needs
// block-diagonal masks in the encoder's self-attention, the decoder's self-attention and the
// cross-attention (each target may only see its own input), relative positions restarting per
// example on both sides, and the decoder's start token per example; none of that is implemented,
// and an unmasked pack would let examples read each other.

extension FineTuneJob {
    func runSeq2Seq(_ c: FineTuneConfig, log: (String) -> Void, onEvent: (TrainerEvent) -> Void) throws -> FineTuneResult {
        if c.packing {
            throw TrainError.invalid("--packing is not implemented for encoder-decoder (T5-family) models: a packed row would need attention kept inside each example in the encoder, the decoder and the cross-attention; train without --packing (each side is padded on its own)")
        }
        for (given, option) in [(c.quantize != nil, "--quantize"), (c.quantizeEmbeddings, "--quantize-embeddings"), (c.gradCheckpoint, "--grad-checkpoint"),
                                (c.precision != .f32, "--precision bf16"), (c.baseDType.map { $0 != .f32 } ?? false, "--base-dtype"),
                                (communicator.size > 1, "data-parallel ranks")] where given {
            throw TrainError.invalid("\(option) is not implemented for encoder-decoder (T5-family) models")
        }
        let modelDir = URL(fileURLWithPath: c.model)
        let out = URL(fileURLWithPath: c.output)
        let configURL = out.appendingPathComponent("itune_config.json")
        if c.resume { try checkResumable(c, savedConfig: configURL, log: log) }
        let model = try T5Model.load(directory: modelDir, on: device)
        let tokenizer = try Tokenizer(directory: modelDir)
        log(String(format: "model: %@ (%@ encoder-decoder, %.1fM parameters) on %@", modelDir.path,
                   model.config.architecture.rawValue, Double(model.parameterCount) / 1e6, "\(device)"))
        let (trainExamples, validationExamples) = try readExamples(c, log: log)
        let examples = try Seq2SeqData.tokenize(trainExamples, tokenizer: tokenizer, maxInputLength: c.maxLength,
                                                maxTargetLength: c.maxLength)
        let validation = try Seq2SeqData.tokenize(validationExamples, tokenizer: tokenizer, maxInputLength: c.maxLength,
                                                  maxTargetLength: c.maxLength)
        guard !examples.isEmpty else { throw TrainError.invalid("no training data: give --data FILE") }
        let inputTokens = examples.reduce(0) { $0 + $1.input.count }, targetTokens = examples.reduce(0) { $0 + $1.target.count }
        log("tokens: \(inputTokens) input and \(targetTokens) target tokens in \(examples.count) training examples (each side cut to \(c.maxLength)); \(validation.count) validation examples")

        let trainable: [(String, Tensor)]
        var loraConfig = c.lora
        switch c.mode {
        case .lora:
            if loraConfig.targetModules == LoRAConfig.llamaTargets { loraConfig.targetModules = T5Model.defaultLoRATargets }
            if let initDir = c.initAdapter {
                loraConfig = try model.loadAdapter(from: URL(fileURLWithPath: initDir), trainable: true)
                log("LoRA: starting from the adapter in \(initDir) (r \(loraConfig.rank), alpha \(loraConfig.alpha))")
            } else {
                try model.addLoRA(loraConfig, seed: c.trainer.seed)
            }
            trainable = model.loraParameters
            log("LoRA: r \(loraConfig.rank), alpha \(loraConfig.alpha) on \(loraConfig.targetModules.joined(separator: ",")): \(trainable.reduce(0) { $0 + $1.1.count }) trainable parameters")
        case .full:
            model.setTrainable(true)
            trainable = model.namedParameters()
            log("full fine-tuning: \(model.parameterCount) parameters")
        }
        // The encoder pads with the model's pad_token_id (what transformers does), recorded as the pad id.
        var recorded = c
        recorded.padID = Int32(model.config.padTokenID)
        var options = c.trainer
        options.padID = Int32(model.config.padTokenID)
        let trainer = try Trainer(model: model, trainable: trainable, options: options,
                                  train: examples.map { TrainingRow(input: $0.input, target: $0.target) },
                                  validation: validation.map { TrainingRow(input: $0.input, target: $0.target) },
                                  outputDirectory: out, communicator: communicator)
        trainer.profile = c.profile
        log("training: \(trainer.totalSteps) steps (\(trainer.stepsPerEpoch) per epoch), batch \(options.batchSize) × \(options.gradientAccumulation) accumulation, lr \(options.optimizer.learningRate) \(options.decay.rawValue) with \(trainer.schedule.warmupSteps) warm-up steps")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try OutputFiles.writeAtomically(recorded.encodedJSON(), to: configURL)
        let summary = try trainer.run(resume: c.resume, onEvent: onEvent)

        let final: URL
        switch c.mode {
        case .lora:
            final = out.appendingPathComponent("adapter")
            try model.saveAdapter(to: final, config: loraConfig, baseModel: modelDir.path)
        case .full:
            final = out.appendingPathComponent("model")
            try FileManager.default.createDirectory(at: final, withIntermediateDirectories: true)
            try SafetensorsFile.write(model.namedParameters().map { (name: $0.0, tensor: $0.1) },
                                      to: final.appendingPathComponent("model.safetensors"))
            for name in ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model"] {
                let from = modelDir.appendingPathComponent(name), to = final.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: from.path) else { continue }
                try? FileManager.default.removeItem(at: to)
                try FileManager.default.copyItem(at: from, to: to)
            }
        }
        // Sample answers to held-out (or training) instructions.
        let bundle = Seq2SeqBundle(directory: modelDir, model: model, tokenizer: tokenizer)
        var samples: [(String, String, String)] = []
        for (e, t) in zip(validationExamples.isEmpty ? trainExamples : validationExamples, validation.isEmpty ? examples : validation)
            .prefix(c.samples) {
            guard let turn = e.conversation.turns.last else { continue }
            let text = try bundle.generate(inputIDs: t.input, maxNewTokens: 64).text
            samples.append((turn.instruction, turn.response, text))
        }
        var stats = TokenizeStats()
        stats.examples = examples.count
        stats.tokens = inputTokens + targetTokens
        return FineTuneResult(summary: summary, outputDirectory: final, stats: stats, samples: samples)
    }
}
