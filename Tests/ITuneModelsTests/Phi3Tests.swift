import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor

/// Phi-3, the family added through the registry alone: fused qkv_proj and gate_up_proj, LoRA on
/// the fused modules under PEFT's names. Logits, loss and greedy tokens against transformers are
/// in PretrainedGoldenTests (fixture phi3_fused).
final class Phi3Tests: XCTestCase {
    struct Expected: Decodable {
        let base: String
        let input_ids: [Int32]
        let logits: [[Float]]
    }

    let base = modelFixtures.appendingPathComponent("phi3_fused")
    let adapter = modelFixtures.appendingPathComponent("phi3_fused_lora")

    func testConfigReadsAsPhi3WithItsSlidingWindow() throws {
        let c = try ModelConfig(configJSON: base.appendingPathComponent("config.json"))
        XCTAssertEqual(c.architecture, .phi3)
        XCTAssertEqual(c.slidingWindow, 48)
        XCTAssertEqual(c.maxSequenceLength, 48)
        XCTAssertEqual(c.headDim, 16)
        XCTAssertEqual(c.numKVHeads, 2)
        XCTAssertEqual(c.normEps, 1e-5)
    }

    func testFusedProjectionsAreWhatLoRATargetsByDefault() throws {
        let model = try loadPretrained(base, on: .cpu)
        XCTAssertEqual(model.defaultLoRATargets, ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"])
        XCTAssertEqual(model.projections().prefix(4).map(\.name), ["model.layers.0.self_attn.qkv_proj", "model.layers.0.self_attn.o_proj",
                                                                  "model.layers.0.mlp.gate_up_proj", "model.layers.0.mlp.down_proj"])
        // qkv_proj packs 4 query heads and 2 + 2 kv heads of 16.
        XCTAssertEqual(model.projections()[0].outFeatures, (4 + 2 * 2) * 16)
        XCTAssertEqual(model.projections()[2].outFeatures, 2 * 96)
    }

    /// A PEFT adapter on the fused modules (scripts/make_model_fixtures.py) gives PEFT's logits.
    func testPEFTAdapterOnFusedModulesGivesTheLogitsPEFTGives() throws {
        let e = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: adapter.appendingPathComponent("expected.json")))
        for device in testDevices() {
            let model = try loadPretrained(base, on: device)
            let config = try model.loadAdapter(from: adapter)
            XCTAssertEqual(Set(config.targetModules), ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"])
            XCTAssertEqual(model.loraAdapters.count, 4 * model.config.numLayers)
            let ids = try Tensor(indices: e.input_ids, shape: [1, e.input_ids.count], on: device)
            let got = try noGrad { try model(ids).toArray() }
            let want = e.logits.flatMap { $0 }
            XCTAssertLessThan(worstRelativeError(got, want), 1e-4, "on \(device)")
            let plainModel = try loadPretrained(base, on: device)
            let plain = try noGrad { try plainModel(ids).toArray() }
            XCTAssertGreaterThan(zip(plain, want).map { abs($0 - $1) }.max() ?? 0, 1e-2, "the adapter must matter")
        }
    }

    /// Fresh adapters with the default targets save under PEFT's fused names and load back
    /// to the same logits; merging folds them into qkv_proj and gate_up_proj.
    func testAdapterOnFusedModulesRoundTripsAndMerges() throws {
        let model = try loadPretrained(base, on: .cpu)
        let config = LoRAConfig(rank: 2, alpha: 4, dropout: 0, targetModules: model.defaultLoRATargets)
        let params = try model.addLoRA(config, seed: 9)
        var g = SplitMix64(seed: 4)
        for p in params where p.shape[1] == 2 { try p.assign((0..<p.count).map { _ in 0.1 * (2 * g.nextFloat() - 1) }) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-phi3-adapter-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try model.saveAdapter(to: dir, config: config, baseModel: base.path)
        let file = try SafetensorsFile(url: dir.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertTrue(file.names.contains("base_model.model.model.layers.1.self_attn.qkv_proj.lora_B.weight"), "\(file.names)")
        XCTAssertTrue(file.names.contains("base_model.model.model.layers.0.mlp.gate_up_proj.lora_A.weight"), "\(file.names)")
        XCTAssertEqual(file.names.count, 2 * 4 * model.config.numLayers)
        let ids = try Tensor(indices: [5, 17, 200, 3, 44], shape: [1, 5])
        let adapted = try noGrad { try model(ids).toArray() }
        let reloaded = try loadPretrained(base, on: .cpu)
        XCTAssertEqual(try reloaded.loadAdapter(from: dir), config)
        XCTAssertEqual(try noGrad { try reloaded(ids).toArray() }, adapted)
        try reloaded.mergeLoRA()
        XCTAssertLessThan(worstRelativeError(try noGrad { try reloaded(ids).toArray() }, adapted), 1e-4)
    }

    /// The window is a limit, not a silent approximation: 48 positions run, 49 are refused by
    /// name, also when the cache holds the earlier ones; generation stops there as context_full.
    func testSequencesBeyondTheSlidingWindowAreRefusedByName() throws {
        let model = try loadPretrained(base, on: .cpu)
        let ids = { (n: Int) in try Tensor(indices: (0..<n).map { Int32(3 + $0 % 300) }, shape: [1, n]) }
        XCTAssertNoThrow(try noGrad { try model(ids(48)) })
        assertRefused(try noGrad { try model(ids(49)) }, naming: "sliding_window", "48")
        let cache = model.makeCache()
        _ = try noGrad { try model.logits(ids(40), positions: nil, cache: cache, segments: nil) }
        assertRefused(try noGrad { try model.logits(ids(9), positions: nil, cache: cache, segments: nil) }, naming: "sliding_window")
        let result = try model.generate(prompt: (0..<40).map { Int32(3 + $0) }, options: GenerationOptions(maxNewTokens: 20))
        XCTAssertEqual(result.tokens.count, 9, "40 + 8 fed positions fill the window; the 9th token needs none more")
        XCTAssertEqual(result.stopReason, .contextFull)
    }
}
