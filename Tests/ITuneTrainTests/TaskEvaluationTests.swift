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

        // Answers scored together (up to 8 rows a forward, each padded on the right) give each
        // answer's log-likelihood and count alone, with and without a prefix, raw and templated,
        // over answers of different lengths (11: two batches), with an unscorable one among them.
        let answers = tasks[1].1.prefix(10).map { $0.conversation.turns[0].response } + [""]
        for prefix in [nil, "Answer:"] {
            for raw in [false, true] {
                var q = tasks[0].1[1]
                q.rawPrompt = raw
                let asker = DecoderTaskModel(bundle: bundle, template: template, responsePrefix: prefix)
                let together = try asker.logLikelihoods(of: answers, answering: q)
                let alone = try answers.map { try asker.logLikelihood(of: $0, answering: q) }
                let what = "prefix \(prefix ?? "none") raw \(raw)"
                XCTAssertEqual(together.map(\.1), alone.map(\.1), what)
                XCTAssertGreaterThan(Set(alone.map(\.1)).count, 2, "answers of several lengths")
                for (i, (a, b)) in zip(together, alone).enumerated() {
                    if b.0.isFinite {
                        XCTAssertEqual(a.0, b.0, accuracy: 1e-4 * max(1, abs(b.0)), "\(what) answer \(i)")
                    } else {
                        XCTAssertEqual(a.0, b.0, "\(what) answer \(i)")
                    }
                }
            }
        }
    }
}
