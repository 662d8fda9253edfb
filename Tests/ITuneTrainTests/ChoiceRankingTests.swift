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
}
