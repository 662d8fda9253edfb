import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// "A GPU step is one stream" (DESIGN.md) as a test: a tiny Llama trained by `Trainer` on the
/// OpenCL device (PoCL in CI), LoRA and full, with the runtime's counters taken at every step
/// event. After warm-up a step makes no new buffer, uploads only its batch's own bytes, and
/// waits for the device once (the read of the step's loss and gradient norm), or once per N
/// steps with --log-every N: clipping and the divergence check stay on the device.
final class StepBudgetTests: XCTestCase {
    static let config = ModelConfig(vocabSize: 40, hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 2,
                                    numKVHeads: 1, maxPositions: 64)

    /// What each window of `logEvery` optimizer steps did on `device` (element k: steps
    /// (k + 1)·logEvery + 1 … (k + 2)·logEvery; the first window, whose first step builds kernels
    /// and fills the pools, is not a steady state), and the trainer that ran.
    func stepCounters(lora: Bool, accumulation: Int = 1, steps: Int = 4, logEvery: Int = 1, quantize: QuantFormat? = nil,
                      on device: Device, name: String = #function) throws -> (perStep: [DeviceCounters], trainer: Trainer) {
        let model = try LlamaModel(Self.config, seed: 1, on: device)
        let trainable: [(String, Tensor)]
        if lora {
            try model.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0), seed: 2)
            trainable = model.loraParameters
            if let quantize { try model.quantizeBase(quantize) }
        } else {
            trainable = model.namedParameters()
        }
        var o = TrainerFixtures.options(steps: steps)
        o.gradientAccumulation = accumulation
        o.logEvery = logEvery
        let dir = TrainerFixtures.directory(name)
        defer { try? FileManager.default.removeItem(at: dir) }
        let trainer = try Trainer(model: model, trainable: trainable, options: o, train: TrainerFixtures.rows(32),
                                  outputDirectory: dir)
        let backend = try device.backend()
        var marks: [DeviceCounters] = []
        _ = try trainer.run { event in if case .step = event { marks.append(backend.counters) } }
        XCTAssertEqual(marks.count, steps / logEvery, "one progress event per \(logEvery) steps")
        let perStep = zip(marks.dropFirst(), marks).map { $0.since($1) }
        for (k, c) in perStep.enumerated() {
            print("[step-budget] \(lora ? "lora" : "full")\(quantize.map { " " + $0.rawValue } ?? "") accumulation \(accumulation) log-every \(logEvery) window \(k + 2): syncs \(c.blockingSyncs), up \(c.bytesUploaded) B, down \(c.bytesDownloaded) B, launches \(c.totalLaunches), new buffers \(c.newBuffers)")
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

    func assertBudget(lora: Bool, accumulation: Int, logEvery: Int = 1, quantize: QuantFormat? = nil,
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let device = try TrainerFixtures.openCLDevice()
        let (perStep, trainer) = try stepCounters(lora: lora, accumulation: accumulation, steps: 4 * logEvery, logEvery: logEvery,
                                                  quantize: quantize, on: device)
        for (k, c) in perStep.enumerated() {
            let steps = ((k + 1) * logEvery + 1)...((k + 2) * logEvery)
            let micro = steps.flatMap { step in (0..<accumulation).map { (step - 1) * accumulation + $0 } }
            let want = micro.reduce(0) { $0 + batchBytes(trainer.rows(ofMicroBatch: $1), full: !lora) }
            XCTAssertLessThanOrEqual(c.blockingSyncs, 1, "steps \(steps): at most one blocking sync", file: file, line: line)
            XCTAssertEqual(c.bytesUploaded, want, "steps \(steps): uploads are the batches' own bytes", file: file, line: line)
            // One read: the step control's header and one record (loss, norm, skipped) per step.
            XCTAssertEqual(c.bytesDownloaded, (StepControl.headerCount + StepControl.recordWidth * logEvery) * 4,
                           "steps \(steps): one read of the steps' records", file: file, line: line)
            if steps.lowerBound > 2 {
                XCTAssertEqual(c.newBuffers, 0, "steps \(steps): no new buffer after the second step", file: file, line: line)
            }
            XCTAssertGreaterThan(c.totalLaunches, 0, file: file, line: line)
        }
        if let quantize {
            // The products read the blocks on the device (the own kernels' _quant entry points).
            XCTAssertTrue(perStep.allSatisfy { $0.launches.keys.contains { $0.hasSuffix("_quant") } },
                          "\(quantize): \(perStep.map(\.launches))", file: file, line: line)
        }
        // Every step launches the same kernels the same number of times.
        XCTAssertEqual(Set(perStep.map(\.launches)).count, 1, "\(perStep.map(\.launches))", file: file, line: line)
    }

    func testLoRAStepOnOpenCLWaitsOnceUploadsItsBatchAndAllocatesNothing() throws {
        try assertBudget(lora: true, accumulation: 1)
    }

    /// An nf4 base (--quantize nf4): its blocks went up once, when quantised on the device; the
    /// steps' products read them there, so a step uploads its batch and nothing else.
    func testLoRAStepOnAnNF4BaseOnOpenCLUploadsOnlyItsBatch() throws {
        try assertBudget(lora: true, accumulation: 1, quantize: .nf4)
    }

    func testFullStepOnOpenCLWaitsOnceUploadsItsBatchAndAllocatesNothing() throws {
        try assertBudget(lora: false, accumulation: 1)
    }

    func testAccumulatedLoRAStepStillWaitsOnce() throws {
        try assertBudget(lora: true, accumulation: 2)
    }

    /// --log-every 4: one blocking synchronisation per four optimizer steps (0.25 per step).
    func testLoRAStepsWithLogEvery4WaitOncePerFourSteps() throws {
        try assertBudget(lora: true, accumulation: 1, logEvery: 4)
    }

    func testFullStepsWithLogEvery4WaitOncePerFourSteps() throws {
        try assertBudget(lora: false, accumulation: 1, logEvery: 4)
    }
}
