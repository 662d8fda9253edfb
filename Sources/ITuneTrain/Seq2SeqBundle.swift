import Foundation
import ITuneModels
import ITuneTensor
import ITuneTokenizers

/// A T5-family model directory loaded for use: the encoder-decoder on a device and its tokenizer.
/// Why: `itune-gpu generate` on FLAN-T5 / mT5 checkpoints, where the prompt is the encoder's input.
public struct Seq2SeqBundle {
    public let directory: URL
    public let model: T5Model
    public let tokenizer: Tokenizer

    public init(directory: URL, on device: Device) throws {
        self.directory = directory
        model = try T5Model.load(directory: directory, on: device)
        tokenizer = try Tokenizer(directory: directory)
    }

    /// A model and tokenizer already loaded (a run that has just trained them).
    public init(directory: URL, model: T5Model, tokenizer: Tokenizer) {
        self.directory = directory
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Whether `directory` holds a T5-family model (config.json says so).
    public static func holdsModel(_ directory: URL) -> Bool {
        T5Model.holdsModel(directory)
    }

    /// The greedy answer to `prompt` (the encoder reads it with the tokenizer's </s>), up to
    /// `maxNewTokens` tokens or the end-of-sequence token, special tokens dropped from the text.
    public func generate(prompt: String, maxNewTokens: Int) throws -> (text: String, tokens: [Int32]) {
        try generate(inputIDs: tokenizer.encode(prompt).map(Int32.init), maxNewTokens: maxNewTokens)
    }

    /// The greedy answer to the encoder input `ids` (already tokenized, </s> included).
    public func generate(inputIDs ids: [Int32], maxNewTokens: Int) throws -> (text: String, tokens: [Int32]) {
        let tokens = try model.generateGreedy(Tensor(indices: ids, shape: [1, ids.count], on: model.device),
                                              maxNewTokens: maxNewTokens)
        return (tokenizer.decode(tokens.map(Int.init), skipSpecialTokens: true), tokens)
    }
}
