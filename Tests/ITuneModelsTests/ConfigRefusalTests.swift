import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor

/// Every config field that changes the maths is read or refused by name, and every size is
/// validated before anything divides by it or allocates with it.
final class ConfigRefusalTests: XCTestCase {
    /// A valid config of `architecture` with `extra` fields merged over it (JSON object text
    /// without braces, e.g. `"sliding_window": 4`).
    func config(_ architecture: String, _ extra: String = "") -> String {
        let base: String
        switch architecture {
        case "GPT2LMHeadModel":
            base = #""n_embd":16,"n_layer":1,"n_head":2,"n_positions":32,"vocab_size":40"#
        default:
            base = #""hidden_size":16,"intermediate_size":24,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":40,"max_position_embeddings":32"#
        }
        // Later keys win in JSONSerialization, so extra overrides base.
        return "{\"architectures\":[\"\(architecture)\"],\(base)\(extra.isEmpty ? "" : "," + extra)}"
    }

    let rotary = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Phi3ForCausalLM"]

    func testEveryRegisteredFamilyReadsItsBaseConfig() throws {
        for a in rotary + ["GPT2LMHeadModel"] {
            let c = try parseConfig(config(a))
            XCTAssertEqual(c.architecture.family?.classNames.first, a)
        }
    }

