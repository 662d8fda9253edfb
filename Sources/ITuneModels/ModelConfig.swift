import Foundation
import ITuneTensor

/// The name of a model family: config.json's `model_type` ("llama", "phi3", …). What a family
/// is (how its config reads, how it is built, its LoRA targets) is its `ModelFamily` entry.
public struct Architecture: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// The registered family of this name, nil when none is.
    public var family: ModelFamily? { ModelFamily.named(self) }
}

/// How rotary frequencies are rescaled for long contexts (`rope_scaling`).
public enum RoPEScaling: Sendable, Equatable {
    case linear(factor: Float)
    case llama3(factor: Float, lowFreqFactor: Float, highFreqFactor: Float, originalMaxPositions: Int)
}

/// The shape of a decoder-only model, read from config.json (through its family's
/// `ModelFamily.decode`) or built in code.
///
/// Llama 2/3, TinyLlama, SmolLM/SmolLM2 and Mistral share one layout; Qwen2 adds q/k/v
/// biases; Phi-3 fuses q/k/v and gate/up; GPT-2 has learned positions, LayerNorm, a GELU MLP
/// and Conv1D weights. Fields a family does not use keep their defaults.
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
    /// Attention sees at most this many keys back (Mistral, Phi-3, Qwen2 with
    /// `use_sliding_window`). Sequences up to the window compute exactly as full attention;
    /// longer ones are refused (see `checkSequenceLength`), since no kernel here masks by window.
    public var slidingWindow: Int?
    /// Layers before this index attend to everything (Qwen2's `max_window_layers`); the window
    /// applies from here on. Kept so that a saved config reproduces the original.
    public var firstSlidingWindowLayer: Int = 0

    public init(architecture: Architecture = .llama, vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
                numLayers: Int, numHeads: Int, numKVHeads: Int? = nil, headDim: Int? = nil, normEps: Float = 1e-5,
                ropeTheta: Float = 10000, ropeScaling: RoPEScaling? = nil, maxPositions: Int = 2048,
                tieWordEmbeddings: Bool = false, qkvBias: Bool = false, outputBias: Bool = false, mlpBias: Bool = false,
                bosTokenID: Int? = nil, eosTokenIDs: [Int] = [], slidingWindow: Int? = nil) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads ?? numHeads
        self.headDim = headDim ?? (numHeads > 0 ? hiddenSize / numHeads : 0)
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
        self.slidingWindow = slidingWindow
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

    /// Reads config.json's fields through the family its `architectures` (or `model_type`)
    /// names. Unknown families list the supported ones; missing, malformed or out-of-range
    /// fields and maths this code does not implement are errors naming the file and the field.
    public init(json: [String: Any], file: String = "config.json") throws {
        let fields = ConfigFields(json, file: file)
        let family = try ModelFamily.of(configJSON: json, file: file)
        guard family.kind == .decoder else {
            throw ModelFileError.encoderDecoder(file: file, found: family.classNames[0])
        }
        try fields.refuseUnimplementedMaths()
        self = try family.decode(fields)
        try validate(file: file)
    }

    /// Checks every size for what the model code needs: positive, heads dividing as attention
    /// requires, products that fit. Errors name the field as transformers spells it.
    public func validate(file: String = "config") throws {
        func fail(_ why: String) -> ModelFileError { .malformed(file: file, why) }
        for (name, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                          ("num_hidden_layers", numLayers), ("num_attention_heads", numHeads),
                          ("num_key_value_heads", numKVHeads), ("head_dim", headDim),
                          ("max_position_embeddings", maxPositions)] where v <= 0 || v > Int(Int32.max) {
            throw fail("\(name) must be a positive integer no larger than \(Int32.max), got \(v)")
        }
        guard numHeads % numKVHeads == 0 else {
            throw fail("num_attention_heads \(numHeads) is not a multiple of num_key_value_heads \(numKVHeads)")
        }
        if let w = slidingWindow, w <= 0 { throw fail("sliding_window must be positive, got \(w)") }
        for (names, a, b) in [("num_attention_heads × head_dim", numHeads, headDim), ("vocab_size × hidden_size", vocabSize, hiddenSize),
                              ("intermediate_size × hidden_size", intermediateSize, hiddenSize),
                              ("max_position_embeddings × head_dim", maxPositions, headDim)] {
            guard !a.multipliedReportingOverflow(by: b).overflow else { throw fail("\(names) overflows: \(a) × \(b)") }
        }
    }

    /// The most positions one sequence (cache included) may span: max_position_embeddings,
    /// or the sliding window when it is smaller.
    public var maxSequenceLength: Int { min(maxPositions, slidingWindow ?? Int.max) }

    /// Throws, naming the field that limits it, when `start` cached positions plus `count` new
    /// ones exceed what this model computes correctly.
    public func checkSequenceLength(start: Int, count: Int) throws {
        let (end, overflow) = start.addingReportingOverflow(count)
        if let w = slidingWindow, overflow || end > w {
            throw TensorError.invalidArgument(op: architecture.rawValue, "\(start) cached + \(count) new positions exceed sliding_window \(w); attention beyond the window is not implemented")
        }
        guard !overflow, end <= maxPositions else {
            throw TensorError.invalidArgument(op: architecture.rawValue, "\(start) cached + \(count) new positions exceed max_position_embeddings \(maxPositions)")
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
