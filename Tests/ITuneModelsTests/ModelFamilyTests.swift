import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor

/// The registry: each family is one entry, and what it says (config keys, names, LoRA targets,
/// hidden states) holds for a model built from it.
final class ModelFamilyTests: XCTestCase {
    func tinyConfig(_ architecture: Architecture) -> ModelConfig {
        ModelConfig(architecture: architecture, vocabSize: 37, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4,
                    numKVHeads: architecture == .gpt2 ? 4 : 2, maxPositions: 16, tieWordEmbeddings: architecture == .gpt2,
                    qkvBias: architecture == .qwen2 || architecture == .gpt2, outputBias: architecture == .gpt2,
                    mlpBias: architecture == .gpt2, bosTokenID: 1, eosTokenIDs: [2],
                    slidingWindow: architecture == .mistral || architecture == .phi3 ? 12 : nil)
    }

    func testRegistryLooksUpByModelTypeAndClassName() {
        XCTAssertEqual(ModelFamily.registered.map(\.architecture.rawValue), ["llama", "mistral", "qwen2", "phi3", "gpt2", "t5", "mt5"])
        XCTAssertEqual(ModelFamily.decoders.map(\.architecture.rawValue), ["llama", "mistral", "qwen2", "phi3", "gpt2"])
        XCTAssertEqual(ModelFamily.forClassName("MT5ForConditionalGeneration")?.kind, .encoderDecoder)
        XCTAssertEqual(ModelFamily.forClassName("Phi3ForCausalLM")?.architecture, .phi3)
        XCTAssertEqual(Architecture(rawValue: "gpt2").family?.classNames, ["GPT2LMHeadModel"])
        XCTAssertNil(ModelFamily.forClassName("Gemma2ForCausalLM"))
        XCTAssertEqual(try parseConfig(#"{"model_type":"phi3","hidden_size":16,"intermediate_size":24,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":40}"#).architecture, .phi3)
    }

    /// savePretrained → loadPretrained gives back the same config and the same logits for every
    /// family, and config.json records the dtype the weights were written in.
    func testEveryFamilyRoundTripsThroughSavePretrainedWithItsRealDType() throws {
        let ids = try Tensor(indices: [3, 9, 1, 30, 7], shape: [1, 5])
        for family in ModelFamily.decoders {
            let config = tinyConfig(family.architecture)
            let model = try makeModel(config, seed: 7, on: .cpu)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-family-\(getpid())-\(family.architecture)")
            defer { try? FileManager.default.removeItem(at: dir) }
            for (dtype, torch) in [("BF16", "bfloat16"), ("F32", "float32")] {
                try model.savePretrained(to: dir, dtype: dtype)
                let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as? [String: Any]
                XCTAssertEqual(json?["torch_dtype"] as? String, torch, "\(family.architecture)")
                XCTAssertEqual(json?["dtype"] as? String, torch, "\(family.architecture)")
                XCTAssertEqual(json?["architectures"] as? [String], family.classNames, "\(family.architecture)")
            }
            let reloaded = try loadPretrained(dir, on: .cpu)
            XCTAssertEqual(reloaded.config, config, "\(family.architecture)")
            XCTAssertEqual(try noGrad { try reloaded(ids).toArray() }, try noGrad { try model(ids).toArray() }, "\(family.architecture)")
            XCTAssertEqual(model.defaultLoRATargets, family.defaultLoRATargets)
            XCTAssertFalse(model.loraTargets(LoRAConfig(targetModules: model.defaultLoRATargets)).isEmpty, "\(family.architecture)")
        }
    }

    /// hiddenStates is what logits projects: every family exposes it (sentence embeddings use it).
    func testHiddenStatesAreWhatTheLogitsProject() throws {
        let ids = try Tensor(indices: [4, 5, 6, 7], shape: [2, 2])
        for family in ModelFamily.decoders {
            let config = tinyConfig(family.architecture)
            let model = try makeModel(config, seed: 2, on: .cpu)
            let h = try noGrad { try model.hiddenStates(ids) }
            XCTAssertEqual(h.shape, [2, 2, 16])
            let head = model.namedParameters().first { $0.0 == "lm_head.weight" }?.1
                ?? model.namedParameters().first { $0.0.hasSuffix("embed_tokens.weight") || $0.0.hasSuffix("wte.weight") }?.1
            XCTAssertTrue(head === model.outputEmbedding, "\(family.architecture): lm_head, or the tied embeddings")
            let projected = try noGrad { try h.linear(model.outputEmbedding).toArray() }
            XCTAssertLessThan(worstRelativeError(projected, try noGrad { try model(ids).toArray() }), 1e-6, "\(family.architecture)")
        }
    }

    /// GPT-2's weight-name map: files with or without the `transformer.` prefix load alike.
    func testGPT2CheckpointNamesWithAndWithoutPrefixLoad() throws {
        let model = try makeModel(tinyConfig(.gpt2), seed: 5, on: .cpu)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-gpt2-names-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try model.savePretrained(to: dir)
        let withPrefix = try loadPretrained(dir, on: .cpu)
        let st = try SafetensorsFile(url: dir.appendingPathComponent("model.safetensors"))
        XCTAssertTrue(st.names.allSatisfy { $0.hasPrefix("transformer.") })
        let stripped = try st.names.map { (name: String($0.dropFirst("transformer.".count)), tensor: try st.tensor($0, on: .cpu)) }
        try SafetensorsFile.write(stripped, to: dir.appendingPathComponent("model.safetensors"))
        let withoutPrefix = try loadPretrained(dir, on: .cpu)
        let ids = try Tensor(indices: [1, 2, 3], shape: [1, 3])
        XCTAssertEqual(try noGrad { try withoutPrefix(ids).toArray() }, try noGrad { try withPrefix(ids).toArray() })
    }
}
