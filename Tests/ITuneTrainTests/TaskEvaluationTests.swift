import Foundation
import XCTest
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers
@testable import ITuneTrain

final class TaskEvaluationTests: XCTestCase {
    func testHeldOutTasksAreScoredPerTaskWithRankClassificationForSmallAnswerSets() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-taskeval-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        let pool = work.appendingPathComponent("pool")
        let files = try SyntheticTasks.writePool(to: pool, perFile: 2, seed: 1, families: ["parity", "reverse"])
        XCTAssertEqual(files.count, 12)
        let tasks = try TaskPool.examples(pool.path)
        XCTAssertEqual(tasks.map(\.0), ["parity", "reverse"])
        XCTAssertEqual(tasks.map { $0.1.count }, [12, 12])

        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
        let tokDir = fixtures.appendingPathComponent("tokenizers/llama3_style")
        let model = try LlamaModel(ModelConfig(vocabSize: try Tokenizer(directory: tokDir).vocabularySize, hiddenSize: 32,
                                               intermediateSize: 64, numLayers: 1, numHeads: 4, numKVHeads: 2, maxPositions: 512),
                                   seed: 2, on: .cpu)
        try model.savePretrained(to: work.appendingPathComponent("model"), tokenizerDirectory: tokDir)
        let bundle = try ModelBundle(directory: work.appendingPathComponent("model"), on: .cpu)
        let template = PromptTemplate(.alpaca)
        let results = try TaskEvaluator.evaluate(tasks: tasks, bundle: bundle, template: template, maxExamples: 3)
        XCTAssertEqual(results.map(\.task), ["parity", "reverse"])
        XCTAssertEqual(results.map(\.examples), [3, 3])
        // parity's answers come from even/odd/偶数/奇数: rank classification over them; reverse has no small set.
        XCTAssertEqual(results[0].options, Set(tasks[0].1.map { $0.conversation.turns[0].response }).count)
        XCTAssertGreaterThanOrEqual(results[0].options ?? 0, 2)
        XCTAssertNotNil(results[0].rankAccuracy)
        XCTAssertNil(results[1].rankAccuracy)
        XCTAssertTrue(results.allSatisfy { $0.answerLogLikelihood < 0 && $0.answerLogLikelihood.isFinite })
        // The log-likelihood of one answer equals −loss × scored tokens of its tokenized example.
        let e = tasks[1].1[0]
        let (ll, n) = try TaskEvaluator.answerLogLikelihood(e, response: e.conversation.turns[0].response, bundle: bundle,
                                                           template: template, maxLength: 512)
        let t = try DatasetTokenizer.tokenize(e, bundle.tokenizer, TokenizeOptions(template: template, maxLength: 512))
        let loss = try noGrad { try bundle.model.loss(Tensor(indices: t.ids, shape: [1, t.ids.count]), labels: t.labels).item() }
        XCTAssertEqual(ll, -Double(loss) * Double(n), accuracy: 1e-4)
        XCTAssertEqual(n, t.labels.dropFirst().filter { $0 != -100 }.count)

        // The greedy answers decoded together (8 rows a batch, raw and templated prompts in
        // batches of their own, each up to its own limit) are the answers asked one at a time,
        // with and without a response prefix.
        var questions = Array(tasks[0].1.prefix(6) + tasks[1].1.prefix(6))
        for i in stride(from: 1, to: questions.count, by: 3) { questions[i].rawPrompt = true }
        let limits = questions.indices.map { 1 + $0 % 5 }
        for prefix in [nil, "Answer:"] {
            let asker = DecoderTaskModel(bundle: bundle, template: template, responsePrefix: prefix)
            let together = try asker.greedyAnswers(to: questions, maxNewTokens: limits)
            let alone = try zip(questions, limits).map { try asker.greedyAnswer(to: $0, maxNewTokens: $1) }
            XCTAssertEqual(together, alone, "prefix \(prefix ?? "none")")
            XCTAssertTrue(together.contains { !$0.isEmpty })
        }
    }
}
