import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor

/// --grad-checkpoint: a block keeps only its input in the forward and is recomputed in the
/// backward. The reference is the same model without checkpointing: loss and every trainable
/// gradient agree to 1e-6, with LoRA (dropout on, so the recomputation must draw the same
/// masks) and full fine-tuning, one row per example and packed rows, on the CPU and OpenCL.
final class GradCheckpointTests: XCTestCase {
    enum Mode: String { case lora, full }

    func model(_ mode: Mode, on device: Device) throws -> (LlamaModel, [(String, Tensor)]) {
        let model = try LlamaModel(ModelConfig(vocabSize: 40, hiddenSize: 16, intermediateSize: 32, numLayers: 3, numHeads: 2,
                                               numKVHeads: 1, maxPositions: 64), seed: 3, on: device)
        switch mode {
        case .lora:
            try model.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0.25), seed: 3)
            // B away from zero so that A's gradients are not zero.
            for (name, t) in model.loraParameters where name.contains("lora_B") {
                var g = SplitMix64(seed: fnv1a64(name))
                try t.assign((0..<t.count).map { _ in 0.1 * (2 * g.nextFloat() - 1) })
            }
            return (model, model.loraParameters)
        case .full:
            model.setTrainable(true)
            return (model, model.namedParameters())
        }
    }

    /// The loss, the tape's length after the forward, and each trainable tensor's gradient.
    func run(_ mode: Mode, packed: Bool, checkpoint: Bool, on device: Device) throws
        -> (loss: Float, recorded: Int, grads: [(String, [Float])]) {
        let (model, trainable) = try model(mode, on: device)
        let (B, T) = (2, 12)
        var g = SplitMix64(seed: 11)
        let ids = (0..<(B * T)).map { _ in Int32(g.next() % 40) }
        let labels = ids.enumerated().map { $0.offset % 5 == 0 ? -100 : $0.element }
        var segments: AttentionSegments?
        var positions: Tensor?
        if packed {
            let lengths = [[5, 7], [4, 8]]
            segments = try AttentionSegments(lengths: lengths, rowLength: T, on: device)
            positions = try Tensor(indices: lengths.flatMap { $0.flatMap { (0..<$0).map(Int32.init) } }, shape: [B, T], on: device)
        }
        let context = TrainingContext(seed: 99)
        context.gradientCheckpointing = checkpoint
        let (loss, recorded) = try context.microBatch(7) {
            let loss = try model.loss(Tensor(indices: ids, shape: [B, T], on: device), labels: labels,
                                      segments: segments, positions: positions)
            return (loss, context.tape.count)
        }
        // The backward outside the micro-batch: the recomputation must bind its masks itself.
        try loss.backward()
        let lossValue = try loss.toArray()[0]
        let grads = try trainable.map { name, t in (name, try XCTUnwrap(t.grad, "\(name) has no gradient").toArray()) }
        return (lossValue, recorded, grads)
    }

    func check(_ mode: Mode, packed: Bool) throws {
        for device in testDevices() {
            let what = "\(mode.rawValue)\(packed ? " packed" : "") on \(device)"
            let plain = try run(mode, packed: packed, checkpoint: false, on: device)
            let checkpointed = try run(mode, packed: packed, checkpoint: true, on: device)
            XCTAssertLessThan(checkpointed.recorded, plain.recorded / 3, "\(what): the checkpointed forward records per block, not per op")
            XCTAssertEqual(checkpointed.loss, plain.loss, accuracy: 1e-6 * max(1, abs(plain.loss)), what)
            XCTAssertEqual(checkpointed.grads.map(\.0), plain.grads.map(\.0))
            for ((name, got), (_, want)) in zip(checkpointed.grads, plain.grads) {
                let scale = max(want.map(abs).max() ?? 0, 1e-3)
                XCTAssertGreaterThan(want.map(abs).max() ?? 0, 0, "\(what): \(name)'s gradient is zero: the test would not see it")
                let worst = zip(got, want).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-6 * scale, "\(what): \(name)")
            }
        }
    }

    func testLoRAWithDropoutEqualsTheRunWithoutCheckpointing() throws { try check(.lora, packed: false) }
    func testLoRAPackedEqualsTheRunWithoutCheckpointing() throws { try check(.lora, packed: true) }
    func testFullFineTuningEqualsTheRunWithoutCheckpointing() throws { try check(.full, packed: false) }
    func testFullFineTuningPackedEqualsTheRunWithoutCheckpointing() throws { try check(.full, packed: true) }

    /// The masks are the micro-batch's: a recomputation under another micro-batch index would
    /// draw others, and the loss under another index differs (dropout is really on).
    func testDropoutIsOnSoTheMaskReplayIsTested() throws {
        let (model, _) = try model(.lora, on: .cpu)
        let ids = try Tensor(indices: (0..<12).map { Int32($0 % 40) }, shape: [1, 12], on: .cpu)
        let labels = (0..<12).map { Int32($0 % 40) }
        let context = TrainingContext(seed: 99)
        let a = try context.microBatch(7) { try noGrad { try model.loss(ids, labels: labels).toArray()[0] } }
        let b = try context.microBatch(8) { try noGrad { try model.loss(ids, labels: labels).toArray()[0] } }
        XCTAssertNotEqual(a, b)
    }

    /// ModelFamilyTests' tiny config of each family.
    static func tinyConfig(_ architecture: Architecture) -> ModelConfig {
        ModelConfig(architecture: architecture, vocabSize: 37, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4,
                    numKVHeads: architecture == .gpt2 ? 4 : 2, maxPositions: 16, tieWordEmbeddings: architecture == .gpt2,
                    qkvBias: architecture == .qwen2 || architecture == .gpt2, outputBias: architecture == .gpt2,
                    mlpBias: architecture == .gpt2, bosTokenID: 1, eosTokenIDs: [2],
                    slidingWindow: architecture == .mistral || architecture == .phi3 ? 12 : nil)
    }

    /// Every registered family (rotary blocks and GPT-2's), full fine-tuning and LoRA with
    /// dropout on the CPU: loss and gradients with checkpointing equal those without.
    func testEveryFamilyEqualsTheRunWithoutCheckpointing() throws {
        for family in ModelFamily.decoders {
            for lora in [false, true] {
                func run(_ checkpoint: Bool) throws -> (Float, [[Float]], Int) {
                    let model = try makeModel(Self.tinyConfig(family.architecture), seed: 7, on: .cpu)
                    let trainable: [Tensor]
                    if lora {
                        try model.addLoRA(LoRAConfig(rank: 2, alpha: 4, dropout: 0.3, targetModules: model.defaultLoRATargets), seed: 7)
                        for (name, t) in model.loraParameters where name.contains("lora_B") {
                            var g = SplitMix64(seed: fnv1a64(name))
                            try t.assign((0..<t.count).map { _ in 0.1 * (2 * g.nextFloat() - 1) })
                        }
                        trainable = model.loraParameters.map { $0.1 }
                    } else {
                        model.setTrainable(true)
                        trainable = model.parameters
                    }
                    let ids: [Int32] = [3, 9, 1, 30, 7, 12, 5, 8]
                    let context = TrainingContext(seed: 5)
                    context.gradientCheckpointing = checkpoint
                    let loss = try context.microBatch(2) { try model.loss(Tensor(indices: ids, shape: [1, 8]), labels: ids) }
                    let recorded = context.tape.count
                    try loss.backward()
                    return (try loss.toArray()[0], try trainable.map { try XCTUnwrap($0.grad).toArray() }, recorded)
                }
                let (plainLoss, plainGrads, plainRecorded) = try run(false)
                let (loss, grads, recorded) = try run(true)
                let what = "\(family.architecture) \(lora ? "lora" : "full")"
                XCTAssertLessThan(recorded, plainRecorded / 3, "\(what): the blocks were checkpointed")
                XCTAssertEqual(loss, plainLoss, accuracy: 1e-6 * max(1, abs(plainLoss)), what)
                XCTAssertEqual(grads.count, plainGrads.count, what)
                for (got, want) in zip(grads, plainGrads) {
                    let scale = max(want.map(abs).max() ?? 0, 1e-3)
                    XCTAssertLessThanOrEqual(zip(got, want).map { abs($0 - $1) }.max() ?? 0, 1e-6 * scale, what)
                }
            }
        }
    }
}
