import ArgumentParser
import Foundation
import ITune

struct DemoPoolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-pool",
        abstract: "Write the built-in task families as a task pool (one Alpaca JSONL file per family × template, English and Japanese).")

    @Option(help: "Directory to write.") var output = "itune-pool"
    @Option(help: "Examples per file.") var perFile = 200
    @Option(help: "Seed.") var seed: UInt64 = 7

    func validate() throws { try OptionCheck.atLeast(perFile, 1, "per-file") }

    func run() throws {
        let files = try SyntheticTasks.writePool(to: URL(fileURLWithPath: output), perFile: perFile, seed: seed)
        print("wrote \(files.count) files (\(SyntheticTasks.familyNames.count) tasks × 6 templates, \(perFile) examples each) to \(output)")
    }
}