    func testSlidingWindowIsKeptWhereTheFamilyHasOne() throws {
        XCTAssertEqual(try parseConfig(config("MistralForCausalLM", #""sliding_window":8"#)).slidingWindow, 8)
        XCTAssertNil(try parseConfig(config("MistralForCausalLM", #""sliding_window":null"#)).slidingWindow)
        XCTAssertEqual(try parseConfig(config("Phi3ForCausalLM", #""sliding_window":8"#)).slidingWindow, 8)
        // Qwen2: only with use_sliding_window, and only when some layer is past max_window_layers.
        XCTAssertNil(try parseConfig(config("Qwen2ForCausalLM", #""sliding_window":8,"use_sliding_window":false"#)).slidingWindow)
        XCTAssertNil(try parseConfig(config("Qwen2ForCausalLM", #""sliding_window":8,"use_sliding_window":true,"max_window_layers":1"#)).slidingWindow)
        let q = try parseConfig(config("Qwen2ForCausalLM", #""sliding_window":8,"use_sliding_window":true,"max_window_layers":0"#))
        XCTAssertEqual(q.slidingWindow, 8)
        let typed = try parseConfig(config("Qwen2ForCausalLM", #""sliding_window":8,"use_sliding_window":true,"layer_types":["sliding_attention"]"#))
        XCTAssertEqual(typed.slidingWindow, 8)
        assertRefused(try parseConfig(config("Qwen2ForCausalLM", #""sliding_window":8,"use_sliding_window":true,"layer_types":["chunked"]"#)),
                      naming: "layer_types")
        assertRefused(try parseConfig(config("MistralForCausalLM", #""sliding_window":0"#)), naming: "sliding_window")
    }

    /// Within the window a sliding-window model computes as full attention; beyond it the
    /// forward throws naming sliding_window, with or without a cache.
    func testForwardBeyondTheWindowNamesSlidingWindow() throws {
        let c = try parseConfig(config("MistralForCausalLM", #""sliding_window":6"#))
        let model = try makeModel(c, seed: 3, on: .cpu)
        let ids = { (n: Int) in try Tensor(indices: (0..<n).map { Int32($0 + 1) }, shape: [1, n]) }
        XCTAssertNoThrow(try noGrad { try model(ids(6)) })
        assertRefused(try noGrad { try model(ids(7)) }, naming: "sliding_window 6")
        let cache = model.makeCache()
        _ = try noGrad { try model.logits(ids(4), positions: nil, cache: cache, segments: nil) }
        assertRefused(try noGrad { try model.logits(ids(3), positions: nil, cache: cache, segments: nil) }, naming: "sliding_window")
    }

    func testBiasesAreReadForLlamaAndRefusedWhereTheFamilyHasNone() throws {
        let llama = try parseConfig(config("LlamaForCausalLM", #""attention_bias":true,"mlp_bias":true"#))
        XCTAssertTrue(llama.qkvBias && llama.outputBias && llama.mlpBias)
        let model = try makeModel(llama, seed: 1, on: .cpu)
        XCTAssertTrue(model.namedParameters().contains { $0.0 == "model.layers.0.self_attn.o_proj.bias" })
        XCTAssertTrue(model.namedParameters().contains { $0.0 == "model.layers.0.mlp.down_proj.bias" })
        for a in ["MistralForCausalLM", "Qwen2ForCausalLM", "Phi3ForCausalLM"] {
            assertRefused(try parseConfig(config(a, #""attention_bias":true"#)), naming: "attention_bias")
            assertRefused(try parseConfig(config(a, #""mlp_bias":true"#)), naming: "mlp_bias")
            XCTAssertNoThrow(try parseConfig(config(a, #""attention_bias":false,"mlp_bias":false"#)))
        }
    }

    func testUnimplementedMathsIsRefusedByName() throws {
        for a in rotary {
            assertRefused(try parseConfig(config(a, #""partial_rotary_factor":0.5"#)), naming: "partial_rotary_factor")
            assertRefused(try parseConfig(config(a, #""rope_parameters":{"rope_type":"default","rope_theta":10000,"partial_rotary_factor":0.4}"#)),
                          naming: "rope_parameters.partial_rotary_factor")
            XCTAssertNoThrow(try parseConfig(config(a, #""partial_rotary_factor":1.0"#)))
            assertRefused(try parseConfig(config(a, #""final_logit_softcapping":30.0"#)), naming: "final_logit_softcapping")
            assertRefused(try parseConfig(config(a, #""attn_logit_softcapping":50.0"#)), naming: "attn_logit_softcapping")
            XCTAssertNoThrow(try parseConfig(config(a, #""final_logit_softcapping":null,"attn_logit_softcapping":null"#)))
            assertRefused(try parseConfig(config(a, #""hidden_act":"gelu_pytorch_tanh""#)), naming: "hidden_act")
            for type in ["longrope", "su", "yarn", "dynamic"] {
                assertRefused(try parseConfig(config(a, #""rope_scaling":{"type":"\#(type)","short_factor":[1],"long_factor":[1]}"#)),
                              naming: "rope_scaling.rope_type", type)
                assertRefused(try parseConfig(config(a, #""rope_parameters":{"rope_type":"\#(type)","rope_theta":10000}"#)),
                              naming: "rope_parameters.rope_type", type)
            }
        }
        let g = "GPT2LMHeadModel"
        assertRefused(try parseConfig(config(g, #""activation_function":"relu""#)), naming: "activation_function")
        assertRefused(try parseConfig(config(g, #""tie_word_embeddings":false"#)), naming: "tie_word_embeddings")
        assertRefused(try parseConfig(config(g, #""scale_attn_weights":false"#)), naming: "scale_attn_weights")
        assertRefused(try parseConfig(config(g, #""scale_attn_by_inverse_layer_idx":true"#)), naming: "scale_attn_by_inverse_layer_idx")
        assertRefused(try parseConfig(config(g, #""final_logit_softcapping":30.0"#)), naming: "final_logit_softcapping")
    }

    func testTiedEmbeddingsAreReadPerFamily() throws {
        for a in rotary {
            XCTAssertTrue(try parseConfig(config(a, #""tie_word_embeddings":true"#)).tieWordEmbeddings, a)
            XCTAssertFalse(try parseConfig(config(a, #""tie_word_embeddings":false"#)).tieWordEmbeddings, a)
        }
    }

    /// Issue 12: sizes that divided by zero, reversed a range or trapped an allocation.
    func testEverySizeFieldIsValidatedByName() throws {
        let cases: [(String, String, String)] = [
            ("LlamaForCausalLM", #""num_key_value_heads":0"#, "num_key_value_heads"),
            ("LlamaForCausalLM", #""num_attention_heads":0"#, "num_attention_heads"),
            ("LlamaForCausalLM", #""num_hidden_layers":-1"#, "num_hidden_layers"),
            ("LlamaForCausalLM", #""vocab_size":0"#, "vocab_size"),
            ("LlamaForCausalLM", #""vocab_size":-3"#, "vocab_size"),
            ("LlamaForCausalLM", #""hidden_size":-16"#, "hidden_size"),
            ("LlamaForCausalLM", #""intermediate_size":0"#, "intermediate_size"),
            ("LlamaForCausalLM", #""max_position_embeddings":0"#, "max_position_embeddings"),
            ("LlamaForCausalLM", #""head_dim":0"#, "head_dim"),
            ("LlamaForCausalLM", #""head_dim":7"#, "head_dim"),
            ("LlamaForCausalLM", #""num_key_value_heads":3"#, "num_key_value_heads"),
            ("LlamaForCausalLM", #""num_attention_heads":3,"num_key_value_heads":3"#, "num_attention_heads"),
            ("LlamaForCausalLM", #""num_hidden_layers":2.5"#, "num_hidden_layers"),
            ("LlamaForCausalLM", #""num_hidden_layers":"2""#, "num_hidden_layers"),
            ("LlamaForCausalLM", #""vocab_size":1e30"#, "vocab_size"),
            ("LlamaForCausalLM", #""vocab_size":9223372036854775808"#, "vocab_size"),
            ("LlamaForCausalLM", #""rms_norm_eps":-1"#, "rms_norm_eps"),
            ("LlamaForCausalLM", #""rope_theta":0"#, "rope_theta"),
            ("Phi3ForCausalLM", #""num_key_value_heads":0"#, "num_key_value_heads"),
            ("GPT2LMHeadModel", #""n_head":0"#, "n_head"),
            ("GPT2LMHeadModel", #""n_head":5"#, "n_head"),
            ("GPT2LMHeadModel", #""n_layer":-1"#, "n_layer"),
            ("GPT2LMHeadModel", #""n_inner":0"#, "n_inner"),
            ("GPT2LMHeadModel", #""n_embd":4611686018427387904"#, "n_embd"),
        ]
        for (a, extra, field) in cases {
            assertRefused(try parseConfig(config(a, extra)), naming: field, "config.json")
        }
    }

    /// Code-built configs are checked when a model is made from them, before any allocation.
    func testModelsRefuseInvalidConfigsBuiltInCode() throws {
        let zeroHeads = ModelConfig(vocabSize: 10, hiddenSize: 8, intermediateSize: 8, numLayers: 1, numHeads: 0)
        assertRefused(try makeModel(zeroHeads, on: .cpu), naming: "num_attention_heads")
        let badKV = ModelConfig(vocabSize: 10, hiddenSize: 8, intermediateSize: 8, numLayers: 1, numHeads: 2, numKVHeads: 0)
        assertRefused(try LlamaModel(badKV, on: .cpu), naming: "num_key_value_heads")
        let negativeLayers = ModelConfig(architecture: .gpt2, vocabSize: 10, hiddenSize: 8, intermediateSize: 8, numLayers: -1, numHeads: 2)
        assertRefused(try makeModel(negativeLayers, on: .cpu), naming: "num_hidden_layers")
        let unknown = ModelConfig(architecture: Architecture(rawValue: "gemma2"), vocabSize: 10, hiddenSize: 8, intermediateSize: 8,
                                  numLayers: 1, numHeads: 2)
        assertRefused(try makeModel(unknown, on: .cpu), naming: "gemma2")
    }
}
