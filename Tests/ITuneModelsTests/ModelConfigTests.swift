import Foundation
import XCTest
@testable import ITuneModels

final class ModelConfigTests: XCTestCase {
    func parse(_ text: String) throws -> ModelConfig {
        try ModelConfig(json: JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any], file: "config.json")
    }

    func testSmolLM2ConfigReadsGQAAndTiedEmbeddings() throws {
        let c = try parse("""
        {"architectures":["LlamaForCausalLM"],"hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,
         "num_attention_heads":9,"num_key_value_heads":3,"rms_norm_eps":1e-05,"rope_theta":100000,"vocab_size":49152,
         "max_position_embeddings":8192,"tie_word_embeddings":true,"hidden_act":"silu","bos_token_id":1,"eos_token_id":2}
        """)
        XCTAssertEqual(c.architecture, .llama)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertEqual(c.numKVHeads, 3)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertFalse(c.qkvBias)
        XCTAssertEqual(c.ropeTheta, 100000)
        XCTAssertEqual(c.eosTokenIDs, [2])
    }

    func testQwen2HasQKVBiasAndExplicitHeadDimIsKept() throws {
        let c = try parse("""
        {"architectures":["Qwen2ForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
         "num_attention_heads":4,"num_key_value_heads":2,"head_dim":24,"vocab_size":300,"rope_parameters":{"rope_theta":1000000.0,"rope_type":"default"}}
        """)
        XCTAssertEqual(c.architecture, .qwen2)
        XCTAssertTrue(c.qkvBias)
        XCTAssertFalse(c.outputBias)
        XCTAssertEqual(c.headDim, 24)
        XCTAssertEqual(c.ropeTheta, 1_000_000)
    }

    func testGPT2ConfigUsesItsOwnFieldNames() throws {
        let c = try parse(#"{"architectures":["GPT2LMHeadModel"],"n_embd":48,"n_layer":2,"n_head":4,"n_positions":64,"vocab_size":300,"activation_function":"gelu_new"}"#)
        XCTAssertEqual(c.architecture, .gpt2)
        XCTAssertEqual(c.intermediateSize, 192)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.maxPositions, 64)
    }

    func testUnknownArchitectureListsTheSupportedOnes() {
        XCTAssertThrowsError(try parse(#"{"architectures":["BertModel"],"hidden_size":8}"#)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("BertModel") && text.contains("Qwen2ForCausalLM") && text.contains("config.json"), text)
        }
    }

    func testMissingFieldIsNamed() {
        XCTAssertThrowsError(try parse(#"{"architectures":["LlamaForCausalLM"],"hidden_size":8,"num_attention_heads":2}"#)) { e in
            XCTAssertEqual(e as? ModelFileError, .missingField(file: "config.json", field: "vocab_size"))
        }
    }

    /// Llama 3.2's rope_scaling against values computed with transformers'
    /// `ROPE_INIT_FUNCTIONS["llama3"]` (head_dim 64, theta 500000, factor 32, 1, 4, 8192).
    func testLlama3RopeScalingMatchesTransformers() throws {
        let c = try parse("""
        {"architectures":["LlamaForCausalLM"],"hidden_size":128,"intermediate_size":256,"num_hidden_layers":1,
         "num_attention_heads":2,"vocab_size":10,"rope_theta":500000.0,
         "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}}
        """)
        let inv = c.ropeInverseFrequencies()
        XCTAssertEqual(inv.count, 32)
        // Golden values printed by transformers 5.24 for this config (scripts/ has no need to
        // regenerate them: the formula is fixed by Llama 3.1's release).
        let golden: [(Int, Float)] = [(0, 1.0), (10, 0.016560440883040428), (16, 0.000429556705057621),
                                      (20, 8.570255886297673e-06), (24, 1.6619674170215148e-06), (31, 9.418306490260875e-08)]
        for (i, v) in golden { XCTAssertEqual(inv[i], v, accuracy: 1e-5 * v, "inv_freq[\(i)]") }
        XCTAssertEqual(inv[0], 1, accuracy: 1e-7)                   // high frequency: unchanged
        let plain = ModelConfig(vocabSize: 10, hiddenSize: 128, intermediateSize: 1, numLayers: 1, numHeads: 2, ropeTheta: 500000)
            .ropeInverseFrequencies()
        XCTAssertEqual(inv[31], plain[31] / 32, accuracy: 1e-12)     // low frequency: divided by factor
        // A medium frequency is smoothed between the two.
        let medium = (0..<32).filter { i in let w = 2 * Float.pi / plain[i]; return w >= 2048 && w <= 8192 }
        XCTAssertFalse(medium.isEmpty)
        for i in medium { XCTAssertTrue(inv[i] < plain[i] && inv[i] > plain[i] / 32) }
    }
}
