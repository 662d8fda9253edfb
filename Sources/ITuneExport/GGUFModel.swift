import Foundation
import ITuneModels
import ITuneTensor

// A Hugging Face model as llama.cpp's convert_hf_to_gguf.py writes it: the same keys in the
// same order, the same tensor names, types and (for the Llama family) the same Q/K row order.

/// The GGUF architecture name of a family, and whether its Q and K rows are permuted: llama.cpp
/// applies RoPE to Llama-family weights in the interleaved (GPT-J) layout, so the converter
/// reorders each head's rows from Hugging Face's split halves to interleaved pairs; Qwen2 uses
/// the NeoX layout (split halves) and keeps them.
struct GGUFArchitecture {
    let name: String
    let permutesQK: Bool

    init(_ architecture: Architecture) throws {
        switch architecture {
        case .llama, .mistral: (name, permutesQK) = ("llama", true)
        case .qwen2: (name, permutesQK) = ("qwen2", false)
        case .gpt2: (name, permutesQK) = ("gpt2", false)
        default:
            throw ExportError.unsupported("GGUF export of \(architecture.rawValue) models is not implemented (supported: llama, mistral, qwen2, gpt2)")
        }
    }
}

/// llama.cpp's name of a transformers parameter: token_embd, blk.N.attn_q, …, output_norm, output.
public func ggufTensorName(_ name: String) throws -> String {
    switch name {
    case "model.embed_tokens.weight": return "token_embd.weight"
    case "model.norm.weight": return "output_norm.weight"
    case "lm_head.weight": return "output.weight"
    default: break
    }
    if name.hasPrefix("transformer.") { return try gpt2TensorName(name) }
    let parts = name.split(separator: ".", maxSplits: 3).map(String.init)
    let layerParts: [String: String] = [
        "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    ]
    if parts.count == 4, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) {
        let rest = parts[3]
        for suffix in [".weight", ".bias"] where rest.hasSuffix(suffix) {
            if let mapped = layerParts[String(rest.dropLast(suffix.count))] { return "blk.\(layer).\(mapped)\(suffix)" }
        }
    }
    throw ExportError.unsupported("tensor \(name) has no GGUF name here (Llama-family layouts only)")
}

/// GPT-2's names (transformer.wte, transformer.h.N.attn.c_attn, …) as llama.cpp's.
func gpt2TensorName(_ name: String) throws -> String {
    let fixed = ["transformer.wte.weight": "token_embd.weight", "transformer.wpe.weight": "position_embd.weight",
                 "transformer.ln_f.weight": "output_norm.weight", "transformer.ln_f.bias": "output_norm.bias"]
    if let f = fixed[name] { return f }
    let parts = name.split(separator: ".", maxSplits: 3).map(String.init)
    let layerParts = ["ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
                      "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"]
    if parts.count == 4, parts[1] == "h", let layer = Int(parts[2]) {
        for suffix in [".weight", ".bias"] where parts[3].hasSuffix(suffix) {
            if let mapped = layerParts[String(parts[3].dropLast(suffix.count))] { return "blk.\(layer).\(mapped)\(suffix)" }
        }
    }
    throw ExportError.unsupported("tensor \(name) has no GGUF name here")
}

/// Rows of `values` (rows × cols) reordered as llama.cpp's converter permutes q_proj/k_proj:
/// within each of `heads` heads of `rows/heads` rows, row j·(d/2)+i moves to 2i+j (split halves →
/// interleaved pairs). A bias is `cols` = 1.
func permuteRotaryRows(_ values: [Float], rows: Int, cols: Int, heads: Int) throws -> [Float] {
    guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0, values.count == rows * cols else {
        throw ExportError.invalid("cannot permute \(rows)×\(cols) for \(heads) heads")
    }
    let d = rows / heads, half = d / 2
    var out = [Float](repeating: 0, count: values.count)
    for h in 0..<heads {
        for j in 0..<2 {
            for i in 0..<half {
                let from = (h * d + j * half + i) * cols, to = (h * d + 2 * i + j) * cols
                for c in 0..<cols { out[to + c] = values[from + c] }
            }
        }
    }
    return out
}

