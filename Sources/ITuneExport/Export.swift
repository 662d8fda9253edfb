import Foundation
import ITuneModels
import ITuneTensor

/// Where an export goes.
public enum ExportFormat: String, CaseIterable, Sendable {
    /// The model (merged with the adapter when one is given) as one GGUF file for llama.cpp,
    /// Ollama and LM Studio.
    case gguf
    /// The adapter alone as a llama.cpp LoRA GGUF (`llama-cli --lora`, Ollama's `ADAPTER`).
    case ggufLoRA = "gguf-lora"
    /// The adapter as an mlx-lm adapter directory (`mlx_lm.generate --adapter-path`).
    case mlx
    /// The merged model as a directory mlx-lm loads (`mlx_lm.generate --model`).
    case mlxModel = "mlx-model"
}

/// The stored element type of an export.
public enum ExportDType: String, CaseIterable, Sendable {
    case f32, f16, bf16, q8_0

    var ggml: GGMLType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q8_0: return .q8_0
        }
    }

    /// The safetensors dtype, nil for q8_0 (which safetensors has no name for).
    var safetensors: String? {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q8_0: return nil
        }
    }
}

public enum ExportError: Error, CustomStringConvertible, Equatable {
    case unreadable(String, String)
    case tokenizer(String, String)
    case adapter(String, String)
    case unsupported(String)
    case invalid(String)

    public var description: String {
        switch self {
        case let .unreadable(file, why): return "\(file): cannot read: \(why)"
        case let .tokenizer(file, why): return "\(file): \(why)"
        case let .adapter(file, why): return "\(file): \(why)"
        case let .unsupported(why): return why
        case let .invalid(why): return why
        }
    }
}

/// One export: a Hugging Face model directory, an optional PEFT adapter, a format, a dtype and
/// where to write.
public struct ExportRequest: Sendable {
    public var model: URL
    public var adapter: URL?
    public var format: ExportFormat
    public var dtype: ExportDType
    public var output: URL

    public init(model: URL, adapter: URL? = nil, format: ExportFormat, dtype: ExportDType, output: URL) {
        self.model = model
        self.adapter = adapter
        self.format = format
        self.dtype = dtype
        self.output = output
    }
}

/// Runs `request` and returns one line saying what was written. Errors name the file, tensor
/// or option at fault.
@discardableResult
public func runExport(_ request: ExportRequest) throws -> String {
    let fm = FileManager.default
    switch request.format {
    case .gguf:
        let model = try loadPretrained(request.model, on: .cpu)
        if let adapter = request.adapter {
            try model.loadAdapter(from: adapter)
            try model.mergeLoRA()
        }
        let file = try ggufModelFile(model, directory: request.model, dtype: request.dtype.ggml)
        try writeAtomically(try file.serialized(), to: request.output)
        return "wrote \(request.output.path): GGUF v3, \(file.tensors.count) tensors, \(request.dtype.rawValue)\(request.adapter == nil ? "" : ", adapter merged")"
    case .ggufLoRA:
        guard let dir = request.adapter else { throw ExportError.invalid("--format gguf-lora needs --adapter") }
        let adapter = try PEFTAdapter(directory: dir)
        let config = try ModelConfig(configJSON: request.model.appendingPathComponent("config.json"))
        let file = try ggufLoRAFile(adapter, baseConfig: config, dtype: request.dtype.ggml, name: dir.standardizedFileURL.lastPathComponent)
        try writeAtomically(try file.serialized(), to: request.output)
        return "wrote \(request.output.path): GGUF LoRA adapter, \(adapter.pairs.count) adapted projections, \(request.dtype.rawValue)"
    case .mlx:
        guard let dir = request.adapter else { throw ExportError.invalid("--format mlx needs --adapter") }
        guard let st = request.dtype.safetensors else { throw ExportError.invalid("--format mlx stores f32, f16 or bf16, not q8_0") }
        let adapter = try PEFTAdapter(directory: dir)
        let config = try ModelConfig(configJSON: request.model.appendingPathComponent("config.json"))
        try writeMLXAdapter(adapter, baseConfig: config, dtype: st, to: request.output)
        return "wrote \(request.output.path): mlx-lm adapter, \(adapter.pairs.count) adapted projections"
    case .mlxModel:
        guard let st = request.dtype.safetensors else { throw ExportError.invalid("--format mlx-model stores f32, f16 or bf16, not q8_0") }
        let model = try loadPretrained(request.model, on: .cpu)
        if let adapter = request.adapter {
            try model.loadAdapter(from: adapter)
            try model.mergeLoRA()
        }
        try model.savePretrained(to: request.output, dtype: st, tokenizerDirectory: request.model)
        let jinja = request.model.appendingPathComponent("chat_template.jinja")
        if fm.fileExists(atPath: jinja.path) {
            try writeAtomically(try Data(contentsOf: jinja), to: request.output.appendingPathComponent("chat_template.jinja"))
        }
        return "wrote \(request.output.path): model directory for mlx-lm, \(st)\(request.adapter == nil ? "" : ", adapter merged")"
    }
}
