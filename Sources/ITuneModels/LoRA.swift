import Foundation
import ITuneTensor

// LoRA (Hu et al. 2021) as PEFT implements it: y = W·x + b + scaling · B·A·dropout(x), A (r, in)
// initialised like nn.Linear's weight (kaiming-uniform with a = √5: U(−1/√in, 1/√in)), B (out, r)
// zeros, scaling = alpha / r (alpha / √r with rsLoRA). Names, config and files follow PEFT so
// that `PeftModel.from_pretrained` loads what is saved here and the reverse.

/// LoRA hyper-parameters, mirroring PEFT's `LoraConfig`.
public struct LoRAConfig: Sendable, Equatable, Codable {
    public var rank: Int
    public var alpha: Float
    public var dropout: Float
    /// Module names matched as PEFT does: equal to the last component(s) of a module's name.
    public var targetModules: [String]
    public var useRSLoRA: Bool

    public static let llamaTargets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    public static let gpt2Targets = ["c_attn", "c_proj", "c_fc"]

    public init(rank: Int = 8, alpha: Float = 16, dropout: Float = 0.05, targetModules: [String] = LoRAConfig.llamaTargets,
                useRSLoRA: Bool = false) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targetModules = targetModules
        self.useRSLoRA = useRSLoRA
    }

    public var scaling: Float { useRSLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank) }

    /// Whether a module called `name` (e.g. model.layers.0.self_attn.q_proj) is adapted.
    public func targets(_ name: String) -> Bool {
        targetModules.contains { name == $0 || name.hasSuffix("." + $0) }
    }
}

/// The low-rank update of one projection.
public final class LoRAAdapter {
    public let moduleName: String
    /// (r, in) and (out, r).
    public var a: Tensor
    public var b: Tensor
    public let scaling: Float
    public let dropout: Float
    let dropoutSite: UInt64

    public init(moduleName: String, a: Tensor, b: Tensor, scaling: Float, dropout: Float) {
        self.moduleName = moduleName
        self.a = a
        self.b = b
        self.scaling = scaling
        self.dropout = dropout
        dropoutSite = fnv1a64(moduleName)
    }

    /// Whether the adapter's input dropout is on now: only inside a training micro-batch
    /// (TrainingContext.microBatch), with a new mask per micro-batch, module and run seed.
    var dropsOut: Bool { dropout > 0 && TrainingContext.dropoutSeed(site: dropoutSite) != nil }

    /// scaling · B·A·dropout(x): x is (…, in), the result (…, out).
    public func delta(_ x: Tensor) throws -> Tensor {
        var input = x
        // On only inside a training micro-batch (TrainingContext.microBatch): a new mask per
        // micro-batch, module and run seed; off in inference.
        if dropout > 0, let seed = TrainingContext.dropoutSeed(site: dropoutSite) {
            input = try x.dropout(p: dropout, seed: seed)
        }
        // The scaling is the second GEMM's alpha (forward and backward): no pass of its own.
        return try input.linear(a).linear(b, scale: scaling)
    }

    /// PEFT's tensor names for this adapter.
    public var peftNames: (a: String, b: String) {
        ("base_model.model.\(moduleName).lora_A.weight", "base_model.model.\(moduleName).lora_B.weight")
    }
}

extension Array where Element == any LoRATarget {
    /// The LoRA factors (A, B) of the adapted projections among these.
    var loraFactors: [Tensor] { compactMap(\.lora).flatMap { [$0.a, $0.b] } }
}

/// A projection LoRA can adapt: nn.Linear, or GPT-2's Conv1D (weight stored transposed).
public protocol LoRATarget: AnyObject {
    var name: String { get }
    var inFeatures: Int { get }
    var outFeatures: Int { get }
    var weight: Tensor { get set }
    var lora: LoRAAdapter? { get set }
    /// The frozen weight as blocks (`quantizeBase`), (out, in); nil when `weight` holds it.
    var quantizedWeight: BlockQuantizedMatrix? { get }
    /// Whether the weight is stored (in, out), PEFT's `fan_in_fan_out`.
    var fanInFanOut: Bool { get }
}

extension Linear: LoRATarget {
    public var inFeatures: Int { quantizedWeight?.cols ?? weight.shape[1] }
    public var outFeatures: Int { quantizedWeight?.rows ?? weight.shape[0] }
    public var fanInFanOut: Bool { false }
}

