import Foundation
import ITuneData
import ITuneModels
import ITuneTensor

// The options of a fine-tuning run, listed once: the key each has in a config file (the long
// option name of `itune-gpu train`), its help line with the default taken from
// `FineTuneConfig`'s own initial values, whether it may change when a run resumes, and how it
// is read and written. `--config FILE` and the `itune_config.json` a run writes go through this
// one list, so what a run writes reads back as the same run.

/// One option of `FineTuneConfig` as a config file and the command line spell it.
public struct FineTuneOption: @unchecked Sendable {
    /// The key, as the long option name: `lora-rank`, `batch-size`, `lr`.
    public let name: String
    /// One line of help, ending with the default where there is one.
    public let help: String
    /// Whether a resumed run may change it without changing the loss curve (output, how often
    /// it checkpoints or evaluates); every other option must match the saved run.
    public let keepsCurve: Bool
    /// false for what a run records but the user does not choose (`ranks`, which the launcher
    /// decides): read from a file, never offered on the command line.
    public var onCommandLine: Bool { name != "ranks" }

    let encode: (FineTuneConfig, inout KeyedEncodingContainer<OptionKey>) throws -> Void
    let decode: (inout FineTuneConfig, KeyedDecodingContainer<OptionKey>, OptionKey) throws -> Void
    let same: (FineTuneConfig, FineTuneConfig) -> Bool
    let show: (FineTuneConfig) -> String
}

/// A config file key: any string (unknown ones are reported, not dropped).
struct OptionKey: CodingKey {
    let stringValue: String
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

/// A config file (or mapping) that cannot be read as a `FineTuneConfig`, naming the source and
/// the key.
public struct ConfigFileError: Error, CustomStringConvertible {
    /// The file (or "command line", "mapping").
    public var source: String
    /// The offending keys as written.
    public var keys: [String]
    public var message: String

    public init(source: String, keys: [String], message: String) {
        self.source = source
        self.keys = keys
        self.message = message
    }

