import ArgumentParser
import Foundation
import ITune

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Fold a LoRA adapter into its base model and write a full model directory that transformers loads.")

    @Option(help: "Base model directory.") var model: String
    @Option(help: "PEFT LoRA adapter directory.") var adapter: String
    @Option(help: "Output model directory.") var output: String
    @Option(help: "Stored dtype: F32, F16 or BF16.") var dtype = "F32"

    func validate() throws {
        guard ["F32", "F16", "BF16"].contains(dtype.uppercased()) else {
            throw OptionError(option: "dtype", message: "must be F32, F16 or BF16, not \(dtype)")
        }
    }

    func run() throws {
        let base = URL(fileURLWithPath: model)
        let m = try loadPretrained(base, on: .cpu)
        let cfg = try m.loadAdapter(from: URL(fileURLWithPath: adapter))
        try m.mergeLoRA()
        try m.savePretrained(to: URL(fileURLWithPath: output), dtype: dtype.uppercased(), tokenizerDirectory: base)
        print("merged \(m.projections().filter { cfg.targets($0.name) }.count) adapted projections (r \(cfg.rank), alpha \(cfg.alpha)) into \(output)")
    }
}
