import Foundation
import XCTest
@testable import ITuneModels
@testable import ITuneTensor

/// What a LoRA step keeps between its forward and its backward (issue 14's memory goal): the
/// tape holds no tensor, a frozen weight's product keeps the weight and not its input, and a
/// norm's output, SwiGLU's output and LoRA's dropout are made again in the backward from values
/// kept anyway. The budget is counted from the model's shapes; the gradients are those of the
/// path that keeps every value (the same bits: the recomputation runs the same kernels).
final class SavedActivationTests: XCTestCase {
    // B·T = 128 rows; C 64, KV 32 (2 heads of 16 against 4), I 128, r 4: every kept tensor a
    // whole number of pool size classes, so the count below is exact up to a few small buffers.
    let config = ModelConfig(vocabSize: 96, hiddenSize: 64, intermediateSize: 128, numLayers: 3, numHeads: 4,
                             numKVHeads: 2, maxPositions: 128)
    let (B, T, rank) = (2, 64, 4)

    func loraModel(on device: Device, dropout: Float) throws -> LlamaModel {
        let model = try LlamaModel(config, seed: 5, on: device)
        try model.addLoRA(LoRAConfig(rank: rank, alpha: 8, dropout: dropout), seed: 5)
        // B away from zero so that A's gradients (which read the recomputed inputs) are not zero.
        for (name, t) in model.loraParameters where name.contains("lora_B") {
            var g = SplitMix64(seed: fnv1a64(name))
            try t.assign((0..<t.count).map { _ in 0.1 * (2 * g.nextFloat() - 1) })
        }
        return model
    }

    func batch(on device: Device) throws -> (ids: Tensor, labels: [Int32]) {
        var g = SplitMix64(seed: 17)
        let ids = (0..<(B * T)).map { _ in Int32(g.next() % UInt64(config.vocabSize)) }
        return (try Tensor(indices: ids, shape: [B, T], on: device), ids.enumerated().map { $0.offset % 7 == 0 ? -100 : $0.element })
    }

    /// Bytes the backward of one LoRA forward needs, from the shapes: per layer the block input
    /// and the residual after attention (the norms' inputs) with a row statistic each, q and k
    /// after RoPE, v, the attention output and its logsumexp (H per row), gate and up (SwiGLU's
    /// inputs), and each adapter's A·x (r per row); then the last block's output (the final
    /// norm's input) and the hidden state's gradient that the fused head and loss made in the
    /// forward. Not kept: the norms' outputs, the adapters' dropped-out inputs, SwiGLU's output,
    /// the base projections' outputs and inputs, every sum.
    func expectedSavedBytes() -> Int {
        let c = config, N = B * T
        let kv = c.numKVHeads * c.headDim
        let perLayer = 4 * c.hiddenSize + 2 * kv + 2 * c.intermediateSize + 7 * rank + c.numHeads + 2
        return 4 * N * (c.numLayers * perLayer + 2 * c.hiddenSize + 1)
    }

    /// Bytes a forward leaves alive on the device: the backend's use with its pool emptied,
    /// after the forward less before it.
    func liveBytesAfterForward(_ model: LlamaModel, on device: Device) throws -> (bytes: Int, loss: Tensor) {
        let backend = try device.backend()
        let (ids, labels) = try batch(on: device)
        let context = TrainingContext(seed: 9)
        try backend.synchronize()
        backend.releaseCachedBuffers()
        let before = backend.bytesInUse
        let loss = try context.microBatch(0) { try model.loss(ids, labels: labels) }
        try backend.synchronize()
        backend.releaseCachedBuffers()
        return (backend.bytesInUse - before, loss)
    }

    func testLoRAForwardKeepsOnlyWhatItsBackwardReads() throws {
        for device in testDevices() {
            let model = try loraModel(on: device, dropout: 0.1)
            let (live, loss) = try liveBytesAfterForward(model, on: device)
            let expected = expectedSavedBytes()
            print("[saved] \(device): forward keeps \(live) bytes, counted \(expected)")
            // A few buffers below the granule (the loss, positions, row statistics' rounding).
            XCTAssertLessThanOrEqual(live, expected + expected / 20 + 8192, "\(device): the forward keeps \(live) bytes, the backward needs \(expected)")
            XCTAssertGreaterThanOrEqual(live, expected * 9 / 10, "\(device): \(live) bytes kept, fewer than the backward reads (\(expected)): is the budget still counted right?")
            // Keeping every recorded op's output and input (the tape before) came to over 3 times as much.
            // (The forward's context, and its tape, ended with liveBytesAfterForward: no backward here.)
            _ = loss
        }
    }

    /// The loss and every adapter gradient with recomputation and with every value kept.
    func lossAndGradients(recompute: Bool, dropout: Float, on device: Device) throws -> (Float, [(String, [Float])]) {
        try GradientTape.$recomputesKeptValues.withValue(recompute) {
            let model = try loraModel(on: device, dropout: dropout)
            let (ids, labels) = try batch(on: device)
            let context = TrainingContext(seed: 9)
            let loss = try context.microBatch(3) { try model.loss(ids, labels: labels) }
            try context.microBatch(3) { try loss.backward() }
            return (try loss.item(), try model.loraParameters.map { name, t in (name, try XCTUnwrap(t.grad, name).toArray()) })
        }
    }

    func testRecomputedValuesGiveTheGradientsOfKeptValues() throws {
        for device in testDevices() {
            for dropout: Float in [0, 0.1] {
                let what = "\(device), LoRA dropout \(dropout)"
                let kept = try lossAndGradients(recompute: false, dropout: dropout, on: device)
                let recomputed = try lossAndGradients(recompute: true, dropout: dropout, on: device)
                XCTAssertEqual(recomputed.0, kept.0, accuracy: 1e-6 * max(1, abs(kept.0)), what)
                XCTAssertEqual(recomputed.1.map(\.0), kept.1.map(\.0))
                for ((name, got), (_, want)) in zip(recomputed.1, kept.1) {
                    let scale = want.map(abs).max() ?? 0
                    XCTAssertGreaterThan(scale, 0, "\(what): \(name)'s gradient is zero: the test would not see it")
                    let worst = zip(got, want).map { abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThanOrEqual(worst, 1e-6 * scale, "\(what): \(name)")
                }
            }
        }
    }
}