extension Conv1D: LoRATarget {
    public var inFeatures: Int { quantizedWeight?.cols ?? weight.shape[0] }
    public var outFeatures: Int { quantizedWeight?.rows ?? weight.shape[1] }
    public var fanInFanOut: Bool { true }
}

/// A model whose projections LoRA adapts: every decoder (`CausalLM`) and T5's encoder-decoder.
public protocol LoRAHost: Module {
    var device: Device { get }
    /// Every projection (Linear or Conv1D) in module order: what LoRA can adapt.
    func projections() -> [any LoRATarget]
    /// PEFT's `task_type` in adapter_config.json ("CAUSAL_LM", T5's "SEQ_2_SEQ_LM").
    var peftTaskType: String { get }
}

extension LoRAHost {
    public var peftTaskType: String { "CAUSAL_LM" }
}

extension LoRAHost {
    /// Every projection whose name `config` targets.
    public func loraTargets(_ config: LoRAConfig) -> [any LoRATarget] {
        projections().filter { config.targets($0.name) }
    }

    /// Adds fresh adapters (PEFT's initialisation, seeded per module name) to every targeted
    /// projection, freezes every base weight and makes the adapters trainable. Returns the
    /// adapter parameters.
    @discardableResult
    public func addLoRA(_ config: LoRAConfig, seed: UInt64) throws -> [Tensor] {
        let targets = loraTargets(config)
        guard !targets.isEmpty else {
            throw ModelFileError.malformed(file: "(LoRA)", "no module matches target_modules \(config.targetModules); this model's projections are named like \(projections().prefix(3).map(\.name))")
        }
        setTrainable(false)
        var out: [Tensor] = []
        for t in targets {
            let bound = 1 / Float(t.inFeatures).squareRoot()
            let a = try Tensor.uniform([config.rank, t.inFeatures], -bound, bound, seed: seed ^ fnv1a64(t.name), on: device)
            let b = try Tensor.zeros([t.outFeatures, config.rank], on: device)
            a.requiresGrad = true
            b.requiresGrad = true
            t.lora = LoRAAdapter(moduleName: t.name, a: a, b: b, scaling: config.scaling, dropout: config.dropout)
            out += [a, b]
        }
        return out
    }

    /// Runs `body` with every adapter switched off (the plain base model, as PEFT's
    /// `disable_adapter()`), then puts them back: a DPO reference without a second copy of the
    /// model. The adapters' tensors are untouched.
    public func withAdaptersDisabled<T>(_ body: () throws -> T) rethrows -> T {
        let adapted = projections().compactMap { t in t.lora.map { (t, $0) } }
        for (t, _) in adapted { t.lora = nil }
        defer { for (t, l) in adapted { t.lora = l } }
        return try body()
    }

    /// The adapters present, in module order.
    public var loraAdapters: [LoRAAdapter] { projections().compactMap(\.lora) }

    /// The adapters' tensors under PEFT's names: what a LoRA run trains and checkpoints.
    public var loraParameters: [(String, Tensor)] {
        loraAdapters.flatMap { [($0.peftNames.a, $0.a), ($0.peftNames.b, $0.b)] }
    }

