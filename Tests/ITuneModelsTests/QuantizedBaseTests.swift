import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor

/// --quantize (CPU path and OpenCL kernels): the quantised linear against f32 arithmetic on the
/// dequantised weight, OpenCL against the CPU, and a tiny Llama's loss with an nf4/int8 base.
final class QuantizedBaseTests: XCTestCase {
    func quantized(_ rows: Int, _ cols: Int, _ format: QuantFormat, seed: UInt64) throws -> BlockQuantizedMatrix {
        var g = SplitMix64(seed: seed)
        let w = (0..<(rows * cols)).map { _ in g.nextGaussian() * 0.05 }
        return try w.withUnsafeBufferPointer { try BlockQuantizedMatrix(quantizing: $0, rows: rows, cols: cols, format: format) }
    }

    /// The benchmarks' large random models: matrices made in bf16 a chunk of rows at a time
    /// (1.2M values: two chunks), N(0, 0.02) throughout, each chunk drawn anew, the same on
    /// every call; vectors as randomWeights makes them.
    func testRandomWeightsStoredAsBF16ChunkByChunk() throws {
        let source = randomWeights(seed: 7, storingMatricesAs: .bf16, on: .cpu)
        let w = try source("m.weight", [3000, 400], .weight)
        XCTAssertEqual(w.dtype, .bf16)
        XCTAssertEqual(w.shape, [3000, 400])
        let v = try w.toArray()
        XCTAssertEqual(v, try source("m.weight", [3000, 400], .weight).toArray())
        let std = (v.reduce(0) { $0 + Double($1 * $1) } / Double(v.count)).squareRoot()
        XCTAssertEqual(std, 0.02, accuracy: 0.0005)
        let secondChunk = 1_048_576 / 400 * 400
        XCTAssertNotEqual(Array(v[0..<400]), Array(v[secondChunk..<(secondChunk + 400)]), "each chunk draws its own values")
        XCTAssertEqual(try source("n.weight", [8], .normWeight).toArray(), [Float](repeating: 1, count: 8))
    }

    /// Forward and input gradient of the quantised linear equal x·Ŵᵀ and g·Ŵ with Ŵ the
    /// dequantised matrix as an f32 tensor, on every device.
    func testQuantizedLinearEqualsF32OfTheDequantisedWeightOnEveryDevice() throws {
        for device in testDevices() {
            for format in QuantFormat.allCases {
                let (N, K) = (70, 96)
                let q = try quantized(N, K, format, seed: 4)
                let xValues = (0..<(2 * 3 * K)).map { Float(($0 * 37) % 101) / 50 - 1 }
                let r = try Tensor((0..<(2 * 3 * N)).map { Float(($0 * 13) % 29) / 14 - 1 }, shape: [2, 3, N], on: device)
                let x = try Tensor(xValues, shape: [2, 3, K], on: device, requiresGrad: true)
                let y = try x.linear(quantized: q)
                try (y * r).sum().backward()
                let xRef = try Tensor(xValues, shape: [2, 3, K], on: device, requiresGrad: true)
                let yRef = try xRef.linear(Tensor(q.dequantized(), shape: [N, K], on: device))
                try (yRef * r).sum().backward()
                XCTAssertEqual(y.shape, [2, 3, N])
                let what = "\(format) on \(device)"
                XCTAssertLessThan(worstRelativeError(try y.toArray(), try yRef.toArray()), 1e-5, what)
                XCTAssertLessThan(worstRelativeError(try XCTUnwrap(x.grad).toArray(), try XCTUnwrap(xRef.grad).toArray()), 1e-5, what)
            }
        }
    }

