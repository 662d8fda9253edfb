import Foundation
import XCTest
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers
@testable import ITuneTrain

/// Encoder-decoder instruction data and fine-tuning (T5 family).
final class Seq2SeqTrainingTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    let source = Example.Source(file: "test.jsonl", line: 1, task: "test")

    func testInstructionRecordsMapToEncoderInputAndDecoderTarget() throws {
        let alpaca = Example(conversation: Conversation(turns: [Turn(instruction: "Translate to German.", input: "The house.",
                                                                     response: "Das Haus.")]), source: source)
        XCTAssertEqual(try Seq2SeqData.texts(of: alpaca).input, "Translate to German.\n\nThe house.")
        XCTAssertEqual(try Seq2SeqData.texts(of: alpaca).target, "Das Haus.")
        let chat = Example(conversation: Conversation(system: "Be brief.", turns: [Turn(instruction: "Hi", response: "Hello"),
                                                                                   Turn(instruction: "2+2?", response: "4")]),
                           source: source)
        XCTAssertEqual(try Seq2SeqData.texts(of: chat).input, "Be brief.\n\nHi\n\nHello\n\n2+2?")
        XCTAssertEqual(try Seq2SeqData.texts(of: chat).target, "4")
        XCTAssertThrowsError(try Seq2SeqData.texts(of: Example(text: "just text", source: source))) {
            XCTAssertTrue("\($0)".contains("test.jsonl"), "\($0)")
        }
    }

    func testBothSidesEndWithEndOfSequenceAndTruncationKeepsIt() throws {
        let tokenizer = try Tokenizer(directory: Self.fixtures.appendingPathComponent("tokenizers/t5_unigram"))
        let e = Example(prompt: "translate English to German: The house is wonderful.", response: "Das Haus ist wunderbar.",
                        source: source)
        let full = try Seq2SeqData.tokenize([e], tokenizer: tokenizer, maxInputLength: 512, maxTargetLength: 512)[0]
        XCTAssertEqual(full.input, tokenizer.encode("translate English to German: The house is wonderful.").map(Int32.init))
        XCTAssertEqual(full.target.last, 1)
        XCTAssertEqual(full.input.last, 1)
        let cut = try Seq2SeqData.tokenize([e], tokenizer: tokenizer, maxInputLength: 5, maxTargetLength: 3)[0]
        XCTAssertEqual(cut.input, Array(full.input.prefix(4)) + [1])
        XCTAssertEqual(cut.target, Array(full.target.prefix(2)) + [1])
        XCTAssertThrowsError(try Seq2SeqData.tokenize([e], tokenizer: tokenizer, maxInputLength: 1, maxTargetLength: 8))
    }

    func testBatchesPadEachSideSeparately() {
        let a = Seq2SeqExample(input: [5, 6, 7, 1], target: [8, 1], source: source)
        let b = Seq2SeqExample(input: [9, 1], target: [10, 11, 12, 1], source: source)
        let batch = Seq2SeqBatch([a, b], padID: 0)
        XCTAssertEqual(batch.inputLength, 4)
        XCTAssertEqual(batch.targetLength, 4)
        XCTAssertEqual(batch.inputIDs, [5, 6, 7, 1, 9, 1, 0, 0])
        XCTAssertEqual(batch.inputMask, [1, 1, 1, 1, 1, 1, 0, 0])
        XCTAssertEqual(batch.labels, [8, 1, -100, -100, 10, 11, 12, 1])
        XCTAssertEqual(batch.targetTokens, 6)
    }

    func trainingExamples() throws -> [Seq2SeqExample] {
        let tokenizer = try Tokenizer(directory: Self.fixtures.appendingPathComponent("tokenizers/t5_unigram"))
        let pairs = [("reverse: a b c", "c b a"), ("reverse: one two", "two one"), ("upper: tokyo", "TOKYO"),
                     ("translate: house", "Haus"), ("sum: 2 3", "5"), ("reverse: x y z", "z y x")]
        return try Seq2SeqData.tokenize(pairs.map { Example(prompt: $0.0, response: $0.1, source: source) },
                                        tokenizer: tokenizer, maxInputLength: 32, maxTargetLength: 16)
    }

    func testFullFineTuningLearnsTheTargets() throws {
        let model = try T5Model.load(directory: Self.fixtures.appendingPathComponent("models/t5v11_gated_untied"), on: .cpu)
        let losses = try trainSeq2Seq(model, examples: trainingExamples(),
                                      options: Seq2SeqTrainingOptions(steps: 30, batchSize: 6, learningRate: 3e-3, seed: 1))
        XCTAssertEqual(losses.count, 30)
        XCTAssertLessThan(losses.suffix(3).reduce(0, +) / 3, 0.4 * losses[0], "\(losses)")
    }

    func testLoRATrainsOnlyTheAdaptersAndLearnsTheTargets() throws {
        let model = try T5Model.load(directory: Self.fixtures.appendingPathComponent("models/t5v11_gated_untied"), on: .cpu)
        let before = try model.shared.weight.toArray()
        let q = try model.encoderBlocks[0].selfAttention.q.weight.toArray()
        let lora = LoRAConfig(rank: 8, alpha: 16, dropout: 0, targetModules: T5Model.defaultLoRATargets)
        let losses = try trainSeq2Seq(model, examples: trainingExamples(),
                                      options: Seq2SeqTrainingOptions(steps: 30, batchSize: 6, learningRate: 1e-2, lora: lora, seed: 1))
        XCTAssertEqual(model.loraAdapters.count, 7 * 2 + 11 * 2)
        XCTAssertLessThan(losses.suffix(3).reduce(0, +) / 3, 0.6 * losses[0], "\(losses)")
        XCTAssertEqual(try model.shared.weight.toArray(), before)
        XCTAssertEqual(try model.encoderBlocks[0].selfAttention.q.weight.toArray(), q)
    }

    /// `itune-gpu train`'s library entry on a T5 directory: LoRA, a PEFT adapter written.
    func testFineTuneJobOnAT5DirectoryWritesAPEFTAdapter() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("t5-job-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        // The model fixture beside the tokenizer fixture of its vocabulary.
        let modelDir = tmp.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: modelDir, withIntermediateDirectories: true)
        for (dir, file) in [("models/t5v11_gated_untied", "config.json"), ("models/t5v11_gated_untied", "model.safetensors"),
                            ("tokenizers/t5_unigram", "tokenizer.json"), ("tokenizers/t5_unigram", "tokenizer_config.json")] {
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(dir).appendingPathComponent(file),
                                             to: modelDir.appendingPathComponent(file))
        }
        let data = tmp.appendingPathComponent("train.jsonl")
        let lines = (0..<6).map { #"{"instruction": "reverse", "input": "a b \#($0)", "output": "\#($0) b a"}"# }
        try lines.joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        var config = FineTuneConfig(model: modelDir.path, data: [data.path])
        config.output = tmp.appendingPathComponent("out").path
        config.trainer.maxSteps = 4
        config.trainer.batchSize = 3
        config.lora = LoRAConfig(rank: 4, alpha: 8, dropout: 0)
        let result = try FineTuneJob(config: config, device: .cpu).run(log: { _ in })
        XCTAssertEqual(result.summary.steps, 4)
        XCTAssertEqual(result.outputDirectory.lastPathComponent, "adapter")
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: result.outputDirectory.appendingPathComponent("adapter_config.json"))) as? [String: Any]
        XCTAssertEqual(saved?["task_type"] as? String, "SEQ_2_SEQ_LM")
        XCTAssertEqual(Set(saved?["target_modules"] as? [String] ?? []), Set(T5Model.defaultLoRATargets))
        // The adapter loads back onto the base model.
        let base = try T5Model.load(directory: modelDir, on: .cpu)
        XCTAssertEqual(try base.loadAdapter(from: result.outputDirectory).rank, 4)
        XCTAssertEqual(base.loraAdapters.count, 36)
        var packed = config
        packed.packing = true
        XCTAssertThrowsError(try FineTuneJob(config: packed, device: .cpu).run(log: { _ in })) {
            XCTAssertTrue("\($0)".contains("--packing"), "\($0)")
        }
    }

    func testSeq2SeqBundleAnswersAPromptWithTheModelsGreedyTokens() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("t5-gen-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        for (dir, file) in [("models/t5v11_gated_untied", "config.json"), ("models/t5v11_gated_untied", "model.safetensors"),
                            ("tokenizers/t5_unigram", "tokenizer.json"), ("tokenizers/t5_unigram", "tokenizer_config.json")] {
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(dir).appendingPathComponent(file),
                                             to: tmp.appendingPathComponent(file))
        }
        XCTAssertTrue(Seq2SeqBundle.holdsModel(tmp))
        XCTAssertFalse(Seq2SeqBundle.holdsModel(Self.fixtures.appendingPathComponent("models/gpt2")))
        let bundle = try Seq2SeqBundle(directory: tmp, on: .cpu)
        let prompt = "translate English to German: The house is wonderful."
        let (text, tokens) = try bundle.generate(prompt: prompt, maxNewTokens: 6)
        let ids = bundle.tokenizer.encode(prompt).map(Int32.init)
        XCTAssertEqual(tokens, try bundle.model.generateGreedy(Tensor(indices: ids, shape: [1, ids.count]), maxNewTokens: 6))
        XCTAssertEqual(text, bundle.tokenizer.decode(tokens.map(Int.init), skipSpecialTokens: true))
        XCTAssertFalse(tokens.isEmpty)
    }

    /// `itune-gpu train` on a T5 directory goes through `Trainer`: a run interrupted after its
    /// step-4 checkpoint and resumed (in a fresh job, LoRA with dropout) gives the uninterrupted
    /// run's losses, adapter and validation losses.
    func testResumedRunContinuesTheUninterruptedCurve() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("t5-resume-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let modelDir = tmp.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: modelDir, withIntermediateDirectories: true)
        for (dir, file) in [("models/t5v11_gated_untied", "config.json"), ("models/t5v11_gated_untied", "model.safetensors"),
                            ("tokenizers/t5_unigram", "tokenizer.json"), ("tokenizers/t5_unigram", "tokenizer_config.json")] {
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(dir).appendingPathComponent(file),
                                             to: modelDir.appendingPathComponent(file))
        }
        let data = tmp.appendingPathComponent("train.jsonl")
        let lines = (0..<24).map { #"{"instruction": "reverse", "input": "a b \#($0)", "output": "\#($0) b a"}"# }
        try lines.joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        func config(_ out: String) -> FineTuneConfig {
            var c = FineTuneConfig(model: modelDir.path, data: [data.path])
            c.output = tmp.appendingPathComponent(out).path
            c.trainer.maxSteps = 8
            c.trainer.batchSize = 4
            c.trainer.evalEvery = 2
            c.trainer.saveEvery = 4
            c.trainer.optimizer.learningRate = 3e-3
            c.validationSplit = 0.2
            c.lora = LoRAConfig(rank: 4, alpha: 8, dropout: 0.1)
            return c
        }
        let straight = try FineTuneJob(config: config("straight"), device: .cpu).run(log: { _ in })
        _ = try FineTuneJob(config: config("resumed"), device: .cpu).run(log: { _ in })
        try FileManager.default.removeItem(at: tmp.appendingPathComponent("resumed/checkpoints/step-8"))
        var again = config("resumed")
        again.resume = true
        var events: [String] = []
        let resumed = try FineTuneJob(config: again, device: .cpu).run(log: { _ in }) { if case let .info(s) = $0 { events.append(s) } }
        XCTAssertTrue(events.contains("resumed from step 4 of 8"), "\(events)")
        XCTAssertEqual(resumed.summary.history.map(\.0), Array(1...8))
        for ((_, a), (_, b)) in zip(resumed.summary.history, straight.summary.history) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertLessThan(straight.summary.history.last!.1, straight.summary.history.first!.1, "the run learns")
        XCTAssertEqual(try XCTUnwrap(resumed.summary.validationLoss), try XCTUnwrap(straight.summary.validationLoss), accuracy: 1e-6)
        let a = try SafetensorsFile(url: straight.outputDirectory.appendingPathComponent("adapter_model.safetensors"))
        let b = try SafetensorsFile(url: resumed.outputDirectory.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(a.names.sorted(), b.names.sorted())
        for name in a.names { XCTAssertEqual(try a.floats(name), try b.floats(name), name) }
        let metrics = try String(contentsOf: tmp.appendingPathComponent("resumed/metrics.jsonl"), encoding: .utf8)
        XCTAssertEqual(metrics.split(separator: "\n").filter { $0.contains("\"validation\"") }.count, 4, "validation every 2 steps")
    }
}
