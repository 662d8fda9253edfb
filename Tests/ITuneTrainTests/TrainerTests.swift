import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

final class TrainerTests: XCTestCase {
    func testScheduleMatchesTransformers() {
        // transformers.get_{cosine,linear}_schedule_with_warmup(opt, 3, 10), lr 1e-3, per step.
        let cosine: [Float] = [0, 0.000333333333, 0.000666666667, 0.001, 0.000950484434, 0.000811744901,
                               0.000611260467, 0.000388739533, 0.000188255099, 4.9515566e-05]
        let linear: [Float] = [0, 0.000333333333, 0.000666666667, 0.001, 0.000857142857, 0.000714285714,
                               0.000571428571, 0.000428571429, 0.000285714286, 0.000142857143]
        for (decay, want) in [(LRSchedule.Decay.cosine, cosine), (.linear, linear)] {
            let s = LRSchedule(peak: 1e-3, warmupSteps: 3, totalSteps: 10, decay: decay)
            for step in 1...10 { XCTAssertEqual(s.rate(at: step), want[step - 1], accuracy: 1e-9, "\(decay) step \(step)") }
        }
    }

    static func model(seed: UInt64 = 1) throws -> LlamaModel {
        try LlamaModel(ModelConfig(vocabSize: 40, hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 2,
                                   numKVHeads: 1, maxPositions: 64), seed: seed, on: .cpu)
    }

    /// Rows of a learnable pattern (t+1 = t + 3 mod 37), loss on the second half of each.
    static func rows(_ n: Int, length: Int = 10, seed: UInt64 = 3) -> [TrainingRow] {
        var g = SplitMix64(seed: seed)
        return (0..<n).map { _ in
            let s = Int32(g.next() % 37)
            let ids = (0..<Int32(length)).map { (s + 3 * $0) % 37 + 1 }
            let labels = ids.enumerated().map { $0.offset < length / 2 ? Int32(-100) : $0.element }
            return TrainingRow(ids: ids, labels: labels)
        }
    }

    func tempDir(_ name: String) -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("itune-trainer-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: d)
        return d
    }

    func options(steps: Int) -> TrainerOptions {
        var o = TrainerOptions()
        o.batchSize = 4
        o.maxSteps = steps
        o.optimizer = AdamWConfig(learningRate: 1e-2, weightDecay: 0.01)
        o.warmupSteps = 1
        return o
    }

    func testResumeReproducesTheUninterruptedCurveExactly() throws {
        let data = Self.rows(24)
        let straightDir = tempDir("straight"), resumedDir = tempDir("resumed")
        defer { try? FileManager.default.removeItem(at: straightDir); try? FileManager.default.removeItem(at: resumedDir) }
        let m1 = try Self.model()
        let straight = try Trainer(model: m1, trainable: m1.namedParameters(), options: options(steps: 8), train: data,
                                   outputDirectory: straightDir).run()

        var o = options(steps: 8)
        o.saveEvery = 4
        let m2 = try Self.model()
        _ = try Trainer(model: m2, trainable: m2.namedParameters(), options: o, train: data, outputDirectory: resumedDir).run()
        // Interrupted after step 4: only that checkpoint survives.
        try FileManager.default.removeItem(at: resumedDir.appendingPathComponent("checkpoints/step-8"))
        let m3 = try Self.model(seed: 99)  // other weights: everything must come from the checkpoint
        var events: [String] = []
        let resumed = try Trainer(model: m3, trainable: m3.namedParameters(), options: o, train: data,
                                  outputDirectory: resumedDir).run(resume: true) { if case let .info(s) = $0 { events.append(s) } }
        XCTAssertTrue(events.contains { $0.contains("resumed from step 4") }, "\(events)")
        XCTAssertEqual(resumed.history.map(\.0), Array(1...8))
        XCTAssertEqual(resumed.history.map(\.1), straight.history.map(\.1), "same curve, bit for bit")
        let m1w = try m1.parameters.map { try $0.toArray() }, m3w = try m3.parameters.map { try $0.toArray() }
        XCTAssertEqual(m1w, m3w)
        let lines = try String(contentsOf: resumedDir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        XCTAssertEqual(lines.count, 8, "metrics.jsonl holds one curve after the resume")
        XCTAssertTrue(FileManager.default.fileExists(atPath: resumedDir.appendingPathComponent("loss_curve.svg").path))
    }

    func testGradientAccumulationEqualsTheLargerBatch() throws {
        let data = Self.rows(16)
        var a = options(steps: 4), b = options(steps: 4)
        a.batchSize = 4
        b.batchSize = 2
        b.gradientAccumulation = 2
        let ma = try Self.model(), mb = try Self.model()
        let da = tempDir("acc-a"), db = tempDir("acc-b")
        defer { try? FileManager.default.removeItem(at: da); try? FileManager.default.removeItem(at: db) }
        // The same rows per step: batch 4 takes rows of one permutation; 2×2 takes the same.
        let ra = try Trainer(model: ma, trainable: ma.namedParameters(), options: a, train: data, outputDirectory: da).run()
        let rb = try Trainer(model: mb, trainable: mb.namedParameters(), options: b, train: data, outputDirectory: db).run()
        for (x, y) in zip(ra.history, rb.history) { XCTAssertEqual(x.1, y.1, accuracy: 1e-5 * max(1, abs(x.1))) }
    }

    func testLoRATrainingLowersTheLossAndLeavesTheBaseUntouched() throws {
        // A frozen base at std 0.02 pins the logits near zero whatever the adapters do; a base
        // with larger weights stands in for a pretrained one.
        let model = try LlamaModel(Self.model().config, on: .cpu, from: randomWeights(seed: 1, std: 0.3, on: .cpu))
        let base = try model.parameters.map { try $0.toArray() }
        let params = try model.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0.05), seed: 2)
        let adapters = zip(model.loraAdapters.flatMap { [$0.peftNames.a, $0.peftNames.b] }, params).map { ($0, $1) }
        var o = options(steps: 60)
        o.optimizer.learningRate = 3e-2
        let dir = tempDir("lora")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try Trainer(model: model, trainable: adapters, options: o, train: Self.rows(32), validation: Self.rows(4, seed: 9),
                            outputDirectory: dir).run()
        let losses = r.history.map(\.1)
        let (head, tail) = (losses.prefix(5).reduce(0, +) / 5, losses.suffix(5).reduce(0, +) / 5)
        XCTAssertLessThan(tail, head * 0.85, "\(losses)")
        XCTAssertNotNil(r.validationLoss)
        XCTAssertEqual(try model.parameters.map { try $0.toArray() }, base)
    }

    func testPackedRowsScoreLikeTheExamplesAlone() throws {
        let model = try Self.model()
        let rows = Self.rows(2, length: 6)
        let dir = tempDir("pack")
        defer { try? FileManager.default.removeItem(at: dir) }
        let trainer = try Trainer(model: model, trainable: [], options: options(steps: 1), train: rows, outputDirectory: dir)
        let alone = try noGrad { try trainer.batchLoss([rows[0]]).item() + trainer.batchLoss([rows[1]]).item() } / 2
        let packedRow = TrainingRow(ids: rows[0].ids + rows[1].ids, labels: rows[0].labels + rows[1].labels, lengths: [6, 6])
        let packed = try noGrad { try trainer.batchLoss([packedRow]).item() }
        XCTAssertEqual(packed, alone, accuracy: 1e-5)
    }
}
