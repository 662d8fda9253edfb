import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// "A GPU step is one stream" (DESIGN.md) as a test: a tiny Llama trained by `Trainer` on the
/// OpenCL device (PoCL in CI), LoRA and full, with the runtime's counters taken at every step
/// event. After warm-up a step makes no new buffer, uploads only its batch's own bytes, and
/// waits for the device once (the read of the gradient norm and the step's losses).
final class StepBudgetTests: XCTestCase {
    static let config = ModelConfig(vocabSize: 40, hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 2,
                                    numKVHeads: 1, maxPositions: 64)

    /// What each optimizer step did on `device` (element k: step k + 2; the first step, which
    /// builds kernels and fills the pools, is not a steady state), and the trainer that ran.
    func stepCounters(lora: Bool, accumulation: Int = 1, steps: Int = 4, on device: Device,
                      name: String = #function) throws -> (perStep: [DeviceCounters], trainer: Trainer) {
        let model = try LlamaModel(Self.config, seed: 1, on: device)
        let trainable: [(String, Tensor)]
        if lora {
            try model.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0), seed: 2)
            trainable = model.loraParameters
        } else {
            trainable = model.namedParameters()
        }
        var o = TrainerFixtures.options(steps: steps)
        o.gradientAccumulation = accumulation
        let dir = TrainerFixtures.directory(name)
        defer { try? FileManager.default.removeItem(at: dir) }
        let trainer = try Trainer(model: model, trainable: trainable, options: o, train: TrainerFixtures.rows(32),
                                  outputDirectory: dir)
        let backend = try device.backend()
        var marks: [DeviceCounters] = []
        _ = try trainer.run { event in if case .step = event { marks.append(backend.counters) } }
        XCTAssertEqual(marks.count, steps)
        let perStep = zip(marks.dropFirst(), marks).map { $0.since($1) }
        for (k, c) in perStep.enumerated() {
            print("[step-budget] \(lora ? "lora" : "full") accumulation \(accumulation) step \(k + 2): syncs \(c.blockingSyncs), up \(c.bytesUploaded) B, down \(c.bytesDownloaded) B, launches \(c.totalLaunches), new buffers \(c.newBuffers)")
        }
        return (perStep, trainer)
    }

    /// The bytes a micro-batch of `rows` is made of on the device: ids, targets and positions
    /// (i32 each), and under full fine-tuning the embedding backward's grouping of the ids
    /// (distinct ids, their CSR offsets, the positions of each).
    func batchBytes(_ rows: [TrainingRow], full: Bool) -> Int {
        let T = rows.map(\.ids.count).max() ?? 0
        var bytes = (2 * rows.count * T + T) * 4
        if full {
            let distinct = Set(rows.flatMap(\.ids)).count
            bytes += (distinct + (distinct + 1) + rows.count * T) * 4
        }
        return bytes
    }

    func assertBudget(lora: Bool, accumulation: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let device = try TrainerFixtures.openCLDevice()
        let (perStep, trainer) = try stepCounters(lora: lora, accumulation: accumulation, on: device)
        for (k, c) in perStep.enumerated() {
            let step = k + 2
            let micro = (0..<accumulation).map { (step - 1) * accumulation + $0 }
            let want = micro.reduce(0) { $0 + batchBytes(trainer.rows(ofMicroBatch: $1), full: !lora) }
            XCTAssertLessThanOrEqual(c.blockingSyncs, 1, "step \(step): at most one blocking sync", file: file, line: line)
            XCTAssertEqual(c.bytesUploaded, want, "step \(step): uploads are the batch's own bytes", file: file, line: line)
            // One read: the gradient norm's per-tensor sums and the step's losses, as floats.
            let sums = trainer.optimizer.parameters.count + accumulation
            XCTAssertEqual(c.bytesDownloaded, sums * 4, "step \(step): one read of the norm's sums and the losses",
                           file: file, line: line)
            if step > 2 { XCTAssertEqual(c.newBuffers, 0, "step \(step): no new buffer after the second", file: file, line: line) }
            XCTAssertGreaterThan(c.totalLaunches, 0, file: file, line: line)
        }
        // Every step launches the same kernels the same number of times.
        XCTAssertEqual(Set(perStep.map(\.launches)).count, 1, "\(perStep.map(\.launches))", file: file, line: line)
    }

    func testLoRAStepOnOpenCLWaitsOnceUploadsItsBatchAndAllocatesNothing() throws {
        try assertBudget(lora: true, accumulation: 1)
    }

    func testFullStepOnOpenCLWaitsOnceUploadsItsBatchAndAllocatesNothing() throws {
        try assertBudget(lora: false, accumulation: 1)
    }

    func testAccumulatedLoRAStepStillWaitsOnce() throws {
        try assertBudget(lora: true, accumulation: 2)
    }
}
