import Foundation
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers

/// A small Llama-shaped model initialised at random, with a byte-level BPE tokenizer trained on
/// given texts, written as a Hugging Face model directory (config.json, model.safetensors,
/// tokenizer.json, tokenizer_config.json). Why: the embedded demo and the worked examples need a
/// model that nothing outside this repository provides; a directory in the ordinary format then
/// goes through `train`, `eval` and `generate` like any downloaded one.
public struct ScratchModel {
    public var vocabSize = 1024
    public var hiddenSize = 128
    public var layers = 4
    public var heads = 4
    public var kvHeads = 2
    public var maxPositions = 256
    public var seed: UInt64 = 1
    /// The end-of-text token (also the eos the model stops at) and the pad token, added after
    /// the learned vocabulary.
    public var eosToken = "<|endoftext|>"
    public var padToken = "<|pad|>"

    public init() {}

    /// Refuses sizes that cannot make a model, naming the option.
    public func validate() throws {
        try OptionCheck.atLeast(vocabSize, 257, "vocab-size")
        for (v, name) in [(hiddenSize, "hidden-size"), (layers, "layers"), (heads, "heads"), (kvHeads, "kv-heads"), (maxPositions, "max-positions")] {
            try OptionCheck.atLeast(v, 1, name)
        }
        guard hiddenSize % heads == 0 else { throw OptionError(option: "hidden-size", message: "must be a multiple of --heads \(heads), not \(hiddenSize)") }
        guard (hiddenSize / heads) % 2 == 0 else { throw OptionError(option: "hidden-size", message: "divided by --heads must be even (RoPE rotates pairs), not \(hiddenSize / heads)") }
        guard heads % kvHeads == 0 else { throw OptionError(option: "heads", message: "must be a multiple of --kv-heads \(kvHeads), not \(heads)") }
    }

    /// Trains the tokenizer on `texts` (the learned vocabulary is 256 bytes plus merges up to
    /// `vocabSize`, fewer when the texts run out of pairs seen twice), builds the model
    /// (intermediate size 11/4 of hidden, tied embeddings) and writes both to `directory`.
    public func write(to directory: URL, texts: [String], on device: Device = .cpu) throws -> (tokenizer: Tokenizer, model: LlamaModel) {
        try validate()
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let tokenizerJSON = try BPETrainer.trainByteLevel(texts: texts, vocabSize: vocabSize, specialTokens: [eosToken, padToken])
        try OutputFiles.writeAtomically(tokenizerJSON, to: directory.appendingPathComponent("tokenizer.json"))
        let tokenizerConfig: [String: Any] = ["eos_token": eosToken, "pad_token": padToken, "bos_token": NSNull(),
                                              "add_bos_token": false, "model_max_length": maxPositions, "tokenizer_class": "PreTrainedTokenizerFast"]
        try OutputFiles.writeAtomically(JSONSerialization.data(withJSONObject: tokenizerConfig, options: [.prettyPrinted, .sortedKeys]),
                                        to: directory.appendingPathComponent("tokenizer_config.json"))
        let tokenizer = try Tokenizer(directory: directory)
        guard let eos = tokenizer.eosTokenID else { throw OptionError(option: "eos-token", message: "the trained tokenizer lacks \(eosToken)") }
        var config = ModelConfig(vocabSize: tokenizer.vocabularySize, hiddenSize: hiddenSize, intermediateSize: hiddenSize * 11 / 4,
                                 numLayers: layers, numHeads: heads, numKVHeads: kvHeads, maxPositions: maxPositions, tieWordEmbeddings: true)
        config.eosTokenIDs = [eos]
        let model = try LlamaModel(config, seed: seed, on: device)
        try model.savePretrained(to: directory)
        return (tokenizer, model)
    }

    /// The texts a tokenizer learns from: each example rendered by `template` (prompt and answer).
    public static func texts(of examples: [Example], template: PromptTemplate) -> [String] {
        examples.map { e in
            template.render(e.conversation).map { if case let .text(s, _) = $0 { return s } else { return "" } }.joined()
        }
    }
}
