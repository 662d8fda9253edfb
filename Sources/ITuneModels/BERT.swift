import Foundation
import ITuneTensor

// BERT-family encoders (BertModel: all-MiniLM, bge, e5 …) for sentence embeddings, as
// sentence-transformers computes them: token embeddings, post-norm layers with exact GELU, then
// mean pooling over the tokens and L2 normalisation. Used to compare tasks by their instructions.

/// config.json of a BertModel.
public struct BertConfig: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float

    public init(vocabSize: Int, hiddenSize: Int, numLayers: Int, numHeads: Int, intermediateSize: Int,
                maxPositions: Int = 512, typeVocabSize: Int = 2, layerNormEps: Float = 1e-12) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
    }

    public init(configJSON url: URL) throws {
        let file = url.path
        let obj: Any
        do { obj = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) } catch {
            throw ModelFileError.unreadable(file: file, error.localizedDescription)
        }
        guard let j = obj as? [String: Any] else { throw ModelFileError.malformed(file: file, "not a JSON object") }
        let type = (j["model_type"] as? String) ?? ""
        let bertClass = (j["architectures"] as? [String])?.contains { $0.hasPrefix("Bert") } ?? false
        guard type == "bert" || bertClass else {
            throw ModelFileError.unsupportedArchitecture(file: file, found: type.isEmpty ? "(no model_type)" : type,
                                                         supported: ["bert (BertModel, e.g. all-MiniLM-L6-v2)"])
        }
        func need(_ k: String) throws -> Int {
            guard let v = (j[k] as? NSNumber)?.intValue else { throw ModelFileError.missingField(file: file, field: k) }
            return v
        }
        if let act = j["hidden_act"] as? String, act != "gelu" {
            throw ModelFileError.malformed(file: file, "hidden_act \(act) is not supported (gelu)")
        }
        self.init(vocabSize: try need("vocab_size"), hiddenSize: try need("hidden_size"), numLayers: try need("num_hidden_layers"),
                  numHeads: try need("num_attention_heads"), intermediateSize: try need("intermediate_size"),
                  maxPositions: (j["max_position_embeddings"] as? NSNumber)?.intValue ?? 512,
                  typeVocabSize: (j["type_vocab_size"] as? NSNumber)?.intValue ?? 2,
                  layerNormEps: (j["layer_norm_eps"] as? NSNumber)?.floatValue ?? 1e-12)
    }
}

/// One post-norm encoder layer: h = LN(x + attn(x)); LN(h + W₂·gelu(W₁·h)).
public final class BertLayer: Module {
    public let query, key, value, attentionOut, intermediate, output: Linear
    public let attentionNorm, outputNorm: LayerNorm
    let heads: Int

    init(_ p: String, _ c: BertConfig, from source: WeightSource) throws {
        let H = c.hiddenSize
        query = try Linear(p + ".attention.self.query", inFeatures: H, outFeatures: H, bias: true, from: source)
        key = try Linear(p + ".attention.self.key", inFeatures: H, outFeatures: H, bias: true, from: source)
        value = try Linear(p + ".attention.self.value", inFeatures: H, outFeatures: H, bias: true, from: source)
        attentionOut = try Linear(p + ".attention.output.dense", inFeatures: H, outFeatures: H, bias: true, from: source)
        attentionNorm = try LayerNorm(p + ".attention.output.LayerNorm", dim: H, eps: c.layerNormEps, from: source)
        intermediate = try Linear(p + ".intermediate.dense", inFeatures: H, outFeatures: c.intermediateSize, bias: true, from: source)
        output = try Linear(p + ".output.dense", inFeatures: c.intermediateSize, outFeatures: H, bias: true, from: source)
        outputNorm = try LayerNorm(p + ".output.LayerNorm", dim: H, eps: c.layerNormEps, from: source)
        heads = c.numHeads
    }

