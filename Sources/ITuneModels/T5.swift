import Foundation
import ITuneTensor

// T5, T5 v1.1 / FLAN-T5 and mT5 (T5ForConditionalGeneration, MT5ForConditionalGeneration): an
// encoder and a decoder of pre-norm blocks around a shared token embedding.
//   encoder block: x + attn(norm(x)) with a bidirectional relative-position bias, then x + ff(norm(x))
//   decoder block: causal self-attention with a one-directional bias, cross-attention over the
//                  encoder's output (no position bias), then the feed-forward
// The position bias is an embedding of (bucket, head) held by the first block of each stack and
// added to the scores of every block of that stack. T5's norm is RMSNorm without mean or bias; no
// projection has a bias; attention scores are not divided by √d. The feed-forward is ReLU
// (wi, wo) or gated (act(wi_0)·wi_1, wo) as `feed_forward_proj` says. The output projection is
// `lm_head` when the checkpoint has its own, else `shared`; the decoder output is multiplied by
// d_model^-0.5 first when the embeddings are tied (original T5), as transformers does.

extension Architecture {
    public static let t5 = Architecture(rawValue: "t5")
    public static let mt5 = Architecture(rawValue: "mt5")
}

/// The shape of a T5-family model, read from config.json.
public struct T5Config: Sendable, Equatable {
    /// The feed-forward's activation, from `feed_forward_proj` ("relu", "gated-gelu", …).
    public enum Activation: String, Sendable {
        case relu, gelu, geluNew = "gelu_new", silu
    }

    public var architecture: Architecture = .t5
    public var vocabSize: Int
    public var dModel: Int
    public var dKV: Int
    public var dFF: Int
    public var numLayers: Int
    public var numDecoderLayers: Int
    public var numHeads: Int
    public var numBuckets: Int
    public var maxDistance: Int
    public var normEps: Float
    public var activation: Activation
    public var gated: Bool
    /// Multiply the decoder output by d_model^-0.5 before the output projection (original T5,
    /// whose output projection is the shared embedding).
    public var scaleDecoderOutputs: Bool
    public var tieWordEmbeddings: Bool
    public var decoderStartTokenID: Int
    public var padTokenID: Int
    public var eosTokenIDs: [Int]

