import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor

/// Generation with the matrices kept 16-bit (as a bf16 or f16 checkpoint stores them) gives
/// what f32 matrices holding the same values give: decoding reads them through the CPU's
/// 16-bit GEMV, longer prompts through the converting GEMM paths.
final class HalfWeightGenerationTests: XCTestCase {
    /// A tiny Qwen2: tied embeddings (the head reads the embedding table), q/k/v biases, the
    /// MLP's inner size no multiple of 8 (the GEMV's tail). Weights of std 0.2 make the greedy
    /// choices clear.
    let config = ModelConfig(architecture: .qwen2, vocabSize: 301, hiddenSize: 72, intermediateSize: 100, numLayers: 2,
                             numHeads: 6, numKVHeads: 2, maxPositions: 128, tieWordEmbeddings: true, qkvBias: true)

    func models(_ format: DType, halfOn device: Device = .cpu) throws -> (half: any CausalLM, full: any CausalLM) {
        let half = storingMatrices(as: format, randomWeights(seed: 3, std: 0.2, on: .cpu))
        let full: WeightSource = { name, shape, role in
            let t = try half(name, shape, role)
            return t.dtype == .f32 ? t : try noGrad { try t.converted(to: .f32) }
        }
        let halfOnDevice: WeightSource = { name, shape, role in try half(name, shape, role).to(device) }
        return (try makeModel(config, on: device, from: halfOnDevice), try makeModel(config, on: .cpu, from: full))
    }

    /// Decoding's head runs on each row's last position only (`lastLogits`): the last position's
    /// logits of the full (B, T, V) product, for a prompt (T > 1), a cached step (T 1), rows of a
    /// batch, an f32 head and a 16-bit one.
    func testLastLogitsAreTheLastPositionsOfTheFullLogits() throws {
        for format in [DType.f32, .bf16] {
            let (half, full) = try models(.bf16)
            let model = format == .f32 ? full : half
            for (B, T) in [(1, 9), (3, 6), (2, 1)] {
                let ids = try Tensor(indices: (0..<(B * T)).map { Int32(($0 * 53 + 7) % config.vocabSize) }, shape: [B, T])
                let (whole, last) = try noGrad {
                    (try model.logits(ids, positions: nil, cache: nil, segments: nil).toArray(),
                     try model.lastLogits(ids, positions: nil, cache: nil, segments: nil))
                }
                let V = config.vocabSize
                XCTAssertEqual(last.shape, [B, V])
                var want: [Float] = []
                for b in 0..<B {
                    let end = (b + 1) * T * V
                    want += whole[(end - V)..<end]
                }
                XCTAssertLessThan(worstRelativeError(try last.toArray(), want), 1e-5, "\(format) B \(B) T \(T)")
            }
        }
    }

    func testGreedyTokensWith16BitMatricesEqualThoseOfTheF32OfTheSameValues() throws {
        for format in [DType.bf16, .f16] {
            let (half, full) = try models(format)
            for (name, t) in half.namedParameters() {
                XCTAssertEqual(t.dtype, t.rank == 2 ? format : .f32, "\(format) \(name)")
            }
            let prompt: [Int32] = [5, 77, 300, 12, 0, 41]
            let options = GenerationOptions(maxNewTokens: 40)
            let a = try half.generate(prompt: prompt, options: options).tokens
            let b = try full.generate(prompt: prompt, options: options).tokens
            XCTAssertEqual(a.count, 40)
            XCTAssertEqual(a, b, "\(format) greedy tokens")
            XCTAssertGreaterThan(Set(a).count, 5, "\(format): the tokens should vary for the comparison to mean something")

            // The logits themselves, with as many rows as decoding (1), a KV-cached step of a small
            // batch (≤ 8: the GEMV), the few-row paths (≤ 32) and the packed GEMM (> 32).
            for T in [1, 7, 12, 40] {
                let ids = try Tensor(indices: (0..<T).map { Int32(($0 * 37 + 11) % config.vocabSize) }, shape: [1, T])
                let y16 = try noGrad { try half(ids) }.toArray()
                let y32 = try noGrad { try full(ids) }.toArray()
                XCTAssertLessThan(worstRelativeError(y16, y32), 1e-5, "\(format) logits T \(T)")
            }
        }
    }

    func testOpenCLGreedyTokensWith16BitMatricesEqualTheCPUsWithF32() throws {
        // OpenCL reads the 16-bit matrices in its own GEMM kernels (the thin-output one for
        // decoding); the CPU path with f32 matrices of the same values is the reference.
        guard let cl = testDevices().first(where: { $0 != .cpu }) else { throw XCTSkip("no OpenCL device") }
        let (half, full) = try models(.bf16, halfOn: cl)
        let prompt: [Int32] = [5, 77, 300, 12, 0, 41]
        let options = GenerationOptions(maxNewTokens: 24)
        XCTAssertEqual(try half.generate(prompt: prompt, options: options).tokens,
                       try full.generate(prompt: prompt, options: options).tokens, "bf16 on \(cl) vs f32 on the CPU")
    }
}
