import Foundation
import ITuneTensor

extension ModelConfig {
    /// transformers' name of a safetensors dtype (F32 → float32, F16 → float16, BF16 → bfloat16).
    static let torchDTypes = ["F32": "float32", "F16": "float16", "BF16": "bfloat16"]

    /// config.json as transformers writes it for this family, so that `from_pretrained` loads
    /// what itune-gpu saves. `dtype` is the safetensors dtype the weights are stored in.
    public func huggingFaceJSON(dtype: String = "F32") throws -> [String: Any] {
        let family = try ModelFamily.of(self)
        guard let torchDType = Self.torchDTypes[dtype] else {
            throw ModelFileError.unsupportedDType(name: "(config.json)", dtype: dtype, file: "config.json")
        }
        var j: [String: Any] = ["vocab_size": vocabSize, "architectures": [family.classNames[0]],
                                "model_type": architecture.rawValue,
                                // transformers 5 reads `dtype`, earlier versions `torch_dtype`.
                                "torch_dtype": torchDType, "dtype": torchDType]
        if let bosTokenID { j["bos_token_id"] = bosTokenID }
        if let e = eosTokenIDs.first { j["eos_token_id"] = eosTokenIDs.count == 1 ? e as Any : eosTokenIDs as Any }
        return j.merging(family.encode(self)) { $1 }
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
        let json = try JSONSerialization.data(withJSONObject: config.huggingFaceJSON(dtype: dtype), options: [.prettyPrinted, .sortedKeys])
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