    public init(architecture: Architecture = .t5, vocabSize: Int, dModel: Int, dKV: Int, dFF: Int, numLayers: Int,
                numDecoderLayers: Int? = nil, numHeads: Int, numBuckets: Int = 32, maxDistance: Int = 128,
                normEps: Float = 1e-6, activation: Activation = .relu, gated: Bool = false,
                tieWordEmbeddings: Bool = true, decoderStartTokenID: Int = 0, padTokenID: Int = 0, eosTokenIDs: [Int] = [1]) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.dModel = dModel
        self.dKV = dKV
        self.dFF = dFF
        self.numLayers = numLayers
        self.numDecoderLayers = numDecoderLayers ?? numLayers
        self.numHeads = numHeads
        self.numBuckets = numBuckets
        self.maxDistance = maxDistance
        self.normEps = normEps
        self.activation = activation
        self.gated = gated
        self.scaleDecoderOutputs = tieWordEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.decoderStartTokenID = decoderStartTokenID
        self.padTokenID = padTokenID
        self.eosTokenIDs = eosTokenIDs
    }

    /// Reads a T5 / mT5 config.json; fields whose maths is not implemented are refused by name.
    public init(json: [String: Any], file: String = "config.json") throws {
        let f = ConfigFields(json, file: file)
        let classes = (json["architectures"] as? [String]) ?? []
        let modelType = try f.string("model_type")
        if classes.contains("MT5ForConditionalGeneration") || modelType == "mt5" {
            architecture = .mt5
        } else if classes.contains("T5ForConditionalGeneration") || modelType == "t5" {
            architecture = .t5
        } else {
            throw ModelFileError.unsupportedArchitecture(file: file, found: classes.first ?? modelType ?? "(none given)",
                                                         supported: ["T5ForConditionalGeneration", "MT5ForConditionalGeneration"])
        }
        vocabSize = try f.size("vocab_size")
        dModel = try f.size("d_model")
        numHeads = try f.size("num_heads")
        dKV = try f.size("d_kv")
        dFF = try f.size("d_ff")
        numLayers = try f.size("num_layers")
        numDecoderLayers = try f.optionalSize("num_decoder_layers") ?? numLayers
        numBuckets = try f.optionalSize("relative_attention_num_buckets") ?? 32
        maxDistance = try f.optionalSize("relative_attention_max_distance") ?? 128
        normEps = try f.positiveFloat("layer_norm_epsilon", default: 1e-6, allowZero: true)
        let proj = try f.string("feed_forward_proj") ?? (architecture == .mt5 ? "gated-gelu" : "relu")
        let parts = proj.split(separator: "-").map(String.init)
        guard (parts.count == 1 || (parts.count == 2 && parts[0] == "gated")), let last = parts.last else {
            throw f.refuse("feed_forward_proj", "is '\(proj)' (expected ACT or gated-ACT)")
        }
        gated = parts.count == 2
        // transformers maps gated-gelu to the tanh GELU ("gelu_new") for the original checkpoints.
        let name = proj == "gated-gelu" ? "gelu_new" : last
        guard let act = Activation(rawValue: name) else {
            throw f.refuse("feed_forward_proj", "is '\(proj)' (activations implemented: relu, gelu, gelu_new, silu)")
        }
        activation = act
        tieWordEmbeddings = try f.bool("tie_word_embeddings") ?? true
        // Newer transformers writes the rescaling under its own name; older configs say it with
        // tie_word_embeddings (false in v1.1, FLAN-T5 and mT5, which do not rescale).
        scaleDecoderOutputs = try f.bool("scale_decoder_outputs") ?? tieWordEmbeddings
        padTokenID = try f.int("pad_token_id") ?? 0
        decoderStartTokenID = try f.int("decoder_start_token_id") ?? padTokenID
        eosTokenIDs = try f.eosTokenIDs()
        for (key, v) in [("pad_token_id", padTokenID), ("decoder_start_token_id", decoderStartTokenID)]
            where v < 0 || v >= vocabSize {
            throw ModelFileError.malformed(file: file, "\(key) \(v) is not a token id of vocab_size \(vocabSize)")
        }
        if try f.bool("is_decoder") == true { throw f.refuse("is_decoder", "is true (a decoder-only T5 is not implemented)") }
        for (names, a, b) in [("num_heads × d_kv", numHeads, dKV), ("vocab_size × d_model", vocabSize, dModel),
                              ("d_ff × d_model", dFF, dModel)] {
            guard !a.multipliedReportingOverflow(by: b).overflow else {
                throw ModelFileError.malformed(file: file, "\(names) overflows: \(a) × \(b)")
            }
        }
    }

    /// Reads `config.json` at `url`.
    public init(configJSON url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ModelFileError.unreadable(file: url.path, "no such file")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelFileError.malformed(file: url.path, "not a JSON object")
        }
        try self.init(json: json, file: url.path)
    }

    /// Whether config.json at `url` describes a T5-family model (an encoder-decoder family of
    /// the registry). Why: loaders pick the model type.
    public static func describes(configJSON url: URL) -> Bool {
        T5Model.holdsModel(url.deletingLastPathComponent())
    }
}

/// T5's relative-position buckets of (query t, key j) for t in offset ..< offset + Tq, j in
/// 0 ..< Tk, row-major (Tq, Tk): half the buckets count exact distances, the rest grow
/// logarithmically up to `maxDistance`; bidirectional splits the buckets by the sign.
public func t5RelativePositionBuckets(queries Tq: Int, keys Tk: Int, queryOffset: Int = 0, bidirectional: Bool,
                                      numBuckets: Int, maxDistance: Int) -> [Int32] {
    var out = [Int32](repeating: 0, count: Tq * Tk)
    let half = bidirectional ? numBuckets / 2 : numBuckets
    let maxExact = max(half / 2, 1)
    // In f32, as transformers computes it, so that the truncation lands on the same bucket.
    let logRange = Float(log(Double(maxDistance) / Double(maxExact)))
    for t in 0..<Tq {
        for j in 0..<Tk {
            var relative = j - (t + queryOffset)
            var bucket = 0
            if bidirectional {
                if relative > 0 { bucket += half }
                relative = abs(relative)
            } else {
                relative = -min(relative, 0)
            }
            if relative < maxExact {
                bucket += relative
            } else {
                let scaled = logf(Float(relative) / Float(maxExact)) / logRange * Float(half - maxExact)
                bucket += min(maxExact + Int(scaled), half - 1)
            }
            out[t * Tk + j] = Int32(bucket)
        }
    }
    return out
}

