import Foundation
import ITuneModels
import ITuneTensor

// A PEFT LoRA adapter re-expressed for llama.cpp (GGUF LoRA) and for mlx-lm.

/// The low-rank pairs of a PEFT adapter directory, read straight from its files.
public struct PEFTAdapter {
    public struct Pair {
        /// The adapted module, e.g. model.layers.0.self_attn.q_proj.
        public let module: String
        /// A (r, in) and B (out, r) as PEFT stores them.
        public let a: [Float], b: [Float]
        public let inFeatures: Int, outFeatures: Int
    }

    public let config: LoRAConfig
    public let pairs: [Pair]

    public init(directory: URL) throws {
        let cfgURL = directory.appendingPathComponent("adapter_config.json")
        let j = try readJSONObject(cfgURL)
        guard (j["peft_type"] as? String) == "LORA" else { throw ExportError.adapter(cfgURL.path, "peft_type is not LORA") }
        guard let r = (j["r"] as? NSNumber)?.intValue, r > 0, let alpha = (j["lora_alpha"] as? NSNumber)?.floatValue else {
            throw ExportError.adapter(cfgURL.path, "r and lora_alpha are required (r positive)")
        }
        for key in ["rank_pattern", "alpha_pattern"] where !((j[key] as? [String: Any])?.isEmpty ?? true) {
            throw ExportError.adapter(cfgURL.path, "\(key) (per-module ranks or alphas) is not supported")
        }
        if (j["use_dora"] as? Bool) == true { throw ExportError.adapter(cfgURL.path, "use_dora is not supported (plain LoRA only)") }
        let targets = (j["target_modules"] as? [String]) ?? ((j["target_modules"] as? String).map { [$0] } ?? [])
        config = LoRAConfig(rank: r, alpha: alpha, dropout: (j["lora_dropout"] as? NSNumber)?.floatValue ?? 0,
                            targetModules: targets, useRSLoRA: (j["use_rslora"] as? Bool) ?? false)
        let file = try SafetensorsFile(url: directory.appendingPathComponent("adapter_model.safetensors"))
        var out: [Pair] = []
        // In name order, as the converter meets them (safetensors lists names sorted).
        for name in file.names.sorted() where name.hasSuffix(".lora_A.weight") || name.hasSuffix(".lora_A.default.weight") {
            let isDefault = name.hasSuffix(".lora_A.default.weight")
            let stem = String(name.dropLast(isDefault ? ".lora_A.default.weight".count : ".lora_A.weight".count))
            let bName = stem + (isDefault ? ".lora_B.default.weight" : ".lora_B.weight")
            let ae = try file.entry(name), be = try file.entry(bName)
            guard ae.shape.count == 2, be.shape.count == 2, ae.shape[0] == r, be.shape[1] == r else {
                throw ExportError.adapter(file.url.path, "\(name) \(ae.shape) / \(bName) \(be.shape) are not (r, in) / (out, r) with r = \(r)")
            }
            let module = stem.hasPrefix("base_model.model.") ? String(stem.dropFirst("base_model.model.".count)) : stem
            out.append(Pair(module: module, a: try file.floats(name), b: try file.floats(bName), inFeatures: ae.shape[1], outFeatures: be.shape[0]))
        }
        guard !out.isEmpty else { throw ExportError.adapter(file.url.path, "holds no lora_A/lora_B tensors") }
        pairs = out
    }
}

