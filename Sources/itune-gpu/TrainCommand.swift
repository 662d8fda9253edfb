import ArgumentParser
import Foundation
import ITune
import Yams

/// `itune-gpu train`: the options of a `FineTuneConfig` (names, help and defaults from
/// `FineTuneConfig.options`), merged over a `--config` file, handed to `FineTuneJob`.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Instruction-tune (--method sft) or preference-tune (dpo, orpo) a Hugging Face model (LoRA or full). With no --model: the embedded demonstration.",
        discussion: """
        Options may also come from --config FILE (YAML or JSON, keys as the long option names, \
        e.g. `lora-rank: 16`; `_` may stand for `-`); the command line wins. The itune_config.json \
        a run writes has the same keys: `--config OUT/itune_config.json` runs it again. Outputs in \
        --output: adapter/ (PEFT format) or model/ (full), checkpoints/, metrics.jsonl, \
        loss_curve.svg, itune_config.json.
        Templates: \(PromptTemplate.descriptions.map { "\($0.0) — \($0.1)" }.joined(separator: "; ")).
        """)

    @Option(help: "YAML or JSON file with any of the options below.") var config: String?
    @Option(help: optionHelp("model")) var model: String?
    @Option(help: optionHelp("data")) var data: [String] = []
    @Option(help: optionHelp("mixture")) var mixture: String?
    @Option(help: optionHelp("format")) var format: String?
    @Option(help: optionHelp("validation-data")) var validationData: [String] = []
    @Option(help: optionHelp("validation-split")) var validationSplit: Double?
    @Option(help: optionHelp("template")) var template: String?
    @Option(help: optionHelp("output")) var output: String?

    @Flag(inversion: .prefixedNo, help: optionHelp("full")) var full: Bool?
    @Option(help: optionHelp("lora-rank")) var loraRank: Int?
    @Option(help: optionHelp("lora-alpha")) var loraAlpha: Float?
    @Option(help: optionHelp("lora-dropout")) var loraDropout: Float?
    @Option(help: optionHelp("lora-targets")) var loraTargets: String?
    @Flag(inversion: .prefixedNo, help: optionHelp("rslora")) var rslora: Bool?
    @Option(help: optionHelp("init-adapter")) var initAdapter: String?
    @Option(help: optionHelp("base-dtype")) var baseDtype: String?
    @Option(help: optionHelp("precision")) var precision: String?
    @Flag(inversion: .prefixedNo, help: optionHelp("grad-checkpoint")) var gradCheckpoint: Bool?
    @Option(help: optionHelp("quantize")) var quantize: String?
    @Flag(inversion: .prefixedNo, help: optionHelp("double-quant")) var doubleQuant: Bool?
    @Flag(inversion: .prefixedNo, help: optionHelp("quantize-embeddings")) var quantizeEmbeddings: Bool?

    @Option(help: optionHelp("epochs")) var epochs: Int?
    @Option(help: optionHelp("max-steps")) var maxSteps: Int?
    @Option(help: optionHelp("batch-size")) var batchSize: Int?
    @Option(help: optionHelp("grad-accum")) var gradAccum: Int?
    @Option(help: optionHelp("lr")) var lr: Float?
    @Option(help: optionHelp("weight-decay")) var weightDecay: Float?
    @Option(help: optionHelp("beta1")) var beta1: Float?
    @Option(help: optionHelp("beta2")) var beta2: Float?
    @Option(help: optionHelp("adam-eps")) var adamEps: Float?
    @Option(help: optionHelp("warmup-ratio")) var warmupRatio: Float?
    @Option(help: optionHelp("warmup-steps")) var warmupSteps: Int?
    @Option(help: optionHelp("schedule")) var schedule: String?
    @Option(help: optionHelp("max-grad-norm")) var maxGradNorm: Float?
    @Option(help: optionHelp("seed")) var seed: UInt64?
    @Option(help: optionHelp("method")) var method: String?
    @Option(help: optionHelp("beta")) var beta: Double?
    @Option(help: optionHelp("label-smoothing")) var labelSmoothing: Double?
    @Option(help: optionHelp("loss-type")) var lossType: String?
    @Option(help: optionHelp("lambda")) var lambda: Double?
    @Flag(inversion: .prefixedNo, help: optionHelp("precompute-ref")) var precomputeRef: Bool?
    @Option(help: optionHelp("max-length")) var maxLength: Int?
    @Flag(inversion: .prefixedNo, help: optionHelp("packing")) var packing: Bool?
    @Flag(inversion: .prefixedNo, help: optionHelp("train-on-inputs")) var trainOnInputs: Bool?
    @Flag(inversion: .prefixedNo, help: optionHelp("skip-bad-records")) var skipBadRecords: Bool?
    @Option(help: optionHelp("pad-id")) var padId: Int32?
    @Option(help: optionHelp("eval-every")) var evalEvery: Int?
    @Option(help: optionHelp("log-every")) var logEvery: Int?
    @Flag(inversion: .prefixedNo, help: optionHelp("profile")) var profile: Bool?
    @Option(help: optionHelp("save-every")) var saveEvery: Int?
    @Option(help: optionHelp("keep-checkpoints")) var keepCheckpoints: Int?
    @Option(help: optionHelp("samples")) var samples: Int?
    @Option(help: optionHelp("bucket-mb")) var bucketMb: Double?
    @Flag(help: optionHelp("resume")) var resume = false
    @Option(help: optionHelp("nan-policy")) var nanPolicy: String?
    @Flag(help: optionHelp("resume-anyway")) var resumeAnyway = false
    @Flag(help: "Print the options the run would use (file and command line merged, defaults filled in, checked), in itune_config.json's keys, and exit.")
    var printConfig = false
    @Option(help: "Demo: optimizer steps of the embedded demonstration (default \(EmbeddedDemo().steps)).") var demoSteps: Int?
    @Flag(help: "Demo: follow the embedded demonstration's instruction tuning with a DPO stage on preference pairs of its tasks (no --model).")
    var demoDpo = false
    @Option(help: "Demo: optimizer steps of the DPO stage (default \(PreferenceDemo().dpoSteps)).") var demoDpoSteps: Int?

    @OptionGroup var deviceOptions: DeviceOptions

    /// The options given on the command line, by their config key.
    var given: [String: Any?] {
        [
            "model": model, "data": data.isEmpty ? nil : data, "mixture": mixture, "format": format,
            "validation-data": validationData.isEmpty ? nil : validationData, "validation-split": validationSplit,
            "template": template, "output": output, "full": full, "lora-rank": loraRank, "lora-alpha": loraAlpha,
            "lora-dropout": loraDropout, "lora-targets": loraTargets, "rslora": rslora, "init-adapter": initAdapter,
            "base-dtype": baseDtype, "precision": precision, "grad-checkpoint": gradCheckpoint,
            "quantize": quantize, "double-quant": doubleQuant, "quantize-embeddings": quantizeEmbeddings,
            "epochs": epochs, "max-steps": maxSteps, "batch-size": batchSize, "grad-accum": gradAccum, "lr": lr,
            "weight-decay": weightDecay, "beta1": beta1, "beta2": beta2, "adam-eps": adamEps, "warmup-ratio": warmupRatio,
            "warmup-steps": warmupSteps, "schedule": schedule, "max-grad-norm": maxGradNorm, "seed": seed,
            "max-length": maxLength, "packing": packing, "train-on-inputs": trainOnInputs, "skip-bad-records": skipBadRecords,
            "pad-id": padId, "eval-every": evalEvery, "log-every": logEvery, "profile": profile, "save-every": saveEvery, "keep-checkpoints": keepCheckpoints,
            "samples": samples, "bucket-mb": bucketMb, "resume": resume ? true : nil, "resume-anyway": resumeAnyway ? true : nil,
            "nan-policy": nanPolicy, "method": method, "beta": beta, "label-smoothing": labelSmoothing, "loss-type": lossType,
            "lambda": lambda, "precompute-ref": precomputeRef,
        ]
    }

    /// Under mpirun or srun (several ranks) every rank runs this; a plain run never loads MPI.
    /// An error on one rank ends all of them (MPI_Abort), so none waits in a collective.
    func run() throws {
        let communicator = try makeCommunicator()
        guard communicator.size > 1 else { return try train(communicator) }
        // Before any CPU op: the count of threads is read once.
        let threads = RankPlacement.shareCores(localSize: communicator.localSize)
        if communicator.isRoot { print("itune-gpu: \(communicator.description); \(threads) CPU thread(s) per rank") }
        do {
            try train(communicator)
            try communicator.finalize()
        } catch {
            FileHandle.standardError.write(Data("itune-gpu train (rank \(communicator.rank) of \(communicator.size)): error: \(error)\n".utf8))
            communicator.abort(code: 1)
        }
    }

    func train(_ communicator: any Communicator) throws {
        // The file's keys, with the command line's values over them (`_` and `-` are one key).
        let fromCommandLine = given.compactMapValues { $0 }
        _ = try FineTuneConfig(options: fromCommandLine, source: "command line")  // errors here are the command line's
        var mapping = try config.map(Self.readConfig) ?? [:]
        for (key, value) in fromCommandLine {
            mapping = mapping.filter { $0.key.replacingOccurrences(of: "_", with: "-") != key }
            mapping[key] = value
        }
        let c = try FineTuneConfig(options: mapping, source: config ?? "command line")
        guard !c.model.isEmpty || printConfig else {
            guard communicator.size == 1 else {
                throw ValidationError("the embedded demonstration runs in one process; under mpirun or srun give --model and --data")
            }
            if demoDpo { return try runPreferenceDemo(device: deviceOptions.resolve()) }
            try runDemo(device: deviceOptions.resolve(), steps: demoSteps)
            return
        }
        do { try c.validate() } catch let e as OptionError where config != nil && fromCommandLine[e.option] == nil {
            throw ConfigFileError(source: config ?? "", keys: [e.option], message: e.message)  // the value came from the file
        }
        if printConfig {
            if communicator.isRoot { print(String(decoding: try c.encodedJSON(), as: UTF8.self)) }
            return
        }
        let device: Device
        if communicator.size > 1 {
            let placed = try RankPlacement.device(deviceOptions.device, localRank: communicator.localRank)
            _ = try placed.device.backend()  // fail early, naming the device
            device = placed.device
            print("rank \(communicator.rank): device \(device) (\(placed.reason))")
        } else {
            device = try deviceOptions.resolve()
        }
        let progress = Progress()
        let result = try FineTuneJob(config: c, device: device, communicator: communicator).run(log: progress.line, onEvent: progress.event)
        guard communicator.isRoot else { return }
        progress.finish()
        if let profile = result.summary.profile { print(profile.table()) }
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

    func runPreferenceDemo(device: Device) throws {
        var demo = PreferenceDemo()
        demo.sft.device = device
        if let demoSteps { demo.sft.steps = demoSteps }
        if let demoDpoSteps { demo.dpoSteps = demoDpoSteps }
        if let output { demo.sft.outputDirectory = URL(fileURLWithPath: output) }
        print("itune-gpu train --demo-dpo: the embedded demonstration, then DPO on preference pairs of its tasks.")
        let progress = Progress()
        let r = try demo.run(log: progress.line, onEvent: progress.event)
        progress.finish()
        print(String(format: "held-out (%d pairs): exact match %.1f%% after SFT → %.1f%% after DPO; chosen above rejected %.1f%% → %.1f%%; rewards/accuracies %.3f, rewards/margins %.3f after DPO",
                     r.heldOutPairs, r.exactMatchBefore * 100, r.exactMatchAfter * 100, r.preferenceAccuracyBefore * 100,
                     r.preferenceAccuracyAfter * 100, r.rewardAccuracyAfter, r.rewardMarginAfter))
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

/// The help line of a `FineTuneConfig` option, from the library's list (one statement of each
/// default).
private func optionHelp(_ name: String) -> ArgumentHelp { ArgumentHelp(FineTuneConfig.help(for: name)) }