/// One T5 attention: q, k, v, o without biases; the first self-attention of a stack also holds
/// the relative-position bias (num_buckets, NH).
public final class T5Attention: Module {
    public let q, k, v, o: Linear
    public let relativeBias: Embedding?
    let heads, headDim: Int

    init(_ prefix: String, _ c: T5Config, hasRelativeBias: Bool, from source: WeightSource) throws {
        let inner = c.numHeads * c.dKV
        q = try Linear(prefix + ".q", inFeatures: c.dModel, outFeatures: inner, bias: false, from: source)
        k = try Linear(prefix + ".k", inFeatures: c.dModel, outFeatures: inner, bias: false, from: source)
        v = try Linear(prefix + ".v", inFeatures: c.dModel, outFeatures: inner, bias: false, from: source)
        o = try Linear(prefix + ".o", inFeatures: inner, outFeatures: c.dModel, bias: false, from: source)
        relativeBias = hasRelativeBias
            ? try Embedding(prefix + ".relative_attention_bias", count: c.numBuckets, dim: c.numHeads, from: source) : nil
        (heads, headDim) = (c.numHeads, c.dKV)
    }

    /// x is (B,Tq,C), memory (B,Tk,C) (x itself for self-attention); bias as
    /// `scaledDotProductAttention` takes it. Returns (B,Tq,C).
    func callAsFunction(_ x: Tensor, memory: Tensor? = nil, bias: Tensor?, causal: Bool) throws -> Tensor {
        let (B, Tq) = (x.shape[0], x.shape[1])
        let m = memory ?? x
        let Tk = m.shape[1]
        let qh = try q(x).reshaped([B, Tq, heads, headDim])
        let kh = try k(m).reshaped([B, Tk, heads, headDim])
        let vh = try v(m).reshaped([B, Tk, heads, headDim])
        let y = try Tensor.scaledDotProductAttention(q: qh, k: kh, v: vh, causal: causal, scale: 1, bias: bias)
        return try o(y.reshaped([B, Tq, heads * headDim]))
    }

    public func namedParameters() -> [(String, Tensor)] {
        q.namedParameters() + k.namedParameters() + v.namedParameters() + o.namedParameters()
            + (relativeBias?.namedParameters() ?? [])
    }
}

/// T5's feed-forward (`DenseReluDense`): wo(act(wi(x))) or wo(act(wi_0(x))·wi_1(x)).
public final class T5FeedForward: Module {
    public let wi: Linear?
    public let wi0, wi1: Linear?
    public let wo: Linear
    let activation: T5Config.Activation

    init(_ prefix: String, _ c: T5Config, from source: WeightSource) throws {
        if c.gated {
            wi = nil
            wi0 = try Linear(prefix + ".wi_0", inFeatures: c.dModel, outFeatures: c.dFF, bias: false, from: source)
            wi1 = try Linear(prefix + ".wi_1", inFeatures: c.dModel, outFeatures: c.dFF, bias: false, from: source)
        } else {
            wi = try Linear(prefix + ".wi", inFeatures: c.dModel, outFeatures: c.dFF, bias: false, from: source)
            (wi0, wi1) = (nil, nil)
        }
        wo = try Linear(prefix + ".wo", inFeatures: c.dFF, outFeatures: c.dModel, bias: false, from: source)
        activation = c.activation
    }

    func act(_ x: Tensor) throws -> Tensor {
        switch activation {
        case .relu: return try x.relu()
        case .gelu: return try x.geluExact()
        case .geluNew: return try x.gelu()
        case .silu: return try x.silu()
        }
    }

    /// x is (…, C); returns (…, C).
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        if let wi0, let wi1 { return try wo(act(wi0(x)) * wi1(x)) }
        guard let wi else { fatalError("a T5 feed-forward has wi or wi_0 and wi_1") }
        return try wo(act(wi(x)))
    }

    public var projections: [any LoRATarget] { [wi, wi0, wi1].compactMap { $0 } + [wo] }

    public func namedParameters() -> [(String, Tensor)] {
        [wi, wi0, wi1].compactMap { $0 }.flatMap { $0.namedParameters() } + wo.namedParameters()
    }
}

