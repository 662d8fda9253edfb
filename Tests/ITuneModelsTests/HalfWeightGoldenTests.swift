import Foundation
import XCTest
@testable import ITuneModels
@testable import ITuneTensor

/// Models whose matrices stay in the checkpoint's bf16 or f16 give transformers' logits for
/// the same 16-bit weights computed in f32 (fixtures of scripts/make_model_fixtures.py:
/// llama_tied_headdim20_llama3rope is stored bf16, qwen2_qkv_bias f16 in shards; their
/// expected logits are transformers' f32 forward of the rounded weights).
final class HalfWeightGoldenTests: XCTestCase {
    let cases: [(name: String, dtype: DType)] = [("llama_tied_headdim20_llama3rope", .bf16), ("qwen2_qkv_bias", .f16)]

    func check(on device: Device) throws {
        for (name, dtype) in cases {
            let dir = PretrainedGoldenTests.fixtures.appendingPathComponent(name)
            XCTAssertEqual(try Checkpoint(directory: dir).matrixDType(), dtype, name)
            let e = try JSONDecoder().decode(PretrainedGoldenTests.Expected.self,
                                             from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
            let model = try loadPretrained(dir, on: device, matrices: dtype)
            // Every matrix is kept 16-bit; norms (and biases) are f32.
            for (pname, t) in model.namedParameters() {
                XCTAssertEqual(t.dtype, t.rank == 2 ? dtype : .f32, "\(name) \(pname)")
            }
            let B = e.input_ids.count, T = e.input_ids[0].count
            let ids = try Tensor(indices: e.input_ids.flatMap { $0 }, shape: [B, T], on: device)
            let got = try noGrad { try model(ids) }.toArray()
            let scale = e.logits.map { abs($0) }.max()!
            var worst: Float = 0
            for i in got.indices { worst = max(worst, abs(got[i] - e.logits[i]) / max(abs(e.logits[i]), 0.1 * scale)) }
            print("[half-weights] \(name) (\(dtype) matrices) on \(device): worst relative logit error \(worst)")
            XCTAssertLessThan(worst, 1e-4, "\(name) on \(device)")
            let loss = try noGrad { try model.loss(ids, labels: e.labels.flatMap { $0 }).item() }
            XCTAssertEqual(loss, e.loss, accuracy: 1e-4 * e.loss, "\(name) loss on \(device)")
        }
    }

    func testLogitsWith16BitMatricesMatchTransformersOnCPU() throws {
        try check(on: .cpu)
    }

    func testLogitsWith16BitMatricesMatchTransformersOnOpenCL() throws {
        guard let p = OpenCLRuntime.listDevices().platforms.first(where: { !$0.devices.isEmpty }) else {
            if ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" { XCTFail("no OpenCL device") }
            throw XCTSkip("no OpenCL device")
        }
        try check(on: .opencl(platform: p.index, device: 0))
    }

    func testAnF32CheckpointStoredAsBF16MatchesTheRoundedWeightsAndMergesToF32() throws {
        // An f32 checkpoint asked for bf16 is rounded once at load; LoRA merged into a bf16
        // base gives an f32 weight equal to the rounded base plus the update.
        let dir = PretrainedGoldenTests.fixtures.appendingPathComponent("llama_gqa_untied")
        XCTAssertEqual(try Checkpoint(directory: dir).matrixDType(), .f32)
        let half = try loadPretrained(dir, on: .cpu, matrices: .bf16)
        let full = try loadPretrained(dir, on: .cpu)
        let w16 = try XCTUnwrap(half.namedParameters().first { $0.0.hasSuffix("q_proj.weight") }?.1)
        let w32 = try XCTUnwrap(full.namedParameters().first { $0.0.hasSuffix("q_proj.weight") }?.1)
        XCTAssertEqual(w16.dtype, .bf16)
        XCTAssertEqual(try w16.toArray(), try w32.toArray().map { bfloat16ToFloat(floatToBFloat16($0)) })
        try half.addLoRA(LoRAConfig(rank: 2, alpha: 4, dropout: 0, targetModules: ["q_proj"]), seed: 3)
        let adapter = try XCTUnwrap(half.loraAdapters.first)
        try adapter.b.assign(randomValuesForMerge(adapter.b.count))
        let rounded = try w16.toArray()
        let delta = try adapter.b.matmul(adapter.a).scaled(by: adapter.scaling).toArray()
        try half.mergeLoRA()
        let merged = try XCTUnwrap(half.namedParameters().first { $0.0.hasSuffix("layers.0.self_attn.q_proj.weight") }?.1)
        XCTAssertEqual(merged.dtype, .f32)
        let m = try merged.toArray()
        for i in m.indices { XCTAssertEqual(m[i], rounded[i] + delta[i], accuracy: 1e-6) }
    }

    func randomValuesForMerge(_ n: Int) -> [Float] {
        var g = SplitMix64(seed: 11)
        return (0..<n).map { _ in g.nextFloat() - 0.5 }
    }
}