    /// x is (B,T,H); every token sees every other (no padding inside a batch row).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (B, T, H) = (x.shape[0], x.shape[1], x.shape[2])
        let split = { (t: Tensor) in try t.reshaped([B, T, self.heads, H / self.heads]) }
        let a = try Tensor.scaledDotProductAttention(q: split(query(x)), k: split(key(x)), v: split(value(x)), causal: false)
        let h = try attentionNorm(x + attentionOut(a.reshaped([B, T, H])))
        return try outputNorm(h + output(intermediate(h).geluExact()))
    }

    public func namedParameters() -> [(String, Tensor)] {
        [query, key, value, attentionOut].flatMap { $0.namedParameters() } + attentionNorm.namedParameters()
            + intermediate.namedParameters() + output.namedParameters() + outputNorm.namedParameters()
    }
}

/// BertModel without the pooler: token states (B,T,H).
public final class BertModel: Module {
    public let config: BertConfig
    public let device: Device
    public let words, positions, tokenTypes: Embedding
    public let embeddingNorm: LayerNorm
    public let layers: [BertLayer]

    public init(_ c: BertConfig, on device: Device, from source: WeightSource) throws {
        config = c
        self.device = device
        words = try Embedding("embeddings.word_embeddings", count: c.vocabSize, dim: c.hiddenSize, from: source)
        positions = try Embedding("embeddings.position_embeddings", count: c.maxPositions, dim: c.hiddenSize, from: source)
        tokenTypes = try Embedding("embeddings.token_type_embeddings", count: c.typeVocabSize, dim: c.hiddenSize, from: source)
        embeddingNorm = try LayerNorm("embeddings.LayerNorm", dim: c.hiddenSize, eps: c.layerNormEps, from: source)
        layers = try (0..<c.numLayers).map { try BertLayer("encoder.layer.\($0)", c, from: source) }
    }

    /// ids is i32 (B,T), every row the same length; returns the last layer's states (B,T,H).
    public func callAsFunction(_ ids: Tensor) throws -> Tensor {
        let T = ids.shape[1]
        guard T <= config.maxPositions else {
            throw TensorError.invalidArgument(op: "BertModel", "\(T) tokens exceed max_position_embeddings \(config.maxPositions)")
        }
        let pos = try Tensor(indices: (0..<Int32(T)).map { $0 }, shape: [T], on: device)
        let types = try Tensor(indices: [Int32](repeating: 0, count: T), shape: [T], on: device)
        var h = try embeddingNorm(words(ids) + positions(pos) + tokenTypes(types))
        for l in layers { h = try l(h) }
        return h
    }

    public func namedParameters() -> [(String, Tensor)] {
        words.namedParameters() + positions.namedParameters() + tokenTypes.namedParameters() + embeddingNorm.namedParameters()
            + layers.flatMap { $0.namedParameters() }
    }

    /// Loads a BertModel directory (config.json + safetensors); tensor names with or without the
    /// `bert.` prefix of task models.
    public static func load(_ directory: URL, on device: Device) throws -> BertModel {
        let config = try BertConfig(configJSON: directory.appendingPathComponent("config.json"))
        let checkpoint = try Checkpoint(directory: directory)
        return try BertModel(config, on: device) { name, shape, _ in
            let candidates = [name, "bert." + name]
            guard let found = candidates.first(where: { checkpoint.contains($0) }) else {
                throw ModelFileError.missingTensor(name: name, file: directory.path)
            }
            return try checkpoint.tensor(found, on: device, shape: shape)
        }
    }
}

extension Tensor {
    /// Mean over dim 1 of (B,T,H) → (B,H), as sentence-transformers' mean pooling with a full
    /// attention mask.
    public func meanOverTokens() throws -> Tensor {
        guard rank == 3 else { throw TensorError.shapeMismatch(op: "meanOverTokens", "needs (B,T,H), got \(shape)") }
        let (B, T, H) = (shape[0], shape[1], shape[2])
        // (B,T,H) as B batched (1,T)·(T,H) products with a row of 1/T.
        let w = try Tensor.full([B, 1, T], 1 / Float(T), on: device)
        return try w.matmul(self).reshaped([B, H])
    }
}
