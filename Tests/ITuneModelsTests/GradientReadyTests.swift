import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor

/// `backward(watching:final:)`, the signal a data-parallel trainer starts a gradient bucket's
/// allreduce from: for every trainable tensor it fires exactly once, at a moment when the
/// gradient already holds its final value (a copy taken in the hook equals the gradient after
/// the whole backward, bit for bit), and for most tensors before the backward ends (the last
/// layer's before the first layer's). Checked with LoRA and full fine-tuning, tied
/// embeddings, gradient checkpointing, packed rows and two accumulated micro-batches, on the
/// CPU path and OpenCL. The gradients themselves are those of a plain backward.
final class GradientReadyTests: XCTestCase {
    struct Case {
        var lora = false
        var tied = false
        var packed = false
        var checkpoint = false
        var microBatches = 1
    }

    func model(_ c: Case, on device: Device) throws -> (LlamaModel, [(String, Tensor)]) {
        let model = try LlamaModel(ModelConfig(vocabSize: 40, hiddenSize: 16, intermediateSize: 32, numLayers: 3, numHeads: 2,
                                               numKVHeads: 1, maxPositions: 64, tieWordEmbeddings: c.tied), seed: 5, on: device)
        guard c.lora else {
            model.setTrainable(true)
            return (model, model.namedParameters())
        }
        try model.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0.25), seed: 5)
        // B away from zero so that A's gradients are not zero.
        for (name, t) in model.loraParameters where name.contains("lora_B") {
            var g = SplitMix64(seed: fnv1a64(name))
            try t.assign((0..<t.count).map { _ in 0.1 * (2 * g.nextFloat() - 1) })
        }
        return (model, model.loraParameters)
    }

    struct Run {
        var names: [String]
        var grads: [[Float]]
        /// Per tensor: how often the hook fired, the gradient it saw, and its place in the order.
        var fired: [Int]
        var seen: [[Float]?]
        var order: [Int]
        /// How many tensors had no gradient yet when the hook first fired.
        var missingAtFirst: Int
    }

    func run(_ c: Case, hooked: Bool, on device: Device) throws -> Run {
        let (model, trainable) = try model(c, on: device)
        let tensors = trainable.map(\.1)
        let (B, T) = (2, 12)
        let context = TrainingContext(seed: 99)
        context.gradientCheckpointing = c.checkpoint
        var r = Run(names: trainable.map(\.0), grads: [], fired: Array(repeating: 0, count: tensors.count),
                    seen: Array(repeating: nil, count: tensors.count), order: [], missingAtFirst: -1)
        for micro in 0..<c.microBatches {
            var g = SplitMix64(seed: 11 &+ UInt64(micro))
            let ids = (0..<(B * T)).map { _ in Int32(g.next() % 40) }
            let labels = ids.enumerated().map { $0.offset % 5 == 0 ? -100 : $0.element }
            var segments: AttentionSegments?
            var positions: Tensor?
            if c.packed {
                let lengths = [[5, 7], [4, 8]]
                segments = try AttentionSegments(lengths: lengths, rowLength: T, on: device)
                positions = try Tensor(indices: lengths.flatMap { $0.flatMap { (0..<$0).map(Int32.init) } }, shape: [B, T], on: device)
            }
            try context.microBatch(micro) {
                let loss = try model.loss(Tensor(indices: ids, shape: [B, T], on: device), labels: labels,
                                          segments: segments, positions: positions)
                guard hooked, micro == c.microBatches - 1 else { return try loss.backward() }
                try loss.backward(watching: tensors) { i in
                    if r.missingAtFirst < 0 { r.missingAtFirst = tensors.filter { $0.grad == nil }.count }
                    r.fired[i] += 1
                    r.order.append(i)
                    r.seen[i] = try tensors[i].grad?.toArray()
                }
            }
        }
        r.grads = try trainable.map { name, t in try XCTUnwrap(t.grad, "\(name) has no gradient").toArray() }
        return r
    }

    func check(_ c: Case, file: StaticString = #filePath, line: UInt = #line) throws {
        for device in testDevices() {
            let what = "\(c) on \(device)"
            let plain = try run(c, hooked: false, on: device)
            let hooked = try run(c, hooked: true, on: device)
            XCTAssertEqual(hooked.fired, Array(repeating: 1, count: hooked.names.count), "\(what): once per tensor", file: file, line: line)
            for (i, name) in hooked.names.enumerated() {
                XCTAssertGreaterThan(plain.grads[i].map(abs).max() ?? 0, 0, "\(what): \(name)'s gradient is zero: the test would not see it",
                                     file: file, line: line)
                XCTAssertEqual(hooked.seen[i], hooked.grads[i], "\(what): \(name) changed after its hook fired", file: file, line: line)
                let scale = max(plain.grads[i].map(abs).max() ?? 0, 1e-3)
                let worst = zip(hooked.grads[i], plain.grads[i]).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-6 * scale, "\(what): \(name) differs from a plain backward", file: file, line: line)
            }
            // Early: the last layer's tensors fire before the first layer's, the embedding
            // (read first in the forward, and by the tied head last) fires last.
            func places(_ part: String) -> [Int] {
                hooked.order.enumerated().filter { hooked.names[$0.element].contains(part) }.map(\.offset)
            }
            XCTAssertLessThan(places("layers.2.").max() ?? .max, places("layers.0.").min() ?? -1, "\(what): order \(hooked.order)",
                              file: file, line: line)
            if !c.lora {
                XCTAssertEqual(places("embed_tokens"), [hooked.order.count - 1], "\(what): the embedding is final last", file: file, line: line)
            }
            if c.microBatches == 1 {
                XCTAssertGreaterThan(hooked.missingAtFirst, hooked.names.count / 2, "\(what): the first hook fired late",
                                     file: file, line: line)
            }
        }
    }

    func testLoRAFiresOncePerTensorWithItsFinalGradient() throws { try check(Case(lora: true)) }
    func testFullFineTuningFiresOncePerTensorWithItsFinalGradient() throws { try check(Case()) }
    func testTiedEmbeddingsAreFinalOnlyAtTheEnd() throws { try check(Case(tied: true)) }
    func testPackedRows() throws { try check(Case(lora: true, packed: true)) }
    func testCheckpointedBlocksAreFinalAfterTheirRecomputation() throws {
        try check(Case(lora: true, checkpoint: true))
        try check(Case(tied: true, packed: true, checkpoint: true))
    }
    func testAccumulatedMicroBatchesFireOnTheLastBackward() throws { try check(Case(lora: true, microBatches: 2)) }

    /// A leaf the tape never reads is final at once; one read twice is final after its first
    /// (earliest) use; a leaf listed twice fires for both places.
    func testLeavesReadTwiceOrNeverOnATinyGraph() throws {
        let w = try Tensor([1, 2, 3], shape: [3], on: .cpu), v = try Tensor([0.5, -1, 2], shape: [3], on: .cpu)
        let unused = try Tensor([7], shape: [1], on: .cpu)
        for t in [w, v, unused] { t.requiresGrad = true }
        let x = try Tensor([2, 3, 4], shape: [3], on: .cpu)
        let h = try x * w            // w read first…
        let y = try (h * v + w).sum() // …and again, after v
        var events: [String] = []
        try y.backward(watching: [w, v, unused, w]) { i in
            events.append(["w", "v", "unused", "w"][i] + "=" + ((try [w, v, unused, w][i].grad?.toArray()).map { "\($0)" } ?? "nil"))
        }
        // dy/dv = x·w = [2, 6, 12]; dy/dw = x·v + 1 = [2, -2, 9].
        XCTAssertEqual(events, ["unused=nil", "v=[2.0, 6.0, 12.0]", "w=[2.0, -2.0, 9.0]", "w=[2.0, -2.0, 9.0]"])
    }
}
