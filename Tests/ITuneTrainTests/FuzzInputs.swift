import Foundation
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers
@testable import ITuneTrain

/// The valid files the fuzz test starts from, and how each mutated file is read: as a run reads
/// it, on to the first use of what was read (a forward pass, an encoding, tokenized rows).
enum FuzzInputs {
    static let modelDirectory = TrainerFixtures.fixtures.appendingPathComponent("models/llama_tied_headdim20_llama3rope")

    /// The original bytes, where their JSON lies (nil: not JSON), and the model directory the
    /// mutated file belongs in (nil: it is read alone).
    static func original(_ target: FuzzTarget) throws -> ([UInt8], Range<Int>?, URL?) {
        let fixtures = TrainerFixtures.fixtures
        switch target {
        case .safetensors:
            let bytes = [UInt8](try Data(contentsOf: modelDirectory.appendingPathComponent("model.safetensors")))
            let n = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            return (bytes, 8..<(8 + n), modelDirectory)
        case .config:
            let bytes = [UInt8](try Data(contentsOf: modelDirectory.appendingPathComponent("config.json")))
            return (bytes, 0..<bytes.count, modelDirectory)
        case .tokenizer:
            let bytes = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("tokenizers/gpt2_style/tokenizer.json")))
            return (bytes, 0..<bytes.count, nil)
        case .jsonl:
            var bytes: [UInt8] = []
            for name in ["records.jsonl", "records/messages.jsonl", "records/prompt_completion.jsonl", "records/self_instruct.jsonl", "records/text.jsonl"] {
                bytes += try Data(contentsOf: fixtures.appendingPathComponent("data/\(name)"))
            }
            return (bytes, 0..<bytes.count, nil)
        case .jsonArray:
            let bytes = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("data/records/alpaca.json")))
            return (bytes, 0..<bytes.count, nil)
        }
    }

    /// Reads `file` as a run would; throws what the code under test throws.
    static func read(_ target: FuzzTarget, file: URL, tokenizer: Tokenizer) throws {
        let dir = file.deletingLastPathComponent()
        switch target {
        case .safetensors:
            let f = try SafetensorsFile(url: file)
            for name in f.names { _ = try f.floats(name) }
            try forward(try loadPretrained(dir, on: .cpu))
        case .config:
            let config = try ModelConfig(configJSON: file)
            // Sizes that would allocate more than a few MB are left to the parser alone.
            // (Each bounded alone: a product of the file's sizes could overflow here, in the test.)
            let sizes = [config.vocabSize, config.hiddenSize, config.intermediateSize, config.headDim]
            guard sizes.allSatisfy({ $0 <= 4096 }), config.numLayers <= 8, config.numHeads <= 64, config.numKVHeads <= 64,
                  config.maxPositions <= 1 << 20 else { return }
            try forward(try loadPretrained(dir, on: .cpu))
        case .tokenizer:
            let t = try Tokenizer(tokenizerJSON: try Data(contentsOf: file), config: nil)
            let ids = t.encode("Hello, world! ü 123 <|endoftext|> Ģ\n", addSpecialTokens: true)
            _ = t.decode(ids)
            _ = t.decode(ids.map { $0 + 1 }, skipSpecialTokens: true)
        case .jsonl, .jsonArray:
            _ = try? DatasetReader.read([file.path], options: ReadOptions(skipBadRecords: true))
            let data = try DatasetReader.read([file.path])
            for style in [PromptTemplate.Style.alpaca, .chatml] {
                let (rows, _) = try DatasetTokenizer.tokenize(data.examples, tokenizer, TokenizeOptions(template: PromptTemplate(style), maxLength: 64))
                _ = DatasetTokenizer.pack(rows, rowLength: 64)
            }
        }
    }

    /// One loss of the model on a short row: the first use of every size the config gave.
    static func forward(_ model: any CausalLM) throws {
        let ids: [Int32] = [1, 2, 3, 4]
        _ = try model.loss(try Tensor(indices: ids, shape: [1, 4], on: .cpu), labels: ids).item()
    }
}
