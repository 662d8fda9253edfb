import ArgumentParser
import Foundation
import ITune

struct SelectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "select",
        abstract: "Rank a pool's tasks by how alike their instructions are to a target task's, and write the top ones as a mixture.",
        discussion: """
        Similarity is the cosine of the mean sentence embeddings of the tasks' instructions \
        (INSTA, "Instruction Matters", 2024). Files of the pool are grouped into tasks by dataset \
        (<dataset>_<template>.jsonl); a task's instructions are its Definition, its records' \
        instruction field, or a few prompts per template. Train on the result with \
        itune-gpu train --mixture FILE.
        """)

    @Option(help: "The target: a task name of the pool, or a data file or directory of the target task.") var target: String
    @Option(help: "The pool: a directory of task files.") var pool: String
    @Option(help: "A sentence-transformers model directory (e.g. all-MiniLM-L6-v2).") var encoder: String?
    @Option(help: "Without --encoder: a causal LM whose mean-pooled hidden states embed the instructions.") var model: String?
    @Option(help: "How many tasks to select.") var topK = 5
    @Option(help: "Examples-proportional cap per task in the mixture written.") var cap = 3000
    @Option(help: "Mixture file to write.") var output = "mixture.json"
    @Option(help: "Instructions (prompts) sampled per template file.") var promptsPerFile = 4
    @Flag(help: "First align the encoder to the pool's instruction style (INSTA): templates of one task are pulled together, tasks it already finds dissimilar pushed apart.")
    var align = false
    @Option(help: "With --align: optimizer steps.") var alignSteps = 100
    @Option(help: "With --align: where the aligned encoder is saved, and reused from when it exists (default ENCODER-aligned).")
    var alignedEncoder: String?
    @Flag(help: "Print the ranking as JSON.") var json = false
    @OptionGroup var deviceOptions: DeviceOptions

    func validate() throws {
        try OptionCheck.atLeast(topK, 1, "top-k")
        try OptionCheck.atLeast(cap, 1, "cap")
        try OptionCheck.atLeast(promptsPerFile, 1, "prompts-per-file")
        try OptionCheck.atLeast(alignSteps, 1, "align-steps")
    }

    func run() throws {
        let device = try deviceOptions.resolve(verbose: !json)
        var embedder: SentenceEncoder
        if let encoder {
            embedder = try SentenceEncoder(directory: URL(fileURLWithPath: encoder), on: device)
        } else if let model {
            embedder = SentenceEncoder(causalLM: try ModelBundle(directory: URL(fileURLWithPath: model), on: device))
        } else {
            throw ValidationError("give --encoder DIR (a sentence-transformers model) or --model DIR (its hidden states are used)")
        }
        var tasks = try TaskPool.load(pool, promptsPerFile: promptsPerFile)
        if align {
            guard let encoder else { throw ValidationError("--align needs --encoder DIR") }
            let out = alignedEncoder ?? (encoder.hasSuffix("/") ? String(encoder.dropLast()) : encoder) + "-aligned"
            if FileManager.default.fileExists(atPath: out + "/model.safetensors") {
                if !json { print("reusing the aligned encoder in \(out)") }
            } else {
                let report = try EncoderAlignment.align(embedder, tasks: tasks.map { ($0.name, $0.instructions) }, steps: alignSteps,
                                                        log: json ? { _ in } : { print($0) })
                try EncoderAlignment.save(embedder, to: URL(fileURLWithPath: out))
                if !json {
                    print(String(format: "aligned on %d tasks with templates, %d dissimilar task pairs: cosine loss %.4f → %.4f; saved to %@",
                                 report.positivePairs, report.negativePairs, report.firstLoss, report.lastLoss, out))
                }
            }
            embedder = try SentenceEncoder(directory: URL(fileURLWithPath: out), on: device)
        }
        if !json { print("embeddings: \(embedder.description)") }
        let targetTexts: [String]
        let targetName: String
        if let i = tasks.firstIndex(where: { $0.name == target }) {
            targetTexts = tasks[i].instructions
            targetName = target
            tasks.remove(at: i)
        } else if FileManager.default.fileExists(atPath: target) {
            let t = try TaskPool.load(target, promptsPerFile: promptsPerFile)
            targetTexts = t.flatMap(\.instructions)
            targetName = (target as NSString).lastPathComponent
            tasks.removeAll { task in t.contains { $0.name == task.name } }
        } else {
            throw ValidationError("target '\(target)' is neither a task of \(pool) (\(tasks.prefix(8).map(\.name).joined(separator: ", "))…) nor a file")
        }
        let ranked = try TaskSelector.rank(target: targetTexts, pool: tasks.map { ($0.name, $0.instructions) }, encoder: embedder)
        let chosen = ranked.prefix(topK)
        var mixture = Mixture(tasks: chosen.map { s in
            let t = tasks.first { $0.name == s.task }!
            return Mixture.Task(name: t.name, files: t.files, weight: 1, similarity: Double(s.similarity))
        }, cap: cap)
        mixture.target = targetName
        try mixture.write(output)
        if json {
            let rows = ranked.map { ["task": $0.task, "similarity": Double($0.similarity)] as [String: Any] }
            let data = try JSONSerialization.data(withJSONObject: ["target": targetName, "ranking": rows, "mixture": output],
                                                  options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("target \(targetName): \(targetTexts.count) instruction(s); pool: \(tasks.count) tasks")
            for (i, s) in ranked.enumerated() {
                print(String(format: "%3d. %@ %.4f%@", i + 1, s.task.padding(toLength: 28, withPad: " ", startingAt: 0), s.similarity,
                             i < topK ? "  ← selected" : ""))
            }
            print("wrote \(output): \(chosen.count) tasks (examples-proportional, cap \(cap)); train with itune-gpu train --mixture \(output)")
        }
    }
}
