import Foundation

/// The decoder families itune-gpu loads from Hugging Face checkpoints.
public enum Architecture: String, Sendable, CaseIterable {
    case llama, mistral, qwen2, gpt2

    /// The `architectures` names of config.json for each family.
    public static let classNames: [String: Architecture] = [
        "LlamaForCausalLM": .llama, "MistralForCausalLM": .mistral, "Qwen2ForCausalLM": .qwen2,
        "GPT2LMHeadModel": .gpt2,
    ]
}

/// How rotary frequencies are rescaled for long contexts (`rope_scaling`).
public enum RoPEScaling: Sendable, Equatable {
    case linear(factor: Float)
    case llama3(factor: Float, lowFreqFactor: Float, highFreqFactor: Float, originalMaxPositions: Int)
}

/// The shape of a decoder-only model, read from config.json or built in code.
///
/// Llama 2/3, TinyLlama, SmolLM/SmolLM2 and Mistral share one layout; Qwen2 adds q/k/v
/// biases; GPT-2 has learned positions, LayerNorm, a GELU MLP and Conv1D weights.
public struct ModelConfig: Sendable, Equatable {
    public var architecture: Architecture = .llama
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var normEps: Float
    public var ropeTheta: Float
    public var ropeScaling: RoPEScaling?
    public var maxPositions: Int
    public var tieWordEmbeddings: Bool
    /// Biases on the q, k and v projections (Qwen2; Llama's `attention_bias`, which also puts one on o).
    public var qkvBias: Bool
    public var outputBias: Bool
    public var mlpBias: Bool
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]

    public init(architecture: Architecture = .llama, vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
                numLayers: Int, numHeads: Int, numKVHeads: Int? = nil, headDim: Int? = nil, normEps: Float = 1e-5,
                ropeTheta: Float = 10000, ropeScaling: RoPEScaling? = nil, maxPositions: Int = 2048,
                tieWordEmbeddings: Bool = false, qkvBias: Bool = false, outputBias: Bool = false, mlpBias: Bool = false,
                bosTokenID: Int? = nil, eosTokenIDs: [Int] = []) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads ?? numHeads
        self.headDim = headDim ?? hiddenSize / numHeads
        self.normEps = normEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.maxPositions = maxPositions
        self.tieWordEmbeddings = tieWordEmbeddings
        self.qkvBias = qkvBias
        self.outputBias = outputBias
        self.mlpBias = mlpBias
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
    }

    /// Reads a Hugging Face `config.json`. Unknown architectures and missing fields are
    /// errors naming the file and the field.
    public init(configJSON url: URL) throws {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelFileError.unreadable(file: path, "no such file")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelFileError.malformed(file: path, "not a JSON object")
        }
        try self.init(json: json, file: path)
    }

    public init(json: [String: Any], file: String = "config.json") throws {
        func int(_ key: String) -> Int? { (json[key] as? NSNumber)?.intValue }
        func float(_ key: String) -> Float? { (json[key] as? NSNumber)?.floatValue }
        func need(_ key: String, _ alternatives: String...) throws -> Int {
            for k in [key] + alternatives { if let v = int(k) { return v } }
            throw ModelFileError.missingField(file: file, field: key)
        }
        let classes = (json["architectures"] as? [String]) ?? []
        let modelType = json["model_type"] as? String
        guard let arch = classes.lazy.compactMap({ Architecture.classNames[$0] }).first
            ?? modelType.flatMap(Architecture.init(rawValue:)) else {
            throw ModelFileError.unsupportedArchitecture(file: file, found: classes.first ?? modelType ?? "(none given)",
                                                         supported: Architecture.classNames.keys.sorted())
        }
        let eos: [Int]
        if let list = json["eos_token_id"] as? [NSNumber] { eos = list.map(\.intValue) } else { eos = int("eos_token_id").map { [$0] } ?? [] }

        if arch == .gpt2 {
            let hidden = try need("n_embd", "hidden_size")
            self.init(architecture: .gpt2, vocabSize: try need("vocab_size"), hiddenSize: hidden,
                      intermediateSize: int("n_inner") ?? 4 * hidden, numLayers: try need("n_layer", "num_hidden_layers"),
                      numHeads: try need("n_head", "num_attention_heads"), normEps: float("layer_norm_epsilon") ?? 1e-5,
                      maxPositions: try need("n_positions", "max_position_embeddings"), tieWordEmbeddings: true,
                      qkvBias: true, outputBias: true, mlpBias: true, bosTokenID: int("bos_token_id"), eosTokenIDs: eos)
            if let act = json["activation_function"] as? String, !["gelu_new", "gelu_pytorch_tanh"].contains(act) {
                throw ModelFileError.malformed(file: file, "activation_function \(act) is not supported (gelu_new)")
            }
            return
        }
        let hidden = try need("hidden_size")
        let heads = try need("num_attention_heads")
        // Newer transformers nest rope settings in `rope_parameters`.
        let ropeParams = json["rope_parameters"] as? [String: Any]
        let theta = (json["rope_theta"] as? NSNumber)?.floatValue ?? (ropeParams?["rope_theta"] as? NSNumber)?.floatValue ?? 10000
        var scaling: RoPEScaling? = nil
        if let s = (json["rope_scaling"] as? [String: Any]) ?? ropeParams {
            let type = (s["rope_type"] as? String) ?? (s["type"] as? String) ?? "default"
            let f = { (k: String) in (s[k] as? NSNumber)?.floatValue }
            switch type {
            case "default": break
            case "linear":
                guard let factor = f("factor") else { throw ModelFileError.missingField(file: file, field: "rope_scaling.factor") }
                scaling = .linear(factor: factor)
            case "llama3":
                guard let factor = f("factor"), let low = f("low_freq_factor"), let high = f("high_freq_factor"),
                      let orig = (s["original_max_position_embeddings"] as? NSNumber)?.intValue else {
                    throw ModelFileError.missingField(file: file, field: "rope_scaling (llama3 needs factor, low_freq_factor, high_freq_factor, original_max_position_embeddings)")
                }
                scaling = .llama3(factor: factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: orig)
            default:
                throw ModelFileError.malformed(file: file, "rope_scaling type \(type) is not supported (default, linear, llama3)")
            }
        }
        if let act = json["hidden_act"] as? String, act != "silu" {
            throw ModelFileError.malformed(file: file, "hidden_act \(act) is not supported (silu)")
        }
        let attentionBias = (json["attention_bias"] as? Bool) ?? false
        self.init(architecture: arch, vocabSize: try need("vocab_size"), hiddenSize: hidden,
                  intermediateSize: try need("intermediate_size"), numLayers: try need("num_hidden_layers"),
                  numHeads: heads, numKVHeads: int("num_key_value_heads") ?? heads,
                  headDim: int("head_dim") ?? hidden / heads, normEps: float("rms_norm_eps") ?? 1e-6,
                  ropeTheta: theta, ropeScaling: scaling, maxPositions: int("max_position_embeddings") ?? 2048,
                  tieWordEmbeddings: (json["tie_word_embeddings"] as? Bool) ?? false,
                  qkvBias: arch == .qwen2 || attentionBias, outputBias: attentionBias,
                  mlpBias: (json["mlp_bias"] as? Bool) ?? false, bosTokenID: int("bos_token_id"), eosTokenIDs: eos)
        guard numHeads % numKVHeads == 0 else {
            throw ModelFileError.malformed(file: file, "num_attention_heads \(numHeads) is not a multiple of num_key_value_heads \(numKVHeads)")
        }
    }

    /// RoPE inverse frequencies, in f32 as transformers computes them, with `ropeScaling` applied.
    public func ropeInverseFrequencies() -> [Float] {
        let d = headDim
        var inv = (0..<(d / 2)).map { i in 1 / powf(ropeTheta, Float(2 * i) / Float(d)) }
        switch ropeScaling {
        case nil: break
        case let .linear(factor)?: inv = inv.map { $0 / factor }
        case let .llama3(factor, low, high, orig)?:
            let lowWavelen = Float(orig) / low, highWavelen = Float(orig) / high
            inv = inv.map { f in
                let wavelen = 2 * Float.pi / f
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return f / factor }
                let smooth = (Float(orig) / wavelen - low) / (high - low)
                return (1 - smooth) * f / factor + smooth * f
            }
        }
        return inv
    }
}