    public var description: String {
        "\(source): \(keys.map { "'\($0)'" }.joined(separator: ", ")): \(message)"
    }
}

extension FineTuneConfig {
    /// Every option, in the order `itune_config.json` and `--help` list them.
    public static let options: [FineTuneOption] = {
        let d = FineTuneConfig()
        func dflt(_ v: Any) -> String { " (default \(describe(v)))." }
        return [
            field("model", \.model, "Hugging Face model directory (config.json, *.safetensors, tokenizer.json)."),
            list("data", \.data, "Training data: .json/.jsonl files or directories (repeatable)."),
            field("mixture", \.mixture, "A task mixture file (from itune-gpu select), sampled FLAN-style; with or instead of --data."),
            choice("format", \.format, "Record format, instead of detecting it"),
            list("validation-data", \.validationData, "Validation data file (repeatable); otherwise --validation-split of the data."),
            field("validation-split", \.validationSplit, "Fraction of the data held out for validation, in [0, 1)" + dflt(d.validationSplit)),
            field("template", \.template, "Prompt template: a name, or 'model' (default: the model's own chat_template, rendered, when it has one; else alpaca)."),
            field("output", \.output, "Output directory" + dflt(d.output), keepsCurve: true),
            field("full", \.full, "Train every weight instead of LoRA adapters."),
            field("lora-rank", \.lora.rank, "LoRA rank r, at least 1 and at most the adapted layers' smaller dimension" + dflt(d.lora.rank)),
            field("lora-alpha", \.lora.alpha, "LoRA alpha; the update is scaled by alpha/r" + dflt(d.lora.alpha)),
            field("lora-dropout", \.lora.dropout, "LoRA dropout probability, in [0, 1)" + dflt(d.lora.dropout)),
            list("lora-targets", \.lora.targetModules, "Modules to adapt, comma-separated (default all attention and MLP projections of the model family).",
                 commas: true),
            field("rslora", \.lora.useRSLoRA, "rsLoRA scaling alpha/√r."),
            choice("base-dtype", \.baseDType, "Storage of the frozen base's projection and embedding weights under LoRA (the matmuls read them as stored and accumulate in f32; default: the checkpoint's dtype)"),
            choice("precision", \.precision, "Matmul precision of full fine-tuning: bf16 rounds the linear layers' inputs, weights and outputs to bf16 (f32 accumulation, f32 master weights and AdamW state, as PyTorch autocast)" + dflt(d.precision.rawValue)),
            choice("quantize", \.quantize, "LoRA: store the frozen base's projections blockwise quantised (nf4: QLoRA's NormalFloat4, or int8; blocks of 64 with an absmax each), dequantised inside the matmul."),
            field("double-quant", \.doubleQuant, "With --quantize nf4: quantise the blocks' absmax constants too (8-bit blocks of 256, QLoRA's double quantisation)."),
            field("quantize-embeddings", \.quantizeEmbeddings, "With --quantize: store the token embeddings and the head (tied or lm_head) in the same blocks, as mlx-lm's quantised models do (QLoRA keeps them in 16 bits); for the rotary decoders (Llama, Qwen2, Mistral, Phi-3)."),
            field("grad-checkpoint", \.gradCheckpoint, "Keep only each decoder block's input in the forward and recompute the block in the backward: the same loss and gradients with less activation memory, for about one more forward.", keepsCurve: true),
            field("init-adapter", \.initAdapter, "Start LoRA from this PEFT adapter directory."),
            field("epochs", \.trainer.epochs, "Passes over the training data" + dflt(d.trainer.epochs)),
            field("max-steps", \.trainer.maxSteps, "Optimizer steps, overriding --epochs."),
            field("batch-size", \.trainer.batchSize, "Rows per micro-batch" + dflt(d.trainer.batchSize)),
            field("grad-accum", \.trainer.gradientAccumulation, "Micro-batches per optimizer step" + dflt(d.trainer.gradientAccumulation)),
            field("lr", \.trainer.optimizer.learningRate, "Peak learning rate, ≥ 0" + dflt(d.trainer.optimizer.learningRate)),
            field("weight-decay", \.trainer.optimizer.weightDecay, "AdamW decoupled weight decay, ≥ 0" + dflt(d.trainer.optimizer.weightDecay)),
            field("beta1", \.trainer.optimizer.beta1, "AdamW beta1, in [0, 1)" + dflt(d.trainer.optimizer.beta1)),
            field("beta2", \.trainer.optimizer.beta2, "AdamW beta2, in [0, 1)" + dflt(d.trainer.optimizer.beta2)),
            field("adam-eps", \.trainer.optimizer.eps, "AdamW epsilon, ≥ 0" + dflt(d.trainer.optimizer.eps)),
            field("warmup-ratio", \.trainer.warmupRatio, "Warm-up as a fraction of the steps, in [0, 1]" + dflt(d.trainer.warmupRatio)),
            field("warmup-steps", \.trainer.warmupSteps, "Warm-up steps, overriding --warmup-ratio."),
            choice("schedule", \.trainer.decay, "Decay after warm-up" + dflt(d.trainer.decay.rawValue)),
            choice("nan-policy", \.trainer.nanPolicy, "When a step's loss or gradient norm is NaN or infinite: stop, or skip the update and count it" + dflt(d.trainer.nanPolicy.rawValue)),
            field("max-grad-norm", \.trainer.maxGradNorm, "Clip gradients to this global norm; 0 turns clipping off" + dflt(d.trainer.maxGradNorm)),
            field("seed", \.trainer.seed, "Seed of initialisation, shuffling and dropout" + dflt(d.trainer.seed)),
            choice("method", \.method, "What to train for: sft on instruction data, or dpo / orpo on preference pairs ({prompt, chosen, rejected} as strings or message lists)" + dflt(d.method.rawValue)),
            field("beta", \.beta, "DPO's beta (IPO's tau): how far the policy may move from the reference, > 0" + dflt(d.beta)),
            field("label-smoothing", \.labelSmoothing, "Conservative DPO: the probability that a pair's preference is flipped, in [0, 0.5) (sigmoid loss)" + dflt(d.labelSmoothing)),
            choice("loss-type", \.lossType, "DPO loss: sigmoid (DPO, cDPO with --label-smoothing) or ipo (length-normalised, as TRL)" + dflt(d.lossType.rawValue)),
            field("lambda", \.lambda, "ORPO's lambda: the weight of the odds-ratio term against the NLL, ≥ 0" + dflt(d.lambda)),
            field("precompute-ref", \.precomputeRef, "DPO: compute the reference log-probabilities once before training (full fine-tuning then keeps no frozen copy of the model)."),
            field("max-length", \.maxLength, "Longest example in tokens; longer ones are cut" + dflt(d.maxLength)),
            field("packing", \.packing, "Pack short examples into full rows (attention kept within each)."),
            field("train-on-inputs", \.trainOnInputs, "Take the loss on the prompt too, not only on the answers."),
            field("skip-bad-records", \.skipBadRecords, "Skip malformed records with a warning instead of stopping.", keepsCurve: true),
            field("pad-id", \.padID, "Token id that pads batches (default: the tokenizer's pad token, else its eos); itune_config.json records the one used.",
                  keepsCurve: true),
            field("eval-every", \.trainer.evalEvery, "Validation every N steps; 0: at the end only" + dflt(d.trainer.evalEvery), keepsCurve: true),
            field("log-every", \.trainer.logEvery, "Read the loss back every N optimizer steps (one metrics line and progress update, the mean loss of the N); between reads the device runs on without waiting" + dflt(d.trainer.logEvery),
                  keepsCurve: true),
            field("profile", \.profile, "End with a per-kernel table (per op on the CPU path) of the steps from the second on: launches, time, share of the step, idle time before.",
                  keepsCurve: true),
            field("save-every", \.trainer.saveEvery, "Checkpoint every N steps; 0: none" + dflt(d.trainer.saveEvery), keepsCurve: true),
            field("keep-checkpoints", \.trainer.keepCheckpoints, "Checkpoints kept, newest first" + dflt(d.trainer.keepCheckpoints), keepsCurve: true),
            field("samples", \.samples, "Generations written at the end from held-out instructions" + dflt(d.samples), keepsCurve: true),
            field("bucket-mb", \.bucketMB, "Under mpirun/srun: gradients are summed over the ranks in buckets of this many MB" + dflt(d.bucketMB),
                  keepsCurve: true),
            // Not a command-line option: the launcher decides; the file records it so that a
            // resume with another rank count can tell whether the global batch is the same.
            field("ranks", \.ranks, "Ranks of the run that wrote this file (set from the launcher; global batch = batch-size × ranks × grad-accum).",
                  keepsCurve: true),
            field("resume", \.resume, "Continue from the latest checkpoint in --output (the saved options must match).", keepsCurve: true),
            field("resume-anyway", \.resumeAnyway, "With --resume: continue even where options that change the loss curve differ from the saved run.",
                  keepsCurve: true),
        ]
    }()