/// A PEFT adapter as a llama.cpp LoRA GGUF (`--lora`): general.type = adapter, adapter.type =
/// lora, adapter.lora.alpha, and `<tensor>.lora_a` (r, in) / `.lora_b` (out, r) under llama.cpp's
/// tensor names, B's rows permuted for Q and K as the base weights are. llama.cpp scales by
/// alpha / r; with rsLoRA (alpha / √r) the alpha written is alpha·√r, so the product is PEFT's.
public func ggufLoRAFile(_ adapter: PEFTAdapter, baseConfig c: ModelConfig, dtype: GGMLType, name: String) throws -> GGUFFile {
    let arch = try GGUFArchitecture(c.architecture)
    var f = GGUFFile()
    f.set("general.architecture", .string(arch.name))
    f.set("general.type", .string("adapter"))
    f.set("adapter.type", .string("lora"))
    f.set("general.name", .string(name))
    let r = Float(adapter.config.rank)
    f.set("adapter.lora.alpha", .float32(adapter.config.useRSLoRA ? adapter.config.alpha * r.squareRoot() : adapter.config.alpha))
    f.set("general.quantization_version", .uint32(2))
    f.set("general.alignment", .uint32(UInt32(GGUFFile.defaultAlignment)))
    for p in adapter.pairs {
        let base = try ggufTensorName(p.module + ".weight")
        if base == "output.weight", c.tieWordEmbeddings {
            throw ExportError.unsupported("the adapter adapts lm_head, which this model ties to its embeddings: llama.cpp has no output tensor to apply it to")
        }
        var b = p.b
        if arch.permutesQK {
            if p.module.hasSuffix("q_proj") { b = try permuteRotaryRows(b, rows: p.outFeatures, cols: adapter.config.rank, heads: c.numHeads) }
            if p.module.hasSuffix("k_proj") { b = try permuteRotaryRows(b, rows: p.outFeatures, cols: adapter.config.rank, heads: c.numKVHeads) }
        }
        try addTensor(&f, name: base + ".lora_a", values: p.a, shape: [adapter.config.rank, p.inFeatures], requested: dtype)
        try addTensor(&f, name: base + ".lora_b", values: b, shape: [p.outFeatures, adapter.config.rank], requested: dtype)
    }
    return f
}

/// Transposes a row-major rows × cols matrix.
func transposed(_ v: [Float], rows: Int, cols: Int) -> [Float] {
    var out = [Float](repeating: 0, count: v.count)
    for i in 0..<rows { for j in 0..<cols { out[j * rows + i] = v[i * cols + j] } }
    return out
}

/// Writes a PEFT adapter as an mlx-lm adapter directory: `adapters.safetensors` with
/// `<module>.lora_a` (in, r) = Aᵀ and `<module>.lora_b` (r, out) = Bᵀ, and `adapter_config.json`
/// with fine_tune_type "lora", num_layers (mlx-lm adapts the last num_layers layers) and
/// lora_parameters {rank, scale, dropout, keys}. mlx-lm's scale multiplies B·A as PEFT's scaling
/// does (alpha / r, or alpha / √r with rsLoRA), so it is written as that product.
public func writeMLXAdapter(_ adapter: PEFTAdapter, baseConfig c: ModelConfig, dtype: String, to directory: URL) throws {
    var layersSeen = Set<Int>()
    var keys = Set<String>()
    var tensors: [(name: String, tensor: Tensor)] = []
    let r = adapter.config.rank
    for p in adapter.pairs {
        let parts = p.module.split(separator: ".").map(String.init)
        guard parts.count >= 4, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else {
            throw ExportError.unsupported("adapted module \(p.module) is outside model.layers; mlx-lm adapters cover decoder layers only")
        }
        layersSeen.insert(layer)
        keys.insert(parts[3...].joined(separator: "."))
        tensors.append((p.module + ".lora_a", try Tensor(transposed(p.a, rows: r, cols: p.inFeatures), shape: [p.inFeatures, r])))
        tensors.append((p.module + ".lora_b", try Tensor(transposed(p.b, rows: p.outFeatures, cols: r), shape: [r, p.outFeatures])))
    }
    let first = layersSeen.min() ?? 0
    let json: [String: Any] = [
        "fine_tune_type": "lora", "num_layers": c.numLayers - first,
        "lora_parameters": ["rank": r, "scale": adapter.config.scaling, "dropout": adapter.config.dropout, "keys": keys.sorted()] as [String: Any],
    ]
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    try writeAtomically(try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]),
                        to: directory.appendingPathComponent("adapter_config.json"))
    try SafetensorsFile.write(tensors, metadata: ["format": "mlx"], dtype: dtype, to: directory.appendingPathComponent("adapters.safetensors"))
}