/// The storage type the converter picks for a tensor: f32 for 1-D tensors, norms and anything
/// not named `.weight`/`.lora_a`/`.lora_b` (biases); otherwise the file's type, with f16 where a
/// row is not whole q8_0 blocks (the converter's fallback when the quantiser refuses).
func ggufStorageType(name: String, shape: [Int], requested: GGMLType) -> GGMLType {
    // 1-D tensors, norms and learned positions stay f32, as in llama.cpp's quantiser.
    if shape.count <= 1 || name.hasSuffix("_norm.weight") || name == "position_embd.weight" { return .f32 }
    if ![".weight", ".lora_a", ".lora_b"].contains(where: { name.hasSuffix($0) }) { return .f32 }
    if requested == .q8_0, let last = shape.last, last % 32 != 0 { return .f16 }
    return requested
}

/// llama.cpp's `general.file_type` (LlamaFileType) of a file whose tensors are mostly `type`.
func ggufFileType(_ type: GGMLType) -> UInt32 {
    switch type {
    case .f32: return 0
    case .f16: return 1
    case .q8_0: return 7
    case .bf16: return 32
    }
}

/// Adds one tensor, converted to its storage type; non-finite values are refused by name.
func addTensor(_ file: inout GGUFFile, name: String, values: [Float], shape: [Int], requested: GGMLType) throws {
    if let bad = values.firstIndex(where: { !$0.isFinite }) {
        throw ExportError.invalid("tensor \(name) holds a non-finite value (\(values[bad]) at index \(bad))")
    }
    let type = ggufStorageType(name: name, shape: shape, requested: requested)
    try file.add(GGUFTensor(name: name, shape: shape, type: type, data: try type.encode(values, rowLength: shape.last ?? 1)))
}

/// llama3 rope scaling as llama.cpp takes it: a `rope_freqs.weight` tensor of per-frequency
/// divisors (1 for high frequencies, `factor` for low ones, interpolated in between).
func llama3RopeFactors(_ c: ModelConfig) -> [Float]? {
    guard case let .llama3(factor, low, high, orig)? = c.ropeScaling else { return nil }
    let d = c.headDim
    let lowWavelen = Float(orig) / low, highWavelen = Float(orig) / high
    return (0..<(d / 2)).map { i in
        let freq = 1 / powf(c.ropeTheta, Float(2 * i) / Float(d))
        let wavelen = 2 * Float.pi / freq
        if wavelen < highWavelen { return 1 }
        if wavelen > lowWavelen { return factor }
        let smooth = (Float(orig) / wavelen - low) / (high - low)
        return 1 / ((1 - smooth) / factor + smooth)
    }
}