    /// The option called `name` (`_` read as `-`), if there is one.
    public static func option(_ name: String) -> FineTuneOption? {
        let key = name.replacingOccurrences(of: "_", with: "-")
        return options.first { $0.name == key }
    }

    /// The help line of option `name`; the command line's help comes from here.
    public static func help(for name: String) -> String { option(name)?.help ?? "" }

    /// Reads a mapping of option names to values (a parsed YAML or JSON file, command-line
    /// values merged over it). Keys may use `_` for `-`; unknown keys and values of the wrong
    /// type are errors naming `source` and the key. Values are not range-checked here: see
    /// `validate()`.
    public init(options mapping: [String: Any], source: String) throws {
        let safe = mapping.mapValues(Self.jsonSafe)
        guard let data = try? JSONSerialization.data(withJSONObject: safe) else {
            let bad = safe.filter { (try? JSONSerialization.data(withJSONObject: [$0.value])) == nil }.keys.sorted()
            throw ConfigFileError(source: source, keys: bad, message: "values that are not numbers, strings, lists or booleans")
        }
        try self.init(json: data, source: source)
    }

    /// Reads JSON (an `itune_config.json`, or a `--config` file in JSON), naming `source` in
    /// errors.
    public init(json: Data, source: String) throws {
        do {
            self = try JSONDecoder().decode(FineTuneConfig.self, from: json)
        } catch var e as ConfigFileError {
            e.source = source
            throw e
        } catch {
            throw ConfigFileError(source: source, keys: [], message: "not a JSON mapping of option names to values (\(error))")
        }
    }

