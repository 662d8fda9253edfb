import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneExport

final class ExportTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("itune-export-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    /// The llama fixture saved as a Hugging Face directory (config, safetensors, tokenizer).
    func savedLlama() throws -> (URL, any CausalLM) {
        let (dir, model) = try fixtureModel("llama_spm", tokenizer: "llama2_metaspace_bytefallback")
        try model.savePretrained(to: dir, tokenizerDirectory: nil)
        return (dir, model)
    }

    func testMergedGGUFHoldsWPlusScaledBAPermuted() throws {
        let (dir, _) = try savedLlama()
        defer { try? FileManager.default.removeItem(at: dir) }
        let adapterDir = exportFixtures.appendingPathComponent("llama_spm/adapter")
        let out = scratch.appendingPathComponent("merged.gguf")
        try runExport(ExportRequest(model: dir, adapter: adapterDir, format: .gguf, dtype: .f32, output: out))
        let file = try GGUFFile(contentsOf: out)
        let adapter = try PEFTAdapter(directory: adapterDir)
        let s = Double(adapter.config.alpha) / Double(adapter.config.rank).squareRoot()  // rsLoRA
        for (module, gname, heads) in [("model.layers.0.self_attn.q_proj", "blk.0.attn_q.weight", 2),
                                       ("model.layers.0.mlp.down_proj", "blk.0.ffn_down.weight", 0)] {
            let p = adapter.pairs.first { $0.module == module }!
            let r = adapter.config.rank
            let w = formulaWeights(module + ".weight", count: p.outFeatures * p.inFeatures, norm: false)
            var expected = [Float](repeating: 0, count: w.count)
            for o in 0..<p.outFeatures {
                for i in 0..<p.inFeatures {
                    var acc = 0.0
                    for k in 0..<r { acc += Double(p.b[o * r + k]) * Double(p.a[k * p.inFeatures + i]) }
                    expected[o * p.inFeatures + i] = Float(Double(w[o * p.inFeatures + i]) + s * acc)
                }
            }
            if heads > 0 { expected = try permuteRotaryRows(expected, rows: p.outFeatures, cols: p.inFeatures, heads: heads) }
            let got = GGMLType.f32.decode(file.tensor(gname)!.data)
            XCTAssertEqual(got.count, expected.count)
            let worst = zip(got, expected).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-6, gname)
        }
        XCTAssertEqual(file["general.file_type"], .uint32(0))
    }

    func testMLXAdapterIsTransposedWithPEFTScale() throws {
        let adapterDir = exportFixtures.appendingPathComponent("llama_spm/adapter")
        let out = scratch.appendingPathComponent("mlx-adapter")
        try runExport(ExportRequest(model: exportFixtures.appendingPathComponent("llama_spm"), adapter: adapterDir, format: .mlx,
                                    dtype: .f32, output: out))
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(cfg["fine_tune_type"] as? String, "lora")
        XCTAssertEqual(cfg["num_layers"] as? Int, 1)
        let lp = cfg["lora_parameters"] as! [String: Any]
        XCTAssertEqual(lp["rank"] as? Int, 4)
        XCTAssertEqual((lp["scale"] as? NSNumber)?.floatValue ?? 0, 8 / 2, accuracy: 1e-6)  // alpha / √r with rsLoRA
        XCTAssertEqual(lp["keys"] as? [String], ["mlp.down_proj", "mlp.gate_proj", "mlp.up_proj", "self_attn.k_proj",
                                                 "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj"])
        let st = try SafetensorsFile(url: out.appendingPathComponent("adapters.safetensors"))
        XCTAssertEqual(st.metadata["format"], "mlx")
        let peft = try SafetensorsFile(url: adapterDir.appendingPathComponent("adapter_model.safetensors"))
        let a = try peft.floats("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight")  // (4, 32)
        let b = try peft.floats("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight")  // (16, 4)
        XCTAssertEqual(try st.entry("model.layers.0.self_attn.k_proj.lora_a").shape, [32, 4])
        XCTAssertEqual(try st.entry("model.layers.0.self_attn.k_proj.lora_b").shape, [4, 16])
        let la = try st.floats("model.layers.0.self_attn.k_proj.lora_a"), lb = try st.floats("model.layers.0.self_attn.k_proj.lora_b")
        for i in 0..<32 { for k in 0..<4 { XCTAssertEqual(la[i * 4 + k], a[k * 32 + i]) } }
        for k in 0..<4 { for o in 0..<16 { XCTAssertEqual(lb[k * 16 + o], b[o * 4 + k]) } }
        XCTAssertEqual(st.names.count, 14)
    }

    func testMLXModelDirectoryReloadsToTheMergedModel() throws {
        let (dir, _) = try savedLlama()
        defer { try? FileManager.default.removeItem(at: dir) }
        let adapterDir = exportFixtures.appendingPathComponent("llama_spm/adapter")
        let out = scratch.appendingPathComponent("mlx-model")
        try runExport(ExportRequest(model: dir, adapter: adapterDir, format: .mlxModel, dtype: .f32, output: out))
        for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
        }
        let merged = try loadPretrained(dir, on: .cpu)
        try merged.loadAdapter(from: adapterDir)
        let ids = try Tensor(indices: [1, 5, 300, 77], shape: [1, 4], on: .cpu)
        let want = try merged.logits(ids, positions: nil, cache: nil, segments: nil).toArray()
        let reloaded = try loadPretrained(out, on: .cpu)
        let got = try reloaded.logits(ids, positions: nil, cache: nil, segments: nil).toArray()
        XCTAssertEqual(got.count, want.count)
        XCTAssertLessThan(zip(got, want).map { abs($0 - $1) }.max()!, 1e-4)
    }

    func testBadRequestsAreRefusedByName() throws {
        let model = exportFixtures.appendingPathComponent("llama_spm")
        XCTAssertThrowsError(try runExport(ExportRequest(model: model, format: .ggufLoRA, dtype: .f16, output: scratch.appendingPathComponent("x"))) ) {
            XCTAssertEqual("\($0)", "--format gguf-lora needs --adapter")
        }
        XCTAssertThrowsError(try runExport(ExportRequest(model: model, adapter: model, format: .mlx, dtype: .q8_0, output: scratch))) {
            XCTAssertTrue("\($0)".contains("not q8_0"), "\($0)")
        }
        XCTAssertThrowsError(try GGUFArchitecture(.phi3)) { XCTAssertTrue("\($0)".contains("phi3"), "\($0)") }
        XCTAssertThrowsError(try ggufTensorName("model.layers.0.self_attn.qkv_proj.weight")) {
            XCTAssertTrue("\($0)".contains("qkv_proj"), "\($0)")
        }
        var f = GGUFFile()
        XCTAssertThrowsError(try addTensor(&f, name: "blk.0.attn_q.weight", values: [1, .nan], shape: [1, 2], requested: .f32)) {
            XCTAssertTrue("\($0)".contains("blk.0.attn_q.weight"), "\($0)")
        }
        // A model directory without tokenizer.json cannot become a GGUF: the file is named.
        let (dir, m) = try fixtureModel("qwen2_bpe", tokenizer: "qwen2_style")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("tokenizer.json"))
        XCTAssertThrowsError(try ggufModelFile(m, directory: dir, dtype: .f16)) { XCTAssertTrue("\($0)".contains("tokenizer.json"), "\($0)") }
    }
}