/// One block of either stack: `layer.0` self-attention, in the decoder `layer.1` cross-attention,
/// and the feed-forward last; each sub-layer is x + f(norm(x)).
public final class T5Block: Module {
    public let selfNorm: RMSNorm
    public let selfAttention: T5Attention
    public let crossNorm: RMSNorm?
    public let crossAttention: T5Attention?
    public let ffNorm: RMSNorm
    public let feedForward: T5FeedForward

    init(_ prefix: String, _ c: T5Config, decoder: Bool, first: Bool, from source: WeightSource) throws {
        selfNorm = try RMSNorm(prefix + ".layer.0.layer_norm", dim: c.dModel, eps: c.normEps, from: source)
        selfAttention = try T5Attention(prefix + ".layer.0.SelfAttention", c, hasRelativeBias: first, from: source)
        if decoder {
            crossNorm = try RMSNorm(prefix + ".layer.1.layer_norm", dim: c.dModel, eps: c.normEps, from: source)
            crossAttention = try T5Attention(prefix + ".layer.1.EncDecAttention", c, hasRelativeBias: false, from: source)
        } else {
            (crossNorm, crossAttention) = (nil, nil)
        }
        let ff = prefix + ".layer.\(decoder ? 2 : 1)"
        ffNorm = try RMSNorm(ff + ".layer_norm", dim: c.dModel, eps: c.normEps, from: source)
        feedForward = try T5FeedForward(ff + ".DenseReluDense", c, from: source)
    }

    /// x is (B,T,C); `memory` the encoder output (B,Te,C) in the decoder. Returns (B,T,C).
    func callAsFunction(_ x: Tensor, selfBias: Tensor?, causal: Bool, memory: Tensor? = nil,
                        memoryBias: Tensor? = nil) throws -> Tensor {
        var h = try x + selfAttention(selfNorm(x), bias: selfBias, causal: causal)
        if let crossAttention, let crossNorm, let memory {
            h = try h + crossAttention(crossNorm(h), memory: memory, bias: memoryBias, causal: false)
        }
        return try h + feedForward(ffNorm(h))
    }

    public var projections: [any LoRATarget] {
        [selfAttention.q, selfAttention.k, selfAttention.v, selfAttention.o]
            + (crossAttention.map { [$0.q, $0.k, $0.v, $0.o] } ?? []) + feedForward.projections
    }

    public func namedParameters() -> [(String, Tensor)] {
        var out = selfNorm.namedParameters() + selfAttention.namedParameters()
        if let crossNorm, let crossAttention { out += crossNorm.namedParameters() + crossAttention.namedParameters() }
        return out + ffNorm.namedParameters() + feedForward.namedParameters()
    }
}

/// A T5-family encoder-decoder language model (T5ForConditionalGeneration / MT5…).
public final class T5Model: LoRAHost {
    public let config: T5Config
    public let device: Device
    public let shared: Embedding
    public let encoderBlocks: [T5Block]
    public let encoderNorm: RMSNorm
    public let decoderBlocks: [T5Block]
    public let decoderNorm: RMSNorm
    /// nil when the output projection is `shared`.
    public let lmHead: Linear?

    /// Builds the model from `source`; `separateHead` reads `lm_head.weight` instead of using `shared`.
    public init(_ c: T5Config, on device: Device, separateHead: Bool, from source: WeightSource) throws {
        config = c
        self.device = device
        shared = try Embedding("shared", count: c.vocabSize, dim: c.dModel, from: source)
        encoderBlocks = try (0..<c.numLayers).map {
            try T5Block("encoder.block.\($0)", c, decoder: false, first: $0 == 0, from: source)
        }
        encoderNorm = try RMSNorm("encoder.final_layer_norm", dim: c.dModel, eps: c.normEps, from: source)
        decoderBlocks = try (0..<c.numDecoderLayers).map {
            try T5Block("decoder.block.\($0)", c, decoder: true, first: $0 == 0, from: source)
        }
        decoderNorm = try RMSNorm("decoder.final_layer_norm", dim: c.dModel, eps: c.normEps, from: source)
        lmHead = separateHead ? try Linear("lm_head", inFeatures: c.dModel, outFeatures: c.vocabSize, bias: false, from: source) : nil
    }