    /// The JSON of `itune_config.json`: every option by its key, sorted, pretty-printed.
    public func encodedJSON() throws -> Data { try JSONEncoder.pretty.encode(self) }

    /// Reads an `itune_config.json` written by a run.
    public static func read(contentsOf url: URL) throws -> FineTuneConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ConfigFileError(source: url.path, keys: [], message: "cannot read (\(error.localizedDescription))")
        }
        return try FineTuneConfig(json: data, source: url.path)
    }

    /// The options that differ between `self` and `other` and change the loss curve, each as
    /// "--name OLD → NEW" with `other` the old side.
    public func curveChanges(from other: FineTuneConfig) -> [String] {
        Self.options.filter { !$0.keepsCurve && !$0.same(self, other) }
            .map { "--\($0.name) \($0.show(other)) → \($0.show(self))" }
    }

    /// YAML may give dates or other non-JSON values; anything JSON cannot hold becomes a string,
    /// which the decoder then refuses with the key named.
    /// Non-finite numbers (`--lr nan`, YAML's `.inf`) become their names, which parse back as
    /// numbers for validation to refuse by name.
    static func jsonSafe(_ v: Any) -> Any {
        switch v {
        case let f as Float where !f.isFinite: return "\(f)"
        case let d as Double where !d.isFinite: return "\(d)"
        case is String, is Bool, is Int, is Double, is Float, is UInt64, is Int32, is NSNull: return v
        case let a as [Any]: return a.map(jsonSafe)
        case let d as [String: Any]: return d.mapValues(jsonSafe)
        default: return "\(v)"
        }
    }
}

extension FineTuneConfig: Codable {
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: OptionKey.self)
        let unknown = c.allKeys.filter { Self.option($0.stringValue) == nil }.map(\.stringValue).sorted()
        guard unknown.isEmpty else {
            throw ConfigFileError(source: "", keys: unknown, message: "unknown option\(unknown.count > 1 ? "s" : ""); known: "
                                  + Self.options.map(\.name).joined(separator: ", "))
        }
        let byName = Dictionary(c.allKeys.map { ($0.stringValue.replacingOccurrences(of: "_", with: "-"), [$0]) }, uniquingKeysWith: +)
        if let twice = byName.first(where: { $0.value.count > 1 }) {
            throw ConfigFileError(source: "", keys: twice.value.map(\.stringValue).sorted(), message: "the same option given twice")
        }
        for option in Self.options {
            guard let key = byName[option.name]?.first else { continue }
            do {
                try option.decode(&self, c, key)
            } catch let e as ConfigFileError {
                throw e
            } catch {
                throw ConfigFileError(source: "", keys: [key.stringValue], message: Self.expectation(error))
            }
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: OptionKey.self)
        for option in Self.options { try option.encode(self, &c) }
    }

    /// A decoding error as what the value should have been.
    static func expectation(_ error: Error) -> String {
        switch error {
        case let DecodingError.typeMismatch(type, _): return "expected \(typeName(type))"
        case let DecodingError.valueNotFound(type, _): return "expected \(typeName(type)), not null"
        case let DecodingError.dataCorrupted(context): return context.debugDescription
        default: return "not a value this option can hold (\(error))"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int32.Type, is UInt64.Type: return "a whole number"
        case is Float.Type, is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default: return "a value of type \(type)"
        }
    }
}

// MARK: building the list

private func describe(_ v: Any) -> String {
    let m = Mirror(reflecting: v)
    if m.displayStyle == .optional { return m.children.first.map { describe($0.value) } ?? "none" }
    if let a = v as? [Any] { return a.isEmpty ? "none" : a.map(describe).joined(separator: ",") }
    if let r = v as? any RawRepresentable { return "\(r.rawValue)" }
    return "\(v)"
}

