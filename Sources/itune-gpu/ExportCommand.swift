import ArgumentParser
import Foundation
import ITune

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a model or adapter for llama.cpp / Ollama / LM Studio (GGUF) or mlx-lm.")

    @Option(help: "Base model directory (Hugging Face layout, with tokenizer.json for GGUF).") var model: String
    @Option(help: "PEFT LoRA adapter directory: merged for gguf and mlx-model, converted for gguf-lora and mlx.") var adapter: String?
    @Option(help: "gguf, gguf-lora, mlx or mlx-model.") var format: String
    @Option(help: "Stored type: f32, f16, bf16 or q8_0 (q8_0 for GGUF only).") var dtype = "f16"
    @Option(help: "Output file (gguf, gguf-lora) or directory (mlx, mlx-model).") var output: String

    func validate() throws {
        guard ExportFormat(rawValue: format) != nil else {
            throw OptionError(option: "format", message: "must be one of \(ExportFormat.allCases.map(\.rawValue).joined(separator: ", ")), not \(format)")
        }
        guard ExportDType(rawValue: dtype.lowercased()) != nil else {
            throw OptionError(option: "dtype", message: "must be f32, f16, bf16 or q8_0, not \(dtype)")
        }
    }

    func run() throws {
        guard let f = ExportFormat(rawValue: format), let d = ExportDType(rawValue: dtype.lowercased()) else { return }
        let request = ExportRequest(model: URL(fileURLWithPath: model), adapter: adapter.map { URL(fileURLWithPath: $0) },
                                    format: f, dtype: d, output: URL(fileURLWithPath: output))
        print(try runExport(request))
    }
}
