import Foundation
import XCTest
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers
@testable import ITuneTrain

/// Multiple-choice records (JCommonsenseQA's five answers differ per question) are ranked over
/// their own choices.
final class ChoiceRankingTests: XCTestCase {
    func testRecordsWithChoicesAreRankedOverThemAndJGLUEGroupsIntoTwoTasks() throws {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/data/jglue")
        guard FileManager.default.fileExists(atPath: source.appendingPathComponent("jnli-valid-v1.3.json").path) else {
            throw XCTSkip("\(source.path) is absent")
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-choices-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        _ = try JGLUE.writeTasks(from: source.path, to: work.appendingPathComponent("tasks"), split: "validation", limit: 20)
        let tasks = try TaskPool.examples(work.appendingPathComponent("tasks").path)
        XCTAssertEqual(tasks.map(\.0), ["jcommonsenseqa", "jnli"])

        let tokDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizers/llama3_style")
        let model = try LlamaModel(ModelConfig(vocabSize: try Tokenizer(directory: tokDir).vocabularySize, hiddenSize: 32,
                                               intermediateSize: 64, numLayers: 1, numHeads: 4, numKVHeads: 2, maxPositions: 512),
                                   seed: 3, on: .cpu)
        try model.savePretrained(to: work.appendingPathComponent("model"), tokenizerDirectory: tokDir)
        let bundle = try ModelBundle(directory: work.appendingPathComponent("model"), on: .cpu)
        let template = PromptTemplate(.alpacaJA)
        let results = try TaskEvaluator.evaluate(tasks: tasks, bundle: bundle, template: template, maxExamples: 2)
        XCTAssertEqual(results.map(\.options), [5, 3])
        // The rank accuracy is the share of examples whose reference has the highest
        // log-likelihood among that example's own choices, recomputed here.
        for (r, (_, all)) in zip(results, tasks) {
            let examples = Array(DatasetTokenizer.shuffled(all, seed: 0).prefix(2))
            var right = 0
            for e in examples {
                let scores = try e.choices!.map { try TaskEvaluator.answerLogLikelihood(e, response: $0, bundle: bundle, template: template, maxLength: 512).0 }
                if e.choices![scores.indices.max { scores[$0] < scores[$1] }!] == e.conversation.turns[0].response { right += 1 }
            }
            XCTAssertEqual(r.rankAccuracy ?? -1, Double(right) / Double(examples.count), accuracy: 1e-9, r.task)
        }
    }

    /// `responsePrefix` (eval --response-prefix): the answer is begun by the prefix, which the
    /// prompt leaves open as transformers' continue_final_message does; only what follows it is
    /// scored. Reference: the model's loss over the rendered conversation with labels only after
    /// the tokens of the continuation prompt.
    func testResponsePrefixIsLeftOpenAndNotScored() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
        let tokDir = fixtures.appendingPathComponent("chat_templates/qwen2.5-instruct")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-prefix-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        let model = try LlamaModel(ModelConfig(vocabSize: try Tokenizer(directory: tokDir).vocabularySize, hiddenSize: 32,
                                               intermediateSize: 64, numLayers: 1, numHeads: 4, numKVHeads: 2, maxPositions: 512),
                                   seed: 5, on: .cpu)
        try model.savePretrained(to: work, tokenizerDirectory: tokDir)
        let bundle = try ModelBundle(directory: work, on: .cpu)
        let template = try PromptTemplate.resolve("model", tokenizer: bundle.tokenizer).template
        let e = Example(conversation: Conversation(turns: [Turn(instruction: "富士山の高さは？", response: "x")]), source: .init(file: "t", task: "t"))
        let prefix = "答えは", answer = "3776メートルです。"

        var open = e.conversation
        open.turns[0].response = prefix
        let context = bundle.tokenizer.encode(try template.continuationPrompt(for: open), addSpecialTokens: false)
        var whole = e.conversation
        whole.turns[0].response = prefix + answer
        let full = bundle.tokenizer.encode(try template.renderConversation(whole).text, addSpecialTokens: false)
        XCTAssertEqual(Array(full.prefix(context.count)), context, "the open prompt is where the whole rendering begins")
        XCTAssertTrue(try template.continuationPrompt(for: open).hasSuffix("<|im_start|>assistant\n答えは"))
        // Scored: the answer's tokens and what the template writes after the answer (<|im_end|>\n).
        let labels = full.indices.map { $0 < context.count ? Int32(-100) : Int32(full[$0]) }
        let scored = labels.dropFirst().filter { $0 != -100 }.count
        let loss = try noGrad { try model.loss(Tensor(indices: full.map(Int32.init), shape: [1, full.count], on: .cpu), labels: labels).item() }

        let (ll, n) = try TaskEvaluator.answerLogLikelihood(e, response: answer, bundle: bundle, template: template, maxLength: 512, prefix: prefix)
        XCTAssertEqual(n, scored)
        XCTAssertEqual(n, bundle.tokenizer.encode(answer + "<|im_end|>\n", addSpecialTokens: false).count)
        XCTAssertEqual(ll, -Double(loss) * Double(scored), accuracy: 1e-4)
        // Without the prefix the prefix's tokens count too.
        let (_, nWhole) = try TaskEvaluator.answerLogLikelihood(e, response: prefix + answer, bundle: bundle, template: template, maxLength: 512)
        XCTAssertGreaterThan(nWhole, n)
    }
}
