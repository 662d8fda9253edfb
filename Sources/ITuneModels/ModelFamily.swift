import Foundation
import ITuneTensor

/// Everything itune-gpu knows about one model family, in one registration: how config.json
/// reads and writes, how the model is built, how its parameter names map to a checkpoint's,
/// and which projections LoRA adapts by default. Adding a family is one file that defines its
/// layers and its `ModelFamily`, and one line in `registered`.
public struct ModelFamily: Sendable {
    /// What the family's models are: decoder-only (`CausalLM`, built through `make`) or
    /// encoder-decoder (`T5Model`, whose config and weights T5.swift reads).
    public enum Kind: String, Sendable {
        case decoder = "decoder-only"
        case encoderDecoder = "encoder-decoder"
    }

    /// config.json's `model_type`.
    public let architecture: Architecture
    public let kind: Kind
    /// config.json's `architectures` class names (the first is the one written).
    public let classNames: [String]
    /// PEFT `target_modules` when the user names none.
    public let defaultLoRATargets: [String]
    /// config.json's fields → the model's shape; refuses fields whose maths are not implemented.
    let decode: @Sendable (ConfigFields) throws -> ModelConfig
    /// The model's shape → config.json's family-specific keys (the common ones are added by
    /// `ModelConfig.huggingFaceJSON`).
    let encode: @Sendable (ModelConfig) -> [String: Any]
    /// Builds the model, every parameter taken from `WeightSource` by its transformers name.
    let make: @Sendable (ModelConfig, Device, @escaping WeightSource) throws -> any CausalLM
    /// Names a parameter may carry in a checkpoint, most usual first (GPT-2 files often drop
    /// transformers' `transformer.` prefix).
    let checkpointNames: @Sendable (String) -> [String]

    public init(architecture: Architecture, classNames: [String], defaultLoRATargets: [String], kind: Kind = .decoder,
                decode: @escaping @Sendable (ConfigFields) throws -> ModelConfig,
                encode: @escaping @Sendable (ModelConfig) -> [String: Any],
                make: @escaping @Sendable (ModelConfig, Device, @escaping WeightSource) throws -> any CausalLM,
                checkpointNames: @escaping @Sendable (String) -> [String] = { [$0] }) {
        self.architecture = architecture
        self.kind = kind
        self.classNames = classNames
        self.defaultLoRATargets = defaultLoRATargets
        self.decode = decode
        self.encode = encode
        self.make = make
        self.checkpointNames = checkpointNames
    }

    /// The families itune-gpu loads, trains and saves.
    public static let registered: [ModelFamily] = [.llama, .mistral, .qwen2, .phi3, .gpt2, .t5, .mt5]

    /// The registered decoder-only families: what `makeModel` and `loadPretrained` build.
    public static var decoders: [ModelFamily] { registered.filter { $0.kind == .decoder } }

    public static func named(_ architecture: Architecture) -> ModelFamily? {
        registered.first { $0.architecture == architecture }
    }

    /// The family of an `architectures` class name such as "Phi3ForCausalLM".
    public static func forClassName(_ name: String) -> ModelFamily? {
        registered.first { $0.classNames.contains(name) }
    }

    /// The family config.json's `architectures` (or else its `model_type`) names, or an error
    /// naming the file and listing every registered class.
    public static func of(configJSON json: [String: Any], file: String) throws -> ModelFamily {
        let classes = (json["architectures"] as? [String]) ?? []
        let modelType = json["model_type"] as? String
        guard let family = classes.lazy.compactMap(ModelFamily.forClassName).first
            ?? modelType.flatMap({ ModelFamily.named(Architecture(rawValue: $0)) }) else {
            throw ModelFileError.unsupportedArchitecture(file: file, found: classes.first ?? modelType ?? "(none given)",
                                                         supported: registered.flatMap(\.classNames).sorted())
        }
        return family
    }

    /// The family of the model directory `directory` (its config.json).
    public static func of(directory: URL) throws -> ModelFamily {
        let url = directory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ModelFileError.unreadable(file: url.path, "no such file")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelFileError.malformed(file: url.path, "not a JSON object")
        }
        return try of(configJSON: json, file: url.path)
    }

    /// The family of `config`, or an error naming its architecture.
    static func of(_ config: ModelConfig) throws -> ModelFamily {
        guard let f = named(config.architecture) else {
            throw ModelFileError.unsupportedArchitecture(file: "(model config)", found: config.architecture.rawValue,
                                                         supported: registered.map(\.architecture.rawValue))
        }
        return f
    }
}

/// Builds a model of `config`'s family with weights from `source`.
public func makeModel(_ config: ModelConfig, on device: Device, from source: @escaping WeightSource) throws -> any CausalLM {
    try config.validate()
    return try ModelFamily.of(config).make(config, device, source)
}

/// A randomly initialised model of `config`'s family (Hugging Face's init: normal(0, 0.02),
/// zero biases, unit norms), seeded per parameter name.
public func makeModel(_ config: ModelConfig, seed: UInt64 = 0, on device: Device) throws -> any CausalLM {
    try makeModel(config, on: device, from: randomWeights(seed: seed, on: device))
}

/// Loads a Hugging Face model directory (config.json + safetensors) onto `device`.
///
/// `matrices` is the storage of the projection and embedding weights: `.f32` (what training
/// them needs), or `.bf16` / `.f16` for a frozen base under LoRA, kept as the checkpoint
/// stores them when it is that format (half the memory; the matmul and the embedding read
/// them as stored). Biases and norm weights are always f32.
public func loadPretrained(_ directory: URL, on device: Device, matrices: DType = .f32) throws -> any CausalLM {
    guard matrices == .f32 || matrices.isHalfFloat else {
        throw ModelFileError.malformed(file: directory.path, "weights cannot be stored as \(matrices.rawValue) (f32, bf16 or f16)")
    }
    let config = try ModelConfig(configJSON: directory.appendingPathComponent("config.json"))
    let family = try ModelFamily.of(config)
    let checkpoint = try Checkpoint(directory: directory)
    let source: WeightSource = { name, shape, role in
        let stored = family.checkpointNames(name).first(where: checkpoint.contains) ?? name
        if role == .weight, shape.count == 2, matrices.isHalfFloat {
            return try checkpoint.tensor(stored, on: device, shape: shape, storing: matrices)
        }
        return try checkpoint.tensor(stored, on: device, shape: shape)
    }
    return try family.make(config, device, source)
}

/// `source` with its matrices (2-D `.weight` tensors: projections, embeddings) stored as
/// `dtype` (`.bf16` or `.f16`: a frozen base under LoRA); the rest as `source` gives them.
public func storingMatrices(as dtype: DType, _ source: @escaping WeightSource) -> WeightSource {
    guard dtype.isHalfFloat else { return source }
    return { name, shape, role in
        let t = try source(name, shape, role)
        guard role == .weight, shape.count == 2 else { return t }
        return try noGrad { try t.converted(to: dtype) }
    }
}
