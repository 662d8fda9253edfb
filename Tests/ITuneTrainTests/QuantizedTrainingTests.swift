import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// `train --quantize nf4` and `--grad-checkpoint` end to end on the tiny run (real text from
/// Tests/Fixtures/data/records.jsonl): the nf4 base's LoRA curve tracks the f32 base's, the
/// checkpointed curve equals the plain one, and the adapter is an ordinary PEFT adapter that
/// loads on the unquantised base.
final class QuantizedTrainingTests: XCTestCase {
    func curve(_ work: URL, _ name: String, _ edit: (inout FineTuneConfig) -> Void) throws -> (losses: [Double], log: [String], out: URL) {
        var config = try FineTuneConfigTests.tinyRun(in: work)
        config.output = work.appendingPathComponent(name).path
        config.trainer.maxSteps = 30
        edit(&config)
        var log: [String] = []
        let result = try FineTuneJob(config: config, device: .cpu).run(log: { log.append($0) })
        XCTAssertEqual(result.summary.history.count, 30, name)
        return (result.summary.history.map(\.1), log, result.outputDirectory)
    }

    func testNF4BaseCurveTracksF32AndCheckpointingChangesNothing() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-quantrun-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        let f32 = try curve(work, "f32") { _ in }
        let nf4 = try curve(work, "nf4") { $0.quantize = .nf4; $0.doubleQuant = true }
        let nf4Checkpointed = try curve(work, "nf4-ckpt") { $0.quantize = .nf4; $0.doubleQuant = true; $0.gradCheckpoint = true }
        XCTAssertTrue(nf4.log.contains { $0.contains("stored as nf4 blocks of 64 with double-quantised constants") }, "\(nf4.log)")
        XCTAssertTrue(nf4Checkpointed.log.contains { $0.contains("gradient checkpointing") })
        XCTAssertTrue(nf4.log.contains { $0.contains("expected peak memory: about") }, "\(nf4.log)")
        let d = zip(nf4.losses, f32.losses).map { abs($0 - $1) }.max() ?? .infinity
        print("[quantize] LoRA nf4 (double-quant) base vs f32 over 30 steps on cpu: max |Δloss| = \(d) (f32 \(f32.losses.first!) → \(f32.losses.last!))")
        XCTAssertLessThan(d, 2e-2)
        XCTAssertGreaterThan(d, 0, "the quantised base changed the numbers")
        for (a, b) in zip(nf4Checkpointed.losses, nf4.losses) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(b))) }
        // Quantised while loading: right after the load every decoder projection is blocks.
        let loaded = try QuantizeOnLoad.$setting.withValue(QuantizeSetting(format: .nf4)) {
            try ModelBundle(directory: work.appendingPathComponent("model"), on: .cpu).model
        }
        XCTAssertTrue(loaded.projections().allSatisfy { ($0 as? Linear)?.quantizedWeight != nil && $0.weight.count == 0 })
        XCTAssertGreaterThan(loaded.outputEmbedding.count, 0, "the head and the embeddings stay as stored")
        // The adapter trained on the nf4 base loads on the unquantised base.
        let base = try ModelBundle(directory: work.appendingPathComponent("model"), on: .cpu).model
        let config = try base.loadAdapter(from: nf4.out, trainable: false)
        XCTAssertEqual(config.rank, try FineTuneConfigTests.tinyRun(in: work.appendingPathComponent("again")).lora.rank)
        XCTAssertFalse(base.loraParameters.isEmpty)
    }

    /// `--quantize-embeddings`: the tied table (embeddings and head) as nf4 blocks too. The
    /// curve stays near the f32 base's (a looser bound than the projections alone: every token's
    /// input and every logit now read 4-bit values), the table is blocks right after the load,
    /// the adapter is the same PEFT adapter, and the option needs --quantize.
    func testQuantizedEmbeddingsCurveTracksF32AndTheTableIsBlocks() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-quantemb-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        let f32 = try curve(work, "f32") { _ in }
        let nf4 = try curve(work, "nf4") { $0.quantize = .nf4 }
        let emb = try curve(work, "nf4-emb") { $0.quantize = .nf4; $0.quantizeEmbeddings = true; $0.gradCheckpoint = true }
        XCTAssertTrue(emb.log.contains { $0.contains("the token embeddings and lm_head stored as nf4 blocks") }, "\(emb.log)")
        let dEmb = zip(emb.losses, f32.losses).map { abs($0 - $1) }.max() ?? .infinity
        let dProj = zip(nf4.losses, f32.losses).map { abs($0 - $1) }.max() ?? .infinity
        print("[quantize] LoRA nf4 base with nf4 embeddings vs f32 over 30 steps on cpu: max |Δloss| = \(dEmb) (projections only: \(dProj))")
        XCTAssertLessThan(dEmb, 5e-2)
        XCTAssertGreaterThan(dEmb, 0)
        XCTAssertNotEqual(emb.losses, nf4.losses, "the embeddings' blocks changed the numbers")
        let loaded = try QuantizeOnLoad.$setting.withValue(QuantizeSetting(format: .nf4, embeddings: true)) {
            try ModelBundle(directory: work.appendingPathComponent("model"), on: .cpu).model
        }
        XCTAssertNotNil(loaded.quantizedOutputEmbedding)
        XCTAssertEqual(loaded.outputEmbedding.count, 0, "the f32 lm_head is gone")
        XCTAssertEqual(loaded.quantizedEmbeddings.count, 2, "untied: embed_tokens and lm_head")
        let base = try ModelBundle(directory: work.appendingPathComponent("model"), on: .cpu).model
        XCTAssertEqual(try base.loadAdapter(from: emb.out, trainable: false).rank,
                       try FineTuneConfigTests.tinyRun(in: work.appendingPathComponent("again")).lora.rank)
        var bad = try FineTuneConfigTests.tinyRun(in: work.appendingPathComponent("bad"))
        bad.quantizeEmbeddings = true
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("--quantize-embeddings"), "\($0)") }
    }

    /// A tied model with quantised embeddings computes what the same model computes with the
    /// dequantised table as an ordinary f32 weight: logits, and the loss with its gradients.
    func testTiedQuantisedTableEqualsItsDequantisedTensor() throws {
        let c = ModelConfig(vocabSize: 300, hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4, numKVHeads: 2,
                            maxPositions: 64, tieWordEmbeddings: true)
        let quantized = try QuantizeOnLoad.$setting.withValue(QuantizeSetting(format: .nf4, doubleQuant: true, embeddings: true)) {
            try LlamaModel(c, seed: 4, on: .cpu)
        }
        let reference = try QuantizeOnLoad.$setting.withValue(QuantizeSetting(format: .nf4, doubleQuant: true)) {
            try LlamaModel(c, seed: 4, on: .cpu)
        }
        let table = try XCTUnwrap(quantized.quantizedOutputEmbedding)
        XCTAssertEqual(quantized.quantizedEmbeddings.count, 1)
        XCTAssertEqual(quantized.embed.weight.count, 0)
        reference.embed.weight = try Tensor(table.dequantized(), shape: [300, 64])
        let ids = try Tensor(indices: (0..<24).map { Int32($0 * 37 % 300) }, shape: [2, 12])
        func assertClose(_ a: [Float], _ b: [Float], _ what: String) {
            XCTAssertEqual(a.count, b.count, what)
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 + 1e-4 * abs(y), what) }
        }
        assertClose(try quantized(ids).toArray(), try reference(ids).toArray(), "logits")
        // One token (decoding: the fused GEMV reads the head's blocks) and greedy generation.
        let one = try Tensor(indices: [17], shape: [1, 1])
        assertClose(try quantized(one).toArray(), try reference(one).toArray(), "logits of one token")
        let greedy = GenerationOptions(maxNewTokens: 6)
        XCTAssertEqual(try quantized.generate(prompt: [3, 99, 250], options: greedy).tokens,
                       try reference.generate(prompt: [3, 99, 250], options: greedy).tokens)
        var losses: [Float] = [], grads: [[Float]] = []
        for model in [quantized, reference] {
            let lora = try model.addLoRA(LoRAConfig(rank: 4, alpha: 8), seed: 2)
            let loss = try model.loss(ids, labels: (0..<24).map { Int32($0 * 11 % 300) })
            try loss.backward()
            losses.append(try loss.item())
            grads.append(try lora.flatMap { try XCTUnwrap($0.grad).toArray() })
        }
        XCTAssertEqual(losses[0], losses[1], accuracy: 1e-5)
        assertClose(grads[0], grads[1], "LoRA gradients")
        XCTAssertTrue(grads[0].contains { $0 != 0 })
    }

    /// The estimate's exact parts from the shapes: a Llama of C 64, I 128, 2 layers, V 64
    /// (tied: no), kv heads 2 of 4; nf4 projections, LoRA r 4 on all seven.
    func testMemoryEstimateCountsWeightsAndOptimizerState() throws {
        let (V, C, I, L, kv) = (64, 64, 128, 2, 32)
        let model = try LlamaModel(ModelConfig(vocabSize: V, hiddenSize: C, intermediateSize: I, numLayers: L, numHeads: 4,
                                               numKVHeads: 2, maxPositions: 64), seed: 1, on: .cpu)
        try model.addLoRA(LoRAConfig(rank: 4), seed: 1)
        try model.quantizeBase(.nf4)
        let projection = C * C + 2 * kv * C + C * C + 3 * C * I  // q, k, v, o, gate, up, down
        let blocks = L * (projection / 2 + 4 * projection / 64)
        let others = 4 * (2 * V * C + L * 2 * C + C)  // embeddings, lm_head, norms
        let lora = 4 * L * 4 * ((C + C) + (C + kv) + (C + kv) + (C + C) + 2 * (C + I) + (I + C))
        let e = MemoryEstimate(model: model, trainable: model.loraParameters.map(\.1), tokensPerMicroBatch: 64,
                               checkpointing: false)
        XCTAssertEqual(e.weightBytes, blocks + others + lora)
        XCTAssertEqual(e.optimizerBytes, 3 * lora)
        // What the backward keeps per layer and token (SavedActivationTests measures it).
        // And the head's logits: 64 rows of V at once at this size.
        XCTAssertEqual(e.activationBytes, 64 * L * (4 * C + 2 * kv + 2 * I + 4) * 4 + 64 * V * 4)
        let checkpointed = MemoryEstimate(model: model, trainable: model.loraParameters.map(\.1), tokensPerMicroBatch: 64, checkpointing: true)
        XCTAssertLessThan(checkpointed.activationBytes, e.activationBytes)
    }
}
