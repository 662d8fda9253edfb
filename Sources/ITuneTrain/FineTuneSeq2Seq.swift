import Foundation
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers

// `itune-gpu train` on a T5-family model directory: the same options, the seq2seq loop
// (Seq2SeqTraining.swift). Inputs and targets are each cut to --max-length; LoRA targets PEFT's
// T5 names unless --lora-targets says otherwise; outputs are the PEFT adapter (LoRA) or the
// model's safetensors beside a copy of its config and tokenizer files (full).
// Not yet on this path: --mixture, --packing, --resume, periodic eval and checkpoints.

extension FineTuneJob {
    func runSeq2Seq(_ c: FineTuneConfig, log: (String) -> Void) throws -> FineTuneResult {
        for (given, option) in [(c.mixture != nil, "--mixture"), (c.packing, "--packing"), (c.resume, "--resume"),
                                (c.initAdapter != nil, "--init-adapter")] where given {
            throw TrainError.invalid("\(option) is not implemented for encoder-decoder (T5-family) models yet")
        }
        let modelDir = URL(fileURLWithPath: c.model)
        let out = URL(fileURLWithPath: c.output)
        let start = Date()
        let model = try T5Model.load(directory: modelDir, on: device)
        let tokenizer = try Tokenizer(directory: modelDir)
        log(String(format: "model: %@ (%@ encoder-decoder, %.1fM parameters) on %@", modelDir.path,
                   model.config.architecture.rawValue, Double(model.parameterCount) / 1e6, "\(device)"))
        let loaded = try DatasetReader.read(c.data, format: c.format, skipBadRecords: c.skipBadRecords)
        for f in loaded.files { log("data: \(f.path): \(f.records) examples (\(f.format.rawValue))") }
        let examples = try Seq2SeqData.tokenize(loaded.examples, tokenizer: tokenizer, maxInputLength: c.maxLength,
                                                maxTargetLength: c.maxLength)
        guard !examples.isEmpty else { throw TrainError.invalid("no training data: give --data FILE") }
        let t = c.trainer
        let perEpoch = (examples.count + t.batchSize - 1) / max(t.batchSize, 1)
        let steps = t.maxSteps ?? max(1, perEpoch * t.epochs)
        var lora: LoRAConfig? = nil
        if c.mode == .lora {
            var l = c.lora
            if l.targetModules == LoRAConfig.llamaTargets { l.targetModules = T5Model.defaultLoRATargets }
            lora = l
        }
        let options = Seq2SeqTrainingOptions(steps: steps, batchSize: t.batchSize, learningRate: t.optimizer.learningRate,
                                             warmupSteps: t.warmupSteps ?? Int(Float(steps) * t.warmupRatio),
                                             weightDecay: t.optimizer.weightDecay, maxGradNorm: t.maxGradNorm, lora: lora,
                                             seed: t.seed)
        log("training: \(steps) steps, batch \(t.batchSize), lr \(t.optimizer.learningRate), \(c.mode == .lora ? "LoRA on \(lora?.targetModules.joined(separator: ",") ?? "")" : "full fine-tuning")")
        let losses = try trainSeq2Seq(model, examples: examples, options: options)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let final: URL
        if let lora {
            final = out.appendingPathComponent("adapter")
            try model.saveAdapter(to: final, config: lora, baseModel: modelDir.path)
        } else {
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
        let seconds = Date().timeIntervalSince(start)
        let tokens = Double(examples.reduce(0) { $0 + $1.input.count + $1.target.count }) * Double(steps) / Double(perEpoch)
        let summary = TrainingSummary(steps: steps, firstLoss: Double(losses.first ?? .nan), lastLoss: Double(losses.last ?? .nan),
                                      validationLoss: nil, tokensPerSecond: tokens / max(seconds, 1e-9), seconds: seconds,
                                      history: losses.enumerated().map { ($0.offset + 1, Double($0.element)) })
        var stats = TokenizeStats()
        stats.examples = examples.count
        stats.tokens = examples.reduce(0) { $0 + $1.input.count + $1.target.count }
        return FineTuneResult(summary: summary, outputDirectory: final, stats: stats, samples: [])
    }
}
