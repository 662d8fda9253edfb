import Foundation
import ITuneTensor

extension ModelConfig {
    /// config.json as transformers writes it for this family, so that `from_pretrained` loads
    /// what itune-gpu saves.
    public func huggingFaceJSON() -> [String: Any] {
        var j: [String: Any] = ["vocab_size": vocabSize, "torch_dtype": "float32"]
        if let bosTokenID { j["bos_token_id"] = bosTokenID }
        if let e = eosTokenIDs.first { j["eos_token_id"] = eosTokenIDs.count == 1 ? e as Any : eosTokenIDs as Any }
        if architecture == .gpt2 {
            j["architectures"] = ["GPT2LMHeadModel"]
            j["model_type"] = "gpt2"
            j["n_embd"] = hiddenSize
            j["n_inner"] = intermediateSize
            j["n_layer"] = numLayers
            j["n_head"] = numHeads
            j["n_positions"] = maxPositions
            j["layer_norm_epsilon"] = normEps
            j["activation_function"] = "gelu_new"
            j["tie_word_embeddings"] = true
            return j
        }
        let names: [Architecture: String] = [.llama: "LlamaForCausalLM", .mistral: "MistralForCausalLM", .qwen2: "Qwen2ForCausalLM"]
        j["architectures"] = [names[architecture]!]
        j["model_type"] = architecture.rawValue
        j["hidden_size"] = hiddenSize
        j["intermediate_size"] = intermediateSize
        j["num_hidden_layers"] = numLayers
        j["num_attention_heads"] = numHeads
        j["num_key_value_heads"] = numKVHeads
        j["head_dim"] = headDim
        j["rms_norm_eps"] = normEps
        j["rope_theta"] = ropeTheta
        j["max_position_embeddings"] = maxPositions
        j["tie_word_embeddings"] = tieWordEmbeddings
        j["hidden_act"] = "silu"
        if architecture == .llama {
            j["attention_bias"] = qkvBias
            j["mlp_bias"] = mlpBias
        }
        switch ropeScaling {
        case nil: break
        case let .linear(factor)?: j["rope_scaling"] = ["rope_type": "linear", "factor": factor]
        case let .llama3(factor, low, high, orig)?:
            j["rope_scaling"] = ["rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                                 "high_freq_factor": high, "original_max_position_embeddings": orig]
        }
        return j
    }
}

/// The tokenizer files transformers reads from a model directory.
public let tokenizerFileNames = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                 "generation_config.json", "tokenizer.model"]

extension CausalLM {
    /// Writes a Hugging Face model directory: config.json and model.safetensors (`dtype` F32,
    /// F16 or BF16), plus the tokenizer files of `tokenizerDirectory` when given. Each file is
    /// written atomically. Tied embeddings are stored once, as transformers does.
    public func savePretrained(to directory: URL, dtype: String = "F32", tokenizerDirectory: URL? = nil) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let json = try JSONSerialization.data(withJSONObject: config.huggingFaceJSON(), options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(json, to: directory.appendingPathComponent("config.json"))
        let tensors = namedParameters().map { (name: $0.0, tensor: $0.1) }
        try SafetensorsFile.write(tensors, dtype: dtype, to: directory.appendingPathComponent("model.safetensors"))
        if let source = tokenizerDirectory, source.standardizedFileURL != directory.standardizedFileURL {
            for name in tokenizerFileNames {
                let from = source.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: from.path) else { continue }
                try writeAtomically(try Data(contentsOf: from), to: directory.appendingPathComponent(name))
            }
        }
    }
}
