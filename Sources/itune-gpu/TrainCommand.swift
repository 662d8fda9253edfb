import ArgumentParser
import Foundation
import ITune
import Yams

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Instruction-tune a Hugging Face model (LoRA or full). With no --model: the embedded demonstration.",
        discussion: """
        Options may also come from --config FILE (YAML or JSON, keys as the long option names, \
        e.g. `lora-rank: 16`); the command line wins. Outputs in --output: adapter/ (PEFT format) \
        or model/ (full), checkpoints/, metrics.jsonl, loss_curve.svg, itune_config.json.
        Templates: \(PromptTemplate.descriptions.map { "\($0.0) — \($0.1)" }.joined(separator: "; ")).
        """)

    @Option(help: "Hugging Face model directory (config.json, *.safetensors, tokenizer.json).")
    var model: String?
    @Option(help: "Training data: .json/.jsonl files or directories (repeatable).")
    var data: [String] = []
    @Option(help: "A task mixture file (from itune-gpu select), sampled FLAN-style; with or instead of --data.")
    var mixture: String?
    @Option(help: "Record format, instead of detecting it: \(RecordFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var format: String?
    @Option(help: "Validation data file (repeatable); otherwise --validation-split of the data.")
    var validationData: [String] = []
    @Option(help: "Fraction of the data held out for validation (default 0.05).")
    var validationSplit: Double?
    @Option(help: "Prompt template (default: the model's chat_template when known, else alpaca).")
    var template: String?
    @Option(help: "Output directory (default itune-output).")
    var output: String?
    @Option(help: "YAML or JSON file with any of these options.")
    var config: String?

    @Flag(help: "Train every weight instead of LoRA adapters.")
    var full = false
    @Option(help: "LoRA rank (default 8).") var loraRank: Int?
    @Option(help: "LoRA alpha (default 16).") var loraAlpha: Float?
    @Option(help: "LoRA dropout (default 0.05).") var loraDropout: Float?
    @Option(help: "Comma-separated modules to adapt (default all attention and MLP projections).") var loraTargets: String?
    @Flag(help: "rsLoRA scaling alpha/√r.") var rslora = false
    @Option(help: "Start LoRA from this PEFT adapter directory.") var initAdapter: String?

    @Option(help: "Epochs (default 1).") var epochs: Int?
    @Option(help: "Optimizer steps, overriding epochs.") var maxSteps: Int?
    @Option(help: "Rows per micro-batch (default 4).") var batchSize: Int?
    @Option(help: "Micro-batches per optimizer step (default 1).") var gradAccum: Int?
    @Option(help: "Peak learning rate (default 2e-4).") var lr: Float?
    @Option(help: "AdamW weight decay (default 0).") var weightDecay: Float?
    @Option(help: "AdamW beta1 (default 0.9).") var beta1: Float?
    @Option(help: "AdamW beta2 (default 0.999).") var beta2: Float?
    @Option(help: "AdamW epsilon (default 1e-8).") var adamEps: Float?
    @Option(help: "Warm-up as a fraction of the steps (default 0.03).") var warmupRatio: Float?
    @Option(help: "Warm-up steps, overriding the ratio.") var warmupSteps: Int?
    @Option(help: "Decay after warm-up: cosine, linear or constant.") var schedule: String?
    @Option(help: "Clip gradients to this global norm (default 1).") var maxGradNorm: Float?
    @Option(help: "Seed of initialisation, shuffling and dropout (default 42).") var seed: UInt64?
    @Option(help: "Longest example in tokens; longer ones are cut (default 1024).") var maxLength: Int?
    @Flag(help: "Pack short examples into full rows (attention kept within each).") var packing = false
    @Flag(help: "Take the loss on the prompt too, not only on the answers.") var trainOnInputs = false
    @Flag(help: "Skip malformed records with a warning instead of stopping.") var skipBadRecords = false
    @Option(help: "Validation every N steps (default: at the end).") var evalEvery: Int?
    @Option(help: "Checkpoint every N steps (default: none).") var saveEvery: Int?
    @Flag(help: "Continue from the latest checkpoint in --output.") var resume = false
    @Option(help: "When a step's loss or gradient norm is NaN/inf: stop (default) or skip-step (no update, counted).") var nanPolicy: String?
    @Option(help: "Demo: optimizer steps of the embedded demonstration (default 1500).") var demoSteps: Int?

    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        let device = try deviceOptions.resolve()
        let file = try config.map(Self.readConfig) ?? [:]
        func value<T>(_ cli: T?, _ key: String, _ parse: (Any) -> T?) throws -> T? {
            if let cli { return cli }
            guard let raw = file[key] ?? file[key.replacingOccurrences(of: "-", with: "_")] else { return nil }
            guard let v = parse(raw) else { throw ValidationError("\(config!): '\(key)' has an unusable value \(raw)") }
            return v
        }
        let int = { (a: Any) -> Int? in (a as? Int) ?? (a as? String).flatMap { Int($0) } }
        let float = { (a: Any) -> Float? in (a as? Double).map(Float.init) ?? (a as? Int).map(Float.init) ?? (a as? String).flatMap { Float($0) } }
        let string = { (a: Any) -> String? in a as? String }
        let bool = { (a: Any) -> Bool? in a as? Bool }
        let strings = { (a: Any) -> [String]? in (a as? [String]) ?? (a as? String).map { [$0] } }
        func flag(_ cli: Bool, _ key: String) throws -> Bool { try cli || (value(nil, key, bool) ?? false) }

        guard let modelDir = try value(model, "model", string) else {
            try runDemo(device: device, steps: try value(demoSteps, "demo-steps", int))
            return
        }
        let dataPaths = data.isEmpty ? try value(nil, "data", strings) ?? [] : data
        let mixturePath = try value(mixture, "mixture", string)
        guard !dataPaths.isEmpty || mixturePath != nil else {
            throw ValidationError("--model needs --data FILE (instruction records; see --help for the formats) or --mixture FILE")
        }
        var c = FineTuneConfig(model: modelDir, data: dataPaths)
        c.mixture = mixturePath
        if let f = try value(format, "format", string) {
            guard let rf = RecordFormat(rawValue: f) else {
                throw ValidationError("unknown --format \(f); known: \(RecordFormat.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            c.format = rf
        }
        c.validationData = validationData.isEmpty ? try value(nil, "validation-data", strings) ?? [] : validationData
        c.validationSplit = try value(validationSplit, "validation-split", { float($0).map(Double.init) }) ?? c.validationSplit
        c.template = try value(template, "template", string)
        c.output = try value(output, "output", string) ?? c.output
        c.mode = try flag(full, "full") ? .full : .lora
        c.lora.rank = try value(loraRank, "lora-rank", int) ?? c.lora.rank
        c.lora.alpha = try value(loraAlpha, "lora-alpha", float) ?? c.lora.alpha
        c.lora.dropout = try value(loraDropout, "lora-dropout", float) ?? c.lora.dropout
        if let t = try value(loraTargets, "lora-targets", { a in (a as? [String])?.joined(separator: ",") ?? (a as? String) }) {
            c.lora.targetModules = t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        c.lora.useRSLoRA = try flag(rslora, "rslora")
        c.initAdapter = try value(initAdapter, "init-adapter", string)
        c.trainer.epochs = try value(epochs, "epochs", int) ?? c.trainer.epochs
        c.trainer.maxSteps = try value(maxSteps, "max-steps", int)
        c.trainer.batchSize = try value(batchSize, "batch-size", int) ?? c.trainer.batchSize
        c.trainer.gradientAccumulation = try value(gradAccum, "grad-accum", int) ?? c.trainer.gradientAccumulation
        c.trainer.optimizer.learningRate = try value(lr, "lr", float) ?? c.trainer.optimizer.learningRate
        c.trainer.optimizer.weightDecay = try value(weightDecay, "weight-decay", float) ?? c.trainer.optimizer.weightDecay
        c.trainer.optimizer.beta1 = try value(beta1, "beta1", float) ?? c.trainer.optimizer.beta1
        c.trainer.optimizer.beta2 = try value(beta2, "beta2", float) ?? c.trainer.optimizer.beta2
        c.trainer.optimizer.eps = try value(adamEps, "adam-eps", float) ?? c.trainer.optimizer.eps
        c.trainer.warmupRatio = try value(warmupRatio, "warmup-ratio", float) ?? c.trainer.warmupRatio
        c.trainer.warmupSteps = try value(warmupSteps, "warmup-steps", int)
        if let s = try value(schedule, "schedule", string) {
            guard let d = LRSchedule.Decay(rawValue: s) else { throw ValidationError("--schedule is cosine, linear or constant, not \(s)") }
            c.trainer.decay = d
        }
        c.trainer.maxGradNorm = try value(maxGradNorm, "max-grad-norm", float) ?? c.trainer.maxGradNorm
        c.trainer.seed = try value(seed, "seed", { int($0).map(UInt64.init) }) ?? c.trainer.seed
        c.trainer.evalEvery = try value(evalEvery, "eval-every", int) ?? c.trainer.evalEvery
        c.trainer.saveEvery = try value(saveEvery, "save-every", int) ?? c.trainer.saveEvery
        c.maxLength = try value(maxLength, "max-length", int) ?? c.maxLength
        c.packing = try flag(packing, "packing")
        c.trainOnInputs = try flag(trainOnInputs, "train-on-inputs")
        c.skipBadRecords = try flag(skipBadRecords, "skip-bad-records")
        c.resume = try flag(resume, "resume")
        if let p = try value(nanPolicy, "nan-policy", string) {
            guard let policy = NaNPolicy(rawValue: p) else { throw ValidationError("--nan-policy is stop or skip-step, not \(p)") }
            c.trainer.nanPolicy = policy
        }

        let progress = Progress()
        let result = try FineTuneJob(config: c, device: device).run(log: progress.line, onEvent: progress.event)
        progress.finish()
        print(String(format: "done: %d steps, loss %.4f → %.4f%@, %.0f tokens/s, %.1f s", result.summary.steps,
                     result.summary.firstLoss, result.summary.lastLoss,
                     result.summary.validationLoss.map { String(format: ", validation loss %.4f", $0) } ?? "",
                     result.summary.tokensPerSecond, result.summary.seconds))
        print("wrote \(result.outputDirectory.path)" + (c.mode == .lora
            ? " (PEFT adapter: PeftModel.from_pretrained(base, \"\(result.outputDirectory.path)\"); merge with itune-gpu merge)"
            : " (a model directory transformers loads)"))
        for s in result.samples { print("sample: \(s.instruction.prefix(80))\n  expected: \(s.expected.prefix(80))\n  model:    \(s.got.prefix(80))") }
    }

    func runDemo(device: Device, steps: Int?) throws {
        var demo = EmbeddedDemo()
        demo.device = device
        if let steps { demo.steps = steps }
        if let output { demo.outputDirectory = URL(fileURLWithPath: output) }
        print("itune-gpu train: no --model given, so the embedded demonstration runs (a few minutes on a 2-core CPU).")
        let progress = Progress()
        let result = try demo.run(log: progress.line, onEvent: progress.event)
        progress.finish()
        print("held-out exact match per task (before → after):")
        for f in result.perTask { print("  \(f.task.padding(toLength: 20, withPad: " ", startingAt: 0)) \(f.before)/\(f.total) → \(f.after)/\(f.total)") }
        print("samples after training (instruction → expected | model):")
        for s in result.samples { print("  \(s.instruction) → \(s.expected) | \(s.got)") }
        print(String(format: "exact match %.1f%% → %.1f%%; loss %.3f → %.3f; %.0f tokens/s over %d steps (%.0f s)",
                     result.exactMatchBefore * 100, result.exactMatchAfter * 100, result.summary.firstLoss, result.summary.lastLoss,
                     result.summary.tokensPerSecond, result.summary.steps, result.summary.seconds))
        print("""
            model written to \(result.modelDirectory.path) (Hugging Face format; try: itune-gpu generate --model \(result.modelDirectory.path) --prompt "### Instruction:...")
            On a real model: itune-gpu train --model DIR --data FILE.jsonl [--template alpaca-ja] [--lora-rank 16] --output out
            """)
    }

    /// A YAML (or JSON, which YAML reads) mapping of option names to values.
    static func readConfig(_ path: String) throws -> [String: Any] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ValidationError("\(path): cannot read: \(error.localizedDescription)")
        }
        let parsed: Any?
        do { parsed = try Yams.load(yaml: text) } catch { throw ValidationError("\(path): not valid YAML/JSON: \(error)") }
        guard let dict = parsed as? [String: Any] else { throw ValidationError("\(path): must be a mapping of option names to values") }
        return dict
    }
}

