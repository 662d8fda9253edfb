import ArgumentParser
import Foundation
import ITune

struct InitModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init-model",
        abstract: "Write a small Llama-shaped model, initialised at random, with a byte-level BPE tokenizer trained on the data (a Hugging Face model directory).",
        discussion: "For experiments where no pretrained model is at hand: the directory trains, evaluates and generates like a downloaded one. The tokenizer learns from the records rendered by --template.")

    @Option(help: "Data the tokenizer learns from: .json/.jsonl files or directories (repeatable).") var data: [String]
    @Option(help: "Template the records are rendered by for the tokenizer (a name; default alpaca).") var template = "alpaca"
    @Option(help: "Learn from the first N records only (all by default).") var tokenizerRecords: Int?
    @Option(help: "Vocabulary size: 256 bytes plus merges (two special tokens come after it).") var vocabSize = 2000
    @Option(help: "Hidden size.") var hiddenSize = 128
    @Option(help: "Decoder layers.") var layers = 4
    @Option(help: "Attention heads.") var heads = 4
    @Option(help: "Key/value heads (grouped-query attention).") var kvHeads = 2
    @Option(help: "Longest sequence the model takes.") var maxPositions = 256
    @Option(help: "Seed of the initial weights.") var seed: UInt64 = 1
    @Option(help: "Directory to write.") var output: String

    var scratch: ScratchModel {
        var s = ScratchModel()
        s.vocabSize = vocabSize; s.hiddenSize = hiddenSize; s.layers = layers; s.heads = heads
        s.kvHeads = kvHeads; s.maxPositions = maxPositions; s.seed = seed
        return s
    }

    func validate() throws {
        try scratch.validate()
        if let tokenizerRecords { try OptionCheck.atLeast(tokenizerRecords, 1, "tokenizer-records") }
    }

    func run() throws {
        let tpl = try PromptTemplate.named(template)
        let examples = try DatasetReader.read(data).examples
        let texts = ScratchModel.texts(of: Array(examples.prefix(tokenizerRecords ?? .max)), template: tpl)
        let (tokenizer, model) = try scratch.write(to: URL(fileURLWithPath: output), texts: texts)
        print(String(format: "%@: Llama-shaped, %d layers, hidden %d, %d heads / %d kv-heads, vocab %d (byte-level BPE from %d records rendered by %@): %.2fM parameters",
                     output, layers, hiddenSize, heads, kvHeads, tokenizer.vocabularySize, texts.count, tpl.name, Double(model.parameterCount) / 1e6))
    }
}