    /// A randomly initialised model (normal(0, 0.02), unit norms), seeded per parameter name.
    public convenience init(_ c: T5Config, seed: UInt64 = 0, on device: Device) throws {
        try self.init(c, on: device, separateHead: !c.tieWordEmbeddings, from: randomWeights(seed: seed, on: device))
    }

    /// Loads a Hugging Face T5 / mT5 directory (config.json + safetensors). The output projection
    /// is the checkpoint's `lm_head.weight` when it has one and the config does not tie it.
    public static func load(directory: URL, on device: Device) throws -> T5Model {
        let config = try T5Config(configJSON: directory.appendingPathComponent("config.json"))
        let checkpoint = try Checkpoint(directory: directory)
        let separate = !config.tieWordEmbeddings && checkpoint.contains("lm_head.weight")
        return try T5Model(config, on: device, separateHead: separate) { name, shape, _ in
            try checkpoint.tensor(name, on: device, shape: shape)
        }
    }

    /// (V, C): what projects the decoder's states to logits.
    public var outputEmbedding: Tensor { lmHead?.weight ?? shared.weight }

    /// The first block's position bias for Tq queries (from `queryOffset`) over Tk keys: (Tq,Tk,NH).
    func positionBias(_ block: T5Block, queries Tq: Int, keys Tk: Int, queryOffset: Int = 0, bidirectional: Bool) throws -> Tensor {
        guard let table = block.selfAttention.relativeBias else { fatalError("the first T5 block holds the position bias") }
        let buckets = t5RelativePositionBuckets(queries: Tq, keys: Tk, queryOffset: queryOffset, bidirectional: bidirectional,
                                                numBuckets: config.numBuckets, maxDistance: config.maxDistance)
        return try table.weight.embedding(Tensor(indices: buckets, shape: [Tq, Tk], on: device))
    }

    /// What a masked key adds to a score: far below any score, finite so no row becomes NaN.
    static let maskedScore: Float = -1e9

    /// The (B,1,Tk,1) bias of padded keys (mask 0), or nil when nothing is padded.
    func keyMask(_ mask: [Int32]?, batch B: Int, keys Tk: Int) throws -> Tensor? {
        guard let mask, mask.contains(where: { $0 == 0 }) else { return nil }
        return try Tensor(mask.map { $0 == 0 ? Self.maskedScore : 0 }, shape: [B, 1, Tk, 1], on: device)
    }

    /// The encoder's output (B,Te,C). ids i32 (B,Te); mask (B·Te) 1 = token, 0 = padding, nil = none.
    public func encode(_ ids: Tensor, mask: [Int32]? = nil) throws -> Tensor {
        let (B, T) = (ids.shape[0], ids.shape[1])
        try checkMask(mask, B, T)
        guard let first = encoderBlocks.first else { return try encoderNorm(shared(ids)) }
        let position = try positionBias(first, queries: T, keys: T, bidirectional: true)
        let bias: Tensor
        if let mask, mask.contains(where: { $0 == 0 }) {
            // Padding and positions in one (B,T,T,NH) bias: the mask over the keys of every query and head.
            let H = config.numHeads
            var values = [Float](repeating: 0, count: B * T * T * H)
            for b in 0..<B { for j in 0..<T where mask[b * T + j] == 0 {
                for t in 0..<T { for h in 0..<H { values[((b * T + t) * T + j) * H + h] = Self.maskedScore } }
            } }
            bias = try Tensor(values, shape: [B, T, T, H], on: device) + position
        } else {
            bias = try position.reshaped([1, T, T, config.numHeads])
        }
        var h = try shared(ids)
        for block in encoderBlocks { h = try block(h, selfBias: bias, causal: false) }
        return try encoderNorm(h)
    }