    func model(on device: Device) throws -> LlamaModel {
        let model = try LlamaModel(ModelConfig(vocabSize: 64, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4,
                                               numKVHeads: 2, maxPositions: 64), seed: 8, on: device)
        try model.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0), seed: 8)
        for (name, t) in model.loraParameters where name.contains("lora_B") {
            var g = SplitMix64(seed: fnv1a64(name))
            try t.assign((0..<t.count).map { _ in 0.05 * (2 * g.nextFloat() - 1) })
        }
        return model
    }

    func loss(_ model: LlamaModel) throws -> (Float, [Float]) {
        let ids = (0..<32).map { Int32(($0 * 7 + 3) % 64) }
        let loss = try model.loss(Tensor(indices: ids, shape: [2, 16], on: model.device), labels: ids)
        try loss.backward()
        let grads = try model.loraParameters.flatMap { try XCTUnwrap($0.1.grad).toArray() }
        for (_, t) in model.loraParameters { t.zeroGrad() }
        return (try loss.toArray()[0], grads)
    }

    /// The quantised model's loss and LoRA gradients equal those of the same model whose f32
    /// weights are the dequantised values (1e-5); its loss is within the stated tolerance of
    /// the f32 base's (nf4 2e-3, int8 2e-4 relative, at weights of std 0.02 on this tiny model).
    func testTinyLlamaLossWithAQuantisedBase() throws {
        for device in testDevices() {
            let f32 = try model(on: device)
            let (reference, _) = try loss(f32)
            for (format, tolerance) in [(QuantFormat.nf4, Float(2e-3)), (.int8, 2e-4)] {
                let m = try model(on: device)
                let before = m.projections().reduce(0) { $0 + $1.weight.count }
                XCTAssertEqual(try m.quantizeBase(format), 14)
                XCTAssertEqual(m.projections().reduce(0) { $0 + $1.weight.count }, 0, "the f32 matrices are released")
                let bytes = m.projections().compactMap { ($0 as? Linear)?.quantizedWeight?.byteCount }.reduce(0, +)
                XCTAssertEqual(bytes, format == .nf4 ? before / 2 + 4 * before / 64 : before + 4 * before / 64)
                let (quantizedLoss, grads) = try loss(m)
                // The same model with the dequantised values as ordinary f32 weights.
                let d = try model(on: device)
                for (p, source) in zip(d.projections(), m.projections()) {
                    let q = try XCTUnwrap((source as? Linear)?.quantizedWeight)
                    p.weight = try Tensor(q.dequantized(), shape: [q.rows, q.cols], on: device)
                }
                let (dequantizedLoss, dequantizedGrads) = try loss(d)
                let what = "\(format) on \(device)"
                XCTAssertEqual(quantizedLoss, dequantizedLoss, accuracy: 1e-5 * dequantizedLoss, what)
                XCTAssertLessThan(worstRelativeError(grads, dequantizedGrads), 1e-4, what)
                XCTAssertNotEqual(quantizedLoss, reference, "\(what): quantisation changed nothing — the test would not see it")
                XCTAssertEqual(quantizedLoss, reference, accuracy: tolerance * reference, what)
            }
        }
    }

    /// GPT-2's Conv1D projections (weights stored (in, out)) quantise as their transposes: a tiny
    /// GPT-2 with an nf4 (double-quantised) or int8 base gives the loss and LoRA gradients of the
    /// same model whose Conv1D weights are the dequantised values transposed back, on every
    /// device, and its loss moved from the f32 base's by a little.
    func testGPT2Conv1DProjectionsQuantiseAsTheirTransposes() throws {
        let config = GradCheckpointTests.tinyConfig(.gpt2)
        func gpt2(on device: Device) throws -> any CausalLM {
            let model = try makeModel(config, seed: 8, on: device)
            try model.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0, targetModules: model.defaultLoRATargets), seed: 8)
            for (name, t) in model.loraParameters where name.contains("lora_B") {
                var g = SplitMix64(seed: fnv1a64(name))
                try t.assign((0..<t.count).map { _ in 0.05 * (2 * g.nextFloat() - 1) })
            }
            return model
        }
        func loss(_ model: any CausalLM) throws -> (Float, [Float]) {
            let ids = (0..<32).map { Int32(($0 * 7 + 3) % config.vocabSize) }
            let loss = try model.loss(Tensor(indices: ids, shape: [2, 16], on: model.device), labels: ids)
            try loss.backward()
            let grads = try model.loraParameters.flatMap { try XCTUnwrap($0.1.grad).toArray() }
            for (_, t) in model.loraParameters { t.zeroGrad() }
            return (try loss.toArray()[0], grads)
        }
        for device in testDevices() {
            let (reference, _) = try loss(try gpt2(on: device))
            for (format, dq) in [(QuantFormat.nf4, true), (.int8, false)] {
                let m = try gpt2(on: device)
                let shapes = m.projections().map { ($0.inFeatures, $0.outFeatures) }
                XCTAssertEqual(try m.quantizeBase(format, doubleQuant: dq), 4 * config.numLayers)
                XCTAssertEqual(m.projections().map { ($0.inFeatures, $0.outFeatures) }.map { "\($0)" }, shapes.map { "\($0)" })
                XCTAssertEqual(m.projections().reduce(0) { $0 + $1.weight.count }, 0, "the f32 matrices are released")
                let (quantizedLoss, grads) = try loss(m)
                let d = try gpt2(on: device)
                for (p, source) in zip(d.projections(), m.projections()) {
                    let q = try XCTUnwrap(source.quantizedWeight)
                    XCTAssertEqual([q.rows, q.cols], [p.outFeatures, p.inFeatures], "blocks of Wᵀ (out, in)")
                    let w = q.dequantized()
                    var t = [Float](repeating: 0, count: w.count)
                    for o in 0..<q.rows { for i in 0..<q.cols { t[i * q.rows + o] = w[o * q.cols + i] } }
                    p.weight = try Tensor(t, shape: [q.cols, q.rows], on: device)
                }
                let (dequantizedLoss, dequantizedGrads) = try loss(d)
                let what = "gpt2 \(format)\(dq ? "+dq" : "") on \(device)"
                XCTAssertEqual(quantizedLoss, dequantizedLoss, accuracy: 1e-5 * dequantizedLoss, what)
                XCTAssertLessThan(worstRelativeError(grads, dequantizedGrads), 1e-4, what)
                XCTAssertNotEqual(quantizedLoss, reference, "\(what): quantisation changed nothing — the test would not see it")
                XCTAssertEqual(quantizedLoss, reference, accuracy: 1e-2 * reference, what)
            }
        }
    }

    func testFullFineTuningBaseIsRefused() throws {
        let m = try LlamaModel(ModelConfig(vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numLayers: 1, numHeads: 2,
                                           numKVHeads: 1, maxPositions: 16), seed: 1, on: .cpu)
        m.setTrainable(true)
        assertRefused(try m.quantizeBase(.nf4), naming: "q_proj", "frozen base")
    }
}