/// A value an option holds. YAML 1.1 reads `2e-4` (no dot) as a string, so numbers are also
/// accepted as strings that parse.
private protocol OptionValue: Codable, Equatable {
    static func parse(_ text: String) -> Self?
}
extension OptionValue { static func parse(_ text: String) -> Self? { nil } }
extension OptionValue where Self: LosslessStringConvertible {
    static func parse(_ text: String) -> Self? { Self(text.trimmingCharacters(in: .whitespaces)) }
}
extension Int: OptionValue {}
extension Int32: OptionValue {}
extension UInt64: OptionValue {}
extension Float: OptionValue {}
extension Double: OptionValue {}
extension Bool: OptionValue {}
extension String: OptionValue {}
extension Array: OptionValue where Element == String {}
extension RecordFormat: OptionValue {}
extension LRSchedule.Decay: OptionValue {}
extension BaseDType: OptionValue {}
extension MatmulPrecision: OptionValue {}
extension Optional: OptionValue where Wrapped: OptionValue {
    static func parse(_ text: String) -> Self? { Wrapped.parse(text).map { .some($0) } }
}

private func field<T: OptionValue>(_ name: String, _ path: WritableKeyPath<FineTuneConfig, T>, _ help: String,
                                   keepsCurve: Bool = false) -> FineTuneOption {
    FineTuneOption(name: name, help: help, keepsCurve: keepsCurve,
                   encode: { config, c in try c.encode(config[keyPath: path], forKey: OptionKey(name)) },
                   decode: { config, c, key in
                       do {
                           config[keyPath: path] = try c.decode(T.self, forKey: key)
                       } catch let error as DecodingError {
                           guard let text = try? c.decode(String.self, forKey: key), let v = T.parse(text) else { throw error }
                           config[keyPath: path] = v
                       }
                   },
                   same: { $0[keyPath: path] == $1[keyPath: path] },
                   show: { describe($0[keyPath: path]) })
}

/// A list of strings; a file may also give one string (split at commas when `commas`).
private func list(_ name: String, _ path: WritableKeyPath<FineTuneConfig, [String]>, _ help: String,
                  commas: Bool = false) -> FineTuneOption {
    var option = field(name, path, help)
    option = FineTuneOption(name: name, help: help, keepsCurve: false, encode: option.encode,
                            decode: { config, c, key in
                                if let one = try? c.decode(String.self, forKey: key) {
                                    config[keyPath: path] = commas
                                        ? one.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : [one]
                                } else {
                                    config[keyPath: path] = try c.decode([String].self, forKey: key)
                                }
                            },
                            same: option.same, show: option.show)
    return option
}

/// One of a fixed set of names; an unknown one is refused with the names listed.
private protocol OptionChoice: RawRepresentable<String>, CaseIterable, OptionValue {}
extension RecordFormat: OptionChoice {}
extension LRSchedule.Decay: OptionChoice {}
extension NaNPolicy: OptionChoice {}
extension BaseDType: OptionChoice {}
extension MatmulPrecision: OptionChoice {}
extension QuantFormat: OptionChoice {}
extension TrainingMethod: OptionChoice {}
extension PreferenceLossType: OptionChoice {}

private func choice<T: OptionChoice>(_ name: String, _ path: WritableKeyPath<FineTuneConfig, T>, _ help: String) -> FineTuneOption {
    let known = T.allCases.map(\.rawValue).joined(separator: ", ")
    let base = field(name, path, help)
    return FineTuneOption(name: name, help: help.hasSuffix(".") ? "\(help.dropLast()); one of \(known)." : "\(help): \(known).",
                          keepsCurve: false, encode: base.encode,
                          decode: { config, c, key in
                              let s = try c.decode(String.self, forKey: key)
                              guard let v = T(rawValue: s) else {
                                  throw ConfigFileError(source: "", keys: [key.stringValue], message: "'\(s)' is not one of \(known)")
                              }
                              config[keyPath: path] = v
                          },
                          same: base.same, show: base.show)
}

private func choice<T: OptionChoice>(_ name: String, _ path: WritableKeyPath<FineTuneConfig, T?>, _ help: String) -> FineTuneOption {
    let known = T.allCases.map(\.rawValue).joined(separator: ", ")
    let base = field(name, path, help)
    return FineTuneOption(name: name, help: "\(help): \(known).", keepsCurve: false, encode: base.encode,
                          decode: { config, c, key in
                              guard let s = try c.decode(String?.self, forKey: key) else { config[keyPath: path] = nil; return }
                              guard let v = T(rawValue: s) else {
                                  throw ConfigFileError(source: "", keys: [key.stringValue], message: "'\(s)' is not one of \(known)")
                              }
                              config[keyPath: path] = v
                          },
                          same: base.same, show: base.show)
}