    /// Folds every adapter into its base weight (W += scaling·B·A) and removes it: the model is
    /// then a plain model that `savePretrained` writes for transformers.
    public func mergeLoRA() throws {
        try noGrad {
            for t in projections() {
                guard let l = t.lora else { continue }
                // (out, in) = B·A, or (in, out) = Aᵀ·Bᵀ for a weight stored transposed.
                let delta = try (t.fanInFanOut ? l.a.matmul(l.b, transposeA: true, transposeB: true) : l.b.matmul(l.a))
                    .scaled(by: l.scaling)
                // A 16-bit base (a frozen bf16/f16 weight) merges into f32: the sum is what
                // savePretrained writes, in the dtype it is asked for.
                let merged = try t.weight.converted(to: .f32) + delta
                merged.requiresGrad = false
                t.weight = try merged.detached()
                t.lora = nil
            }
        }
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` in PEFT's format.
    public func saveAdapter(to directory: URL, config: LoRAConfig, baseModel: String) throws {
        let adapters = loraAdapters
        guard !adapters.isEmpty else { throw ModelFileError.malformed(file: directory.path, "the model has no LoRA adapters to save") }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let json: [String: Any] = [
            "peft_type": "LORA", "task_type": peftTaskType, "base_model_name_or_path": baseModel,
            "r": config.rank, "lora_alpha": config.alpha, "lora_dropout": config.dropout,
            "target_modules": config.targetModules, "use_rslora": config.useRSLoRA, "bias": "none",
            "fan_in_fan_out": projections().first(where: { $0.lora != nil })?.fanInFanOut ?? false,
            "inference_mode": true, "init_lora_weights": true, "modules_to_save": NSNull(),
            "layers_to_transform": NSNull(), "layers_pattern": NSNull(), "rank_pattern": [String: Int](),
            "alpha_pattern": [String: Float](), "use_dora": false, "revision": NSNull(),
        ]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(data, to: directory.appendingPathComponent("adapter_config.json"))
        var tensors: [(name: String, tensor: Tensor)] = []
        for l in adapters { tensors += [(l.peftNames.a, l.a), (l.peftNames.b, l.b)] }
        try SafetensorsFile.write(tensors, to: directory.appendingPathComponent("adapter_model.safetensors"))
    }

    /// Adds the adapters of a PEFT adapter directory. `trainable` makes them train (resuming
    /// from `--init-adapter`); otherwise they are frozen like the base.
    @discardableResult
    public func loadAdapter(from directory: URL, trainable: Bool = false) throws -> LoRAConfig {
        let configURL = directory.appendingPathComponent("adapter_config.json")
        let obj: Any
        do { obj = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) } catch {
            throw ModelFileError.unreadable(file: configURL.path, "\(error.localizedDescription)")
        }
        guard let j = obj as? [String: Any] else { throw ModelFileError.malformed(file: configURL.path, "not a JSON object") }
        guard (j["peft_type"] as? String) == "LORA" else {
            throw ModelFileError.malformed(file: configURL.path, "peft_type \(j["peft_type"] ?? "(missing)") is not LORA")
        }
        guard let r = (j["r"] as? NSNumber)?.intValue, let alpha = (j["lora_alpha"] as? NSNumber)?.floatValue else {
            throw ModelFileError.missingField(file: configURL.path, field: "r / lora_alpha")
        }
        for key in ["rank_pattern", "alpha_pattern"] where !((j[key] as? [String: Any])?.isEmpty ?? true) {
            throw ModelFileError.malformed(file: configURL.path, "\(key) (per-module ranks or alphas) is not supported")
        }
        for key in ["use_dora", "lora_bias"] where (j[key] as? Bool) == true {
            throw ModelFileError.malformed(file: configURL.path, "\(key) is not supported (plain LoRA only)")
        }
        let targets: [String]
        if let list = j["target_modules"] as? [String] { targets = list } else if let one = j["target_modules"] as? String {
            targets = [one]
        } else { throw ModelFileError.missingField(file: configURL.path, field: "target_modules") }
        let config = LoRAConfig(rank: r, alpha: alpha, dropout: (j["lora_dropout"] as? NSNumber)?.floatValue ?? 0,
                                targetModules: targets, useRSLoRA: (j["use_rslora"] as? Bool) ?? false)
        let file = try SafetensorsFile(url: directory.appendingPathComponent("adapter_model.safetensors"))
        let names = Set(file.names)
        setTrainable(false)
        for t in loraTargets(config) {
            let probe = LoRAAdapter(moduleName: t.name, a: t.weight, b: t.weight, scaling: 0, dropout: 0)
            // PEFT writes names without the adapter name; older files carry ".default".
            func find(_ n: String) -> String? {
                [n, n.replacingOccurrences(of: ".weight", with: ".default.weight")].first { names.contains($0) }
            }
            guard let an = find(probe.peftNames.a), let bn = find(probe.peftNames.b) else {
                throw ModelFileError.missingTensor(name: probe.peftNames.a, file: directory.path)
            }
            let a = try file.tensor(an, on: device, expectedShape: [r, t.inFeatures])
            let b = try file.tensor(bn, on: device, expectedShape: [t.outFeatures, r])
            a.requiresGrad = trainable
            b.requiresGrad = trainable
            t.lora = LoRAAdapter(moduleName: t.name, a: a, b: b, scaling: config.scaling, dropout: config.dropout)
        }
        return config
    }
}
