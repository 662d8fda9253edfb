import Foundation
import XCTest
import ITune

/// The README's library example, call for call, on a small model directory built here.
final class LibraryUsageTests: XCTestCase {
    func testReadmeLoRAFineTuningProgramRuns() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-readme-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        let modelDir = work.appendingPathComponent("model")
        let tokenizerDir = fixtures.appendingPathComponent("tokenizers/llama3_style")
        let vocab = try Tokenizer(directory: tokenizerDir).vocabularySize
        let base = try LlamaModel(ModelConfig(vocabSize: vocab, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4,
                                              numKVHeads: 2, maxPositions: 256), seed: 1, on: .cpu)
        try base.savePretrained(to: modelDir, tokenizerDirectory: tokenizerDir)
        let dataFile = fixtures.appendingPathComponent("data/records.jsonl").path
        let out = work.appendingPathComponent("out")

        // --- README: "Fine-tune from Swift" ---
        let bundle = try ModelBundle(directory: modelDir, on: .cpu)
        let lora = LoRAConfig(rank: 8, alpha: 16)
        try bundle.model.addLoRA(lora, seed: 0)
        let data = try DatasetReader.read([dataFile])
        let (examples, _) = try DatasetTokenizer.tokenize(data.examples, bundle.tokenizer,
                                                          TokenizeOptions(template: PromptTemplate(.alpaca), maxLength: 512))
        var options = TrainerOptions()
        options.maxSteps = 5
        options.optimizer.learningRate = 1e-3
        let trainer = try Trainer(model: bundle.model, trainable: bundle.model.loraParameters, options: options,
                                  train: examples.map { TrainingRow(ids: $0.ids, labels: $0.labels) }, outputDirectory: out)
        let summary = try trainer.run()
        try bundle.model.saveAdapter(to: out.appendingPathComponent("adapter"), config: lora, baseModel: modelDir.path)
        // --- end of the README example ---

        XCTAssertEqual(summary.history.count, 5)
        XCTAssertTrue(summary.history.allSatisfy { $0.1.isFinite })
        for f in ["adapter/adapter_config.json", "adapter/adapter_model.safetensors", "metrics.jsonl", "loss_curve.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
        }
    }

    func testFineTuneJobWritesAdapterAndResumes() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-job-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        var config = try FineTuneConfigTests.tinyRun(in: work, qwen2: true)  // 4 steps of batch 2
        config.trainer.saveEvery = 2
        config.packing = true
        config.samples = 1
        let first = try FineTuneJob(config: config, device: .cpu).run(log: { _ in })
        XCTAssertEqual(first.outputDirectory.lastPathComponent, "adapter")
        XCTAssertEqual(first.samples.count, 1)
        // Resuming a finished run from its last checkpoint takes no further steps and keeps the curve.
        config.resume = true
        let again = try FineTuneJob(config: config, device: .cpu).run(log: { _ in })
        XCTAssertEqual(again.summary.history.map(\.1), first.summary.history.map(\.1))
    }
}