/// `model` (adapters already merged) as a GGUF file: metadata from its config and the tokenizer
/// files of `directory`, tensors stored as `dtype` (norms and biases stay f32).
public func ggufModelFile(_ model: any CausalLM, directory: URL, dtype: GGMLType, name: String? = nil) throws -> GGUFFile {
    let c = model.config
    let arch = try GGUFArchitecture(c.architecture)
    let rawConfig = try readJSONObject(directory.appendingPathComponent("config.json"))
    var f = GGUFFile()
    let a = arch.name
    f.set("general.architecture", .string(a))
    f.set("general.type", .string("model"))
    f.set("general.name", .string(name ?? directory.standardizedFileURL.lastPathComponent))
    if c.architecture == .gpt2 {
        // GPT2Model.set_gguf_parameters: its own short list (the feed-forward length is 4·n_embd).
        f.set("gpt2.block_count", .uint32(UInt32(c.numLayers)))
        f.set("gpt2.context_length", .uint32(UInt32((rawConfig["n_ctx"] as? NSNumber)?.intValue ?? c.maxPositions)))
        f.set("gpt2.embedding_length", .uint32(UInt32(c.hiddenSize)))
        f.set("gpt2.feed_forward_length", .uint32(UInt32(4 * c.hiddenSize)))
        f.set("gpt2.attention.head_count", .uint32(UInt32(c.numHeads)))
        f.set("gpt2.attention.layer_norm_epsilon", .float32(c.normEps))
        f.set("general.file_type", .uint32(ggufFileType(dtype)))
    } else {
        try setRotaryParameters(&f, c, arch: arch, rawConfig: rawConfig, dtype: dtype)
    }
    f.set("general.quantization_version", .uint32(2))
    for (k, v) in try ggufTokenizerMetadata(directory: directory, modelConfig: rawConfig, vocabSize: c.vocabSize,
                                            spmAllowed: arch.permutesQK) {
        f.set(k, v)
    }
    f.set("general.alignment", .uint32(UInt32(GGUFFile.defaultAlignment)))

    if let factors = llama3RopeFactors(c) {
        try addTensor(&f, name: "rope_freqs.weight", values: factors, shape: [factors.count], requested: dtype)
    }
    for (hfName, t) in model.namedParameters() {
        let gname = try ggufTensorName(hfName)
        var values = try t.toArray()
        var shape = t.shape
        if arch.permutesQK {
            let heads = hfName.hasSuffix("q_proj.weight") || hfName.hasSuffix("q_proj.bias") ? c.numHeads
                : hfName.hasSuffix("k_proj.weight") || hfName.hasSuffix("k_proj.bias") ? c.numKVHeads : 0
            if heads > 0 { values = try permuteRotaryRows(values, rows: t.shape[0], cols: t.count / t.shape[0], heads: heads) }
        }
        // GPT-2's Conv1D stores (in, out); llama.cpp wants (out, in) like nn.Linear.
        if c.architecture == .gpt2, shape.count == 2, [".c_attn.weight", ".c_proj.weight", ".c_fc.weight"].contains(where: { hfName.hasSuffix($0) }) {
            values = transposed(values, rows: shape[0], cols: shape[1])
            shape = [shape[1], shape[0]]
        }
        try addTensor(&f, name: gname, values: values, shape: shape, requested: dtype)
    }
    return f
}

/// TextModel.set_gguf_parameters and LlamaModel's additions, for the rotary families.
func setRotaryParameters(_ f: inout GGUFFile, _ c: ModelConfig, arch: GGUFArchitecture, rawConfig: [String: Any], dtype: GGMLType) throws {
    let a = arch.name
    f.set("\(a).block_count", .uint32(UInt32(c.numLayers)))
    f.set("\(a).context_length", .uint32(UInt32(c.maxPositions)))
    f.set("\(a).embedding_length", .uint32(UInt32(c.hiddenSize)))
    f.set("\(a).feed_forward_length", .uint32(UInt32(c.intermediateSize)))
    f.set("\(a).attention.head_count", .uint32(UInt32(c.numHeads)))
    f.set("\(a).attention.head_count_kv", .uint32(UInt32(c.numKVHeads)))
    if case let .linear(factor)? = c.ropeScaling {
        f.set("\(a).rope.scaling.type", .string("linear"))
        f.set("\(a).rope.scaling.factor", .float32(factor))
    }
    f.set("\(a).rope.freq_base", .float32(c.ropeTheta))
    f.set("\(a).attention.layer_norm_rms_epsilon", .float32(c.normEps))
    if let hd = rawConfig["head_dim"], !(hd is NSNull) {
        f.set("\(a).attention.key_length", .uint32(UInt32(c.headDim)))
        f.set("\(a).attention.value_length", .uint32(UInt32(c.headDim)))
    }
    f.set("general.file_type", .uint32(ggufFileType(dtype)))
    if arch.permutesQK {
        f.set("\(a).vocab_size", .uint32(UInt32(c.vocabSize)))
        f.set("\(a).rope.dimension_count", .uint32(UInt32(c.headDim)))
    }
}