    /// The decoder's final states (B,Td,C), rescaled for the output projection when the config
    /// says so. decoderIDs i32 (B,Td); memory the encoder output; mask the encoder's.
    public func decode(_ decoderIDs: Tensor, memory: Tensor, mask: [Int32]? = nil) throws -> Tensor {
        let (B, T) = (decoderIDs.shape[0], decoderIDs.shape[1])
        let Te = memory.shape[1]
        try checkMask(mask, B, Te)
        let memoryBias = try keyMask(mask, batch: B, keys: Te)
        var h = try shared(decoderIDs)
        if let first = decoderBlocks.first {
            let bias = try positionBias(first, queries: T, keys: T, bidirectional: false).reshaped([1, T, T, config.numHeads])
            for block in decoderBlocks { h = try block(h, selfBias: bias, causal: true, memory: memory, memoryBias: memoryBias) }
        }
        let out = try decoderNorm(h)
        return config.scaleDecoderOutputs ? try out.scaled(by: 1 / Float(config.dModel).squareRoot()) : out
    }

    private func checkMask(_ mask: [Int32]?, _ B: Int, _ T: Int) throws {
        if let mask, mask.count != B * T {
            throw TensorError.shapeMismatch(op: "T5 attention mask", "\(mask.count) entries for (\(B), \(T)) input ids")
        }
    }

    /// Logits (B,Td,V) of the decoder inputs given the encoder inputs (teacher forcing).
    public func logits(inputIDs: Tensor, mask: [Int32]? = nil, decoderInputIDs: Tensor) throws -> Tensor {
        let (B, T) = (decoderInputIDs.shape[0], decoderInputIDs.shape[1])
        let h = try decode(decoderInputIDs, memory: encode(inputIDs, mask: mask), mask: mask)
        return try h.reshaped([B * T, config.dModel]).linear(outputEmbedding).reshaped([B, T, config.vocabSize])
    }

    /// transformers' `_shift_right`: the decoder inputs for `labels` (B·Td, −100 = no loss):
    /// decoder_start_token_id, then the labels but the last, −100 read as the pad id.
    public func decoderInputs(forLabels labels: [Int32], batch B: Int) -> [Int32] {
        let T = B > 0 ? labels.count / B : 0
        var out = [Int32](repeating: Int32(config.padTokenID), count: labels.count)
        guard T > 0 else { return out }
        for b in 0..<B {
            out[b * T] = Int32(config.decoderStartTokenID)
            for t in 1..<T {
                let l = labels[b * T + t - 1]
                out[b * T + t] = l == -100 ? Int32(config.padTokenID) : l
            }
        }
        return out
    }

    /// Mean cross-entropy over the labelled decoder positions, as T5ForConditionalGeneration's
    /// loss: inputIDs i32 (B,Te) with its mask, labels (B·Td) with −100 where no loss is taken.
    public func loss(inputIDs: Tensor, mask: [Int32]? = nil, labels: [Int32], decoderLength T: Int) throws -> Tensor {
        let B = inputIDs.shape[0]
        guard labels.count == B * T else {
            throw TensorError.shapeMismatch(op: "T5 loss", "\(labels.count) labels for (\(B), \(T))")
        }
        let decoderIDs = try Tensor(indices: decoderInputs(forLabels: labels, batch: B), shape: [B, T], on: device)
        let h = try decode(decoderIDs, memory: encode(inputIDs, mask: mask), mask: mask)
        return try h.reshaped([B * T, config.dModel])
            .linearCrossEntropy(weight: outputEmbedding, targets: Tensor(indices: labels, shape: [B * T], on: device))
    }

    /// Every projection of both stacks in module order, with PEFT's T5 names (q, k, v, o, wi,
    /// wi_0, wi_1, wo): what LoRA can adapt.
    public func projections() -> [any LoRATarget] {
        (encoderBlocks + decoderBlocks).flatMap(\.projections)
    }

    /// PEFT's task type of a T5 adapter.
    public var peftTaskType: String { "SEQ_2_SEQ_LM" }

    /// PEFT `target_modules` when the user names none: attention and feed-forward of both stacks.
    public static let defaultLoRATargets = ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"]

    public func namedParameters() -> [(String, Tensor)] {
        var out = shared.namedParameters()
        for b in encoderBlocks { out += b.namedParameters() }
        out += encoderNorm.namedParameters()
        for b in decoderBlocks { out += b.namedParameters() }
        out += decoderNorm.namedParameters()
        if let lmHead { out += lmHead.namedParameters() }
        return out
    }
}
