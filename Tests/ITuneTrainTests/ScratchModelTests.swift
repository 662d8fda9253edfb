import Foundation
import XCTest
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers
@testable import ITuneTrain

/// `init-model`: a random Llama-shaped model and a tokenizer trained on the data, written as a
/// Hugging Face directory that loads back as it was.
final class ScratchModelTests: XCTestCase {
    func testScratchModelWritesADirectoryThatLoadsBackTheSameModel() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-scratch-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        let examples = (0..<40).map { i in
            Example(conversation: Conversation(turns: [Turn(instruction: "次の質問に答えてください。\(i)番目の山は？", input: "選択肢：富士山、北岳",
                                                             response: i % 2 == 0 ? "富士山" : "北岳")]), source: .init(file: "t", task: "t"))
        }
        let texts = ScratchModel.texts(of: examples, template: PromptTemplate(.alpacaJA))
        XCTAssertTrue(texts[1].hasPrefix("### 指示:\n次の質問に答えてください。1番目の山は？\n\n### 入力:\n選択肢：富士山、北岳\n\n### 回答:\n北岳"))
        var s = ScratchModel()
        s.vocabSize = 300
        s.hiddenSize = 32
        s.layers = 2
        s.maxPositions = 64
        let (tokenizer, model) = try s.write(to: work, texts: texts)
        // 256 bytes + 44 merges, then the two special tokens.
        XCTAssertEqual(tokenizer.vocabularySize, 302)
        XCTAssertEqual(tokenizer.eosTokenID, 300)
        XCTAssertEqual(tokenizer.padTokenID, 301)
        for t in texts.prefix(3) {
            let ids = tokenizer.encode(t, addSpecialTokens: false)
            XCTAssertLessThan(ids.count, t.utf8.count, "merges shorten the text")
            XCTAssertEqual(Array(tokenizer.decode(ids).utf8), Array(t.utf8))
        }
        let bundle = try ModelBundle(directory: work, on: .cpu)
        XCTAssertEqual(bundle.model.config.vocabSize, 302)
        XCTAssertEqual(bundle.model.config.eosTokenIDs, [300])
        XCTAssertEqual(bundle.model.config.numKVHeads, 2)
        let ids = tokenizer.encode(texts[0], addSpecialTokens: false).prefix(40).map(Int32.init)
        let labels = ids.map { $0 }
        let a = try noGrad { try model.loss(Tensor(indices: ids, shape: [1, ids.count], on: .cpu), labels: labels).item() }
        let b = try noGrad { try bundle.model.loss(Tensor(indices: ids, shape: [1, ids.count], on: .cpu), labels: labels).item() }
        XCTAssertEqual(a, b, "the written weights are the model's")
        XCTAssertEqual(a, log(302), accuracy: 1.0, "a random model is near uniform")
    }

    func testScratchModelRefusesShapesThatCannotBeAModel() {
        var s = ScratchModel()
        s.heads = 3
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual(($0 as? OptionError)?.option, "hidden-size") }
        s = ScratchModel()
        s.kvHeads = 3
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual(($0 as? OptionError)?.option, "heads") }
        s = ScratchModel()
        s.vocabSize = 100
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual(($0 as? OptionError)?.option, "vocab-size") }
    }
}