/// Training progress: a redrawn bar on a terminal, plain lines otherwise (logs, CI).
final class Progress {
    let terminal = isatty(STDOUT_FILENO) != 0
    private var barShown = false
    private var lastPlain = Date.distantPast

    func line(_ s: String) {
        clearBar()
        print(s)
        fflush(stdout)
    }

    func event(_ e: TrainerEvent) {
        switch e {
        case let .step(m):
            let text = String(format: "step %d/%d  epoch %.2f  loss %.4f  lr %.2e  %.0f tok/s  ETA %@", m.step, m.totalSteps, m.epoch,
                              m.loss, m.learningRate, m.tokensPerSecond, Self.duration(m.eta))
            if terminal {
                let width = 24, filled = Int(Double(width) * Double(m.step) / Double(max(m.totalSteps, 1)))
                let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
                print("\r\u{1B}[K[\(bar)] \(text)", terminator: "")
                fflush(stdout)
                barShown = true
            } else if m.step == 1 || m.step == m.totalSteps || Date().timeIntervalSince(lastPlain) >= 10 {
                lastPlain = Date()
                print(text)
                fflush(stdout)
            }
        case let .validation(step, loss):
            line(String(format: "validation at step %d: loss %.4f, perplexity %.2f", step, loss, exp(loss)))
        case let .checkpoint(step, url):
            line("checkpoint at step \(step): \(url.path)")
        case let .info(s):
            line(s)
        }
    }

    func finish() { clearBar() }

    private func clearBar() {
        if barShown { print(""); barShown = false }
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}
