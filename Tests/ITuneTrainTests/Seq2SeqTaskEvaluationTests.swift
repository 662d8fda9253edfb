import Foundation
import XCTest
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers
@testable import ITuneTrain

/// `eval --tasks` and `eval --data` on encoder-decoder models: the held-out task protocol's
/// numbers for a tiny T5 v1.1 equal transformers' (scripts/make_t5_eval_fixtures.py) zero-shot,
/// and a teacher-forced reference with K shots.
final class Seq2SeqTaskEvaluationTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// The CPU, and the first OpenCL device when there is one (required with ITUNE_REQUIRE_OPENCL=1).
    func devices() -> [Device] {
        let cl = OpenCLRuntime.listDevices().platforms.filter { !$0.devices.isEmpty }.map { Device.opencl(platform: $0.index, device: 0) }
        if cl.isEmpty, ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" { XCTFail("no OpenCL device") }
        return [.cpu] + cl.prefix(1)
    }

    /// The fixture model with the t5_unigram tokenizer beside it, as a model directory.
    func modelDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-t5-eval-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let model = Self.fixtures.appendingPathComponent("models/t5v11_gated_untied")
        let tokenizer = Self.fixtures.appendingPathComponent("tokenizers/t5_unigram")
        for (from, name) in [(model, "config.json"), (model, "model.safetensors"), (tokenizer, "tokenizer.json"),
                             (tokenizer, "tokenizer_config.json")] {
            try FileManager.default.copyItem(at: from.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        return dir
    }

    func golden() throws -> [String: Any] {
        let url = Self.fixtures.appendingPathComponent("models/t5_task_eval.json")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// The model as the fixture script changes it: lm_head's </s> row = factor × the row of `eos_like`.
    func loadBundle(_ device: Device, golden g: [String: Any]) throws -> Seq2SeqBundle {
        let bundle = try Seq2SeqBundle(directory: try modelDirectory(), on: device)
        let head = try XCTUnwrap(bundle.model.lmHead)
        let like = try XCTUnwrap(g["eos_like"] as? Int), factor = Float(try XCTUnwrap(g["eos_factor"] as? Double))
        let C = bundle.model.config.dModel
        var w = try head.weight.toArray()
        for c in 0..<C { w[1 * C + c] = factor * w[like * C + c] }
        try head.weight.assign(w)
        return bundle
    }

    func task(_ g: [String: Any]) throws -> [Example] {
        let questions = try XCTUnwrap(g["questions"] as? [[String: Any]])
        return try questions.enumerated().map { i, q in
            Example(conversation: Conversation(turns: [Turn(instruction: try XCTUnwrap(q["instruction"] as? String),
                                                            input: q["input"] as? String,
                                                            response: try XCTUnwrap(q["reference"] as? String))]),
                    source: Example.Source(file: "task.jsonl", line: i + 1, task: "fixture"))
        }
    }

    func testZeroShotScoresEqualTransformers() throws {
        let g = try golden()
        let examples = try task(g)
        for device in devices() {
            let bundle = try loadBundle(device, golden: g)
            let model = Seq2SeqTaskModel(bundle: bundle)
            // Question by question: the encoder input, the greedy answer, every option's log-likelihood.
            for (e, q) in zip(examples, try XCTUnwrap(g["questions"] as? [[String: Any]])) {
                XCTAssertEqual(try model.tokenized(e, response: "")?.input.map(Int.init), q["encoder_ids"] as? [Int], "\(device)")
                let reference = e.conversation.turns[0].response
                let (text, tokens) = try bundle.generate(inputIDs: try XCTUnwrap(model.tokenized(e, response: "")).input,
                                                         maxNewTokens: model.tokenCount(reference) + 8)
                XCTAssertEqual(tokens.map(Int.init), q["greedy_tokens"] as? [Int], "\(device) \(reference)")
                XCTAssertEqual(text, q["greedy_text"] as? String, "\(device)")
                let lls = try XCTUnwrap(q["log_likelihoods"] as? [String: Double]), counts = try XCTUnwrap(q["tokens"] as? [String: Int])
                for (answer, expected) in lls {
                    let (ll, n) = try model.logLikelihood(of: answer, answering: e)
                    XCTAssertEqual(n, counts[answer], "\(device) \(answer)")
                    XCTAssertEqual(ll, expected, accuracy: 1e-4 * abs(expected), "\(device) \(answer)")
                }
            }
            // The task's figures through the protocol.
            let r = try XCTUnwrap(TaskEvaluator.evaluate(tasks: [("fixture", examples)], model: model, maxExamples: 50).first)
            XCTAssertEqual(r.examples, examples.count)
            XCTAssertEqual(r.exactMatch, try XCTUnwrap(g["exact_match"] as? Double), accuracy: 1e-12, "\(device)")
            XCTAssertGreaterThan(r.exactMatch, 0, "the fixture has answers the model gives")
            XCTAssertEqual(r.rankAccuracy ?? -1, try XCTUnwrap(g["rank_accuracy"] as? Double), accuracy: 1e-12, "\(device)")
            XCTAssertEqual(r.options, g["options"] as? Int)
            let ll = try XCTUnwrap(g["answer_log_likelihood"] as? Double)
            XCTAssertEqual(r.answerLogLikelihood, ll, accuracy: 1e-4 * abs(ll), "\(device)")
        }
    }

    /// The total log-likelihood of `target` after `input`, from the teacher-forced logits
    /// (the path held to transformers' logits by T5GoldenTests), in Double.
    func referenceLogLikelihood(_ model: T5Model, input: [Int32], target: [Int32]) throws -> Double {
        let V = model.config.vocabSize
        let decoderIDs = model.decoderInputs(forLabels: target, batch: 1)
        let logits = try noGrad {
            try model.logits(inputIDs: Tensor(indices: input, shape: [1, input.count], on: model.device),
                             decoderInputIDs: Tensor(indices: decoderIDs, shape: [1, target.count], on: model.device)).toArray()
        }
        var total = 0.0
        for (t, label) in target.enumerated() {
            let row = logits[t * V..<(t + 1) * V].map(Double.init)
            let m = row.max()!
            total += row[Int(label)] - m - log(row.reduce(0) { $0 + exp($1 - m) })
        }
        return total
    }

    /// Greedy decoding by recomputing every step teacher-forced (no caches).
    func referenceGreedy(_ model: T5Model, input: [Int32], maxNewTokens: Int) throws -> [Int32] {
        var out: [Int32] = []
        let V = model.config.vocabSize
        for _ in 0..<maxNewTokens {
            let decoderIDs = [Int32(model.config.decoderStartTokenID)] + out
            let logits = try noGrad {
                try model.logits(inputIDs: Tensor(indices: input, shape: [1, input.count], on: model.device),
                                 decoderInputIDs: Tensor(indices: decoderIDs, shape: [1, decoderIDs.count], on: model.device)).toArray()
            }
            let last = logits[(decoderIDs.count - 1) * V..<decoderIDs.count * V]
            let best = Int32(last.indices.max { last[$0] < last[$1] }! - last.startIndex)
            out.append(best)
            if best == 1 { break }
        }
        return out
    }

    func testFewShotScoresEqualTheTeacherForcedReference() throws {
        let g = try golden()
        let examples = try task(g)
        let bundle = try loadBundle(.cpu, golden: g)
        let model = Seq2SeqTaskModel(bundle: bundle)
        let shots = 2, seed: UInt64 = 3
        let r = try XCTUnwrap(TaskEvaluator.evaluate(tasks: [("fixture", examples)], model: model, maxExamples: 50, seed: seed,
                                                     shots: shots).first)
        // The reference: the same prompts (the protocol's choice, shared by every family), each
        // tokenized here in FLAN's layout and scored from the teacher-forced logits.
        let prompted = TaskEvaluator.prompts(for: examples, maxExamples: 50, seed: seed, shots: shots)
        XCTAssertEqual(prompted.count, examples.count)
        let answers = Array(Set(examples.map { $0.conversation.turns[0].response })).sorted()
        var right = 0, rankRight = 0, ll = 0.0, tokens = 0
        for e in prompted {
            let turn = e.conversation.turns[0]
            XCTAssertEqual(turn.instruction.components(separatedBy: "\n\n").count, shots + 1, "two exemplars, then the question")
            let text = turn.instruction + (turn.input.map { "\n\n" + $0 } ?? "")
            let input = bundle.tokenizer.encode(text).map(Int32.init)
            let generated = try referenceGreedy(bundle.model, input: input,
                                                maxNewTokens: bundle.tokenizer.encode(turn.response, addSpecialTokens: false).count + 8)
            if TaskEvaluator.normalise(bundle.tokenizer.decode(generated.map(Int.init), skipSpecialTokens: true))
                == TaskEvaluator.normalise(turn.response) { right += 1 }
            var scores: [String: Double] = [:]
            for a in answers {
                let target = bundle.tokenizer.encode(a).map(Int32.init)
                scores[a] = try referenceLogLikelihood(bundle.model, input: input, target: target)
                if a == turn.response { ll += scores[a]!; tokens += target.count }
            }
            if answers.max(by: { scores[$0]! < scores[$1]! }) == turn.response { rankRight += 1 }
        }
        XCTAssertEqual(r.exactMatch, Double(right) / Double(prompted.count), accuracy: 1e-12)
        XCTAssertEqual(r.rankAccuracy ?? -1, Double(rankRight) / Double(prompted.count), accuracy: 1e-12)
        XCTAssertEqual(r.answerLogLikelihood, ll / Double(tokens), accuracy: 1e-4 * abs(ll / Double(tokens)))
        // The shots change what the model reads, so the figures move.
        let zero = try XCTUnwrap(TaskEvaluator.evaluate(tasks: [("fixture", examples)], model: model, maxExamples: 50, seed: seed).first)
        XCTAssertNotEqual(zero.answerLogLikelihood, r.answerLogLikelihood)
    }

    /// `eval --data` on an encoder-decoder: the token-weighted mean over batches equals
    /// transformers' loss of the fixture batch, whatever the batch size.
    func testDataLossEqualsTransformersLossOverBatches() throws {
        let url = Self.fixtures.appendingPathComponent("models/t5v11_gated_untied/expected.json")
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let ids = try XCTUnwrap(obj["input_ids"] as? [[Int]]), mask = try XCTUnwrap(obj["attention_mask"] as? [[Int]])
        let labels = try XCTUnwrap(obj["labels"] as? [[Int]]), loss = try XCTUnwrap(obj["loss"] as? Double)
        let source = Example.Source(file: "x", task: "x")
        let examples = zip(zip(ids, mask), labels).map { pair, l in
            Seq2SeqExample(input: zip(pair.0, pair.1).filter { $0.1 == 1 }.map { Int32($0.0) },
                           target: l.filter { $0 != -100 }.map(Int32.init), source: source)
        }
        for device in devices() {
            let model = try T5Model.load(directory: Self.fixtures.appendingPathComponent("models/t5v11_gated_untied"), on: device)
            for batchSize in [1, 2] {
                let r = try evaluate(model, examples: examples, batchSize: batchSize)
                XCTAssertEqual(r.tokens, labels.flatMap { $0 }.filter { $0 != -100 }.count)
                XCTAssertEqual(r.meanLoss, loss, accuracy: 1e-4 * loss, "\(device) batch \(batchSize)")
            }
        }
    }

    /// The registry picks the encoder-decoder path: a T5 directory loads as one for the task
    /// protocol, a template for it is refused by name, and decoder-only loaders refuse it.
    func testRegistryRoutesEncoderDecoderDirectories() throws {
        let dir = try modelDirectory()
        XCTAssertTrue(T5Model.holdsModel(dir))
        XCTAssertEqual(try ModelFamily.of(directory: dir).kind, .encoderDecoder)
        XCTAssertTrue(try loadTaskModel(directory: dir, on: .cpu) is Seq2SeqTaskModel)
        XCTAssertThrowsError(try loadTaskModel(directory: dir, on: .cpu, template: "alpaca")) {
            XCTAssertEqual(($0 as? OptionError)?.option, "template")
        }
        XCTAssertThrowsError(try loadPretrained(dir, on: .cpu)) {
            XCTAssertEqual($0 as? ModelFileError, .encoderDecoder(file: dir.appendingPathComponent("config.json").path,
                                                                  found: "T5ForConditionalGeneration"))
            XCTAssertTrue("\($0)".contains("encoder-decoder"), "\($0)")
        }
    }
}
