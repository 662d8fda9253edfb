import Foundation
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers

// Choosing which tasks to mix in for a target task by how alike their instructions are: the
// cosine similarity of sentence embeddings of the instructions (the "Instruction Matters" /
// INSTA approach). A task's vector is the mean of its instructions' normalised embeddings.

/// Sentence embeddings from a sentence-transformers directory (a BertModel, its WordPiece
/// tokenizer.json, 1_Pooling/config.json and an optional Normalize module), or, without one,
/// the mean-pooled last hidden states of a causal LM.
public final class SentenceEncoder {
    enum Backbone {
        case bert(BertModel)
        case causal(any CausalLM)
    }

    let backbone: Backbone
    /// The sentence-transformers directory this encoder was read from (nil for the fallback).
    public let sourceDirectory: URL?
    public let tokenizer: Tokenizer
    public let normalize: Bool
    public let maxLength: Int
    /// What the embeddings are, for the output ("sentence-transformers encoder at …").
    public let description: String

    /// A sentence-transformers model directory.
    public init(directory: URL, on device: Device) throws {
        let fm = FileManager.default
        // Pooling: mean is what sentence-transformers' MiniLM/mpnet models use; others are refused.
        let poolingURL = directory.appendingPathComponent("1_Pooling/config.json")
        if fm.fileExists(atPath: poolingURL.path),
           let pooling = try JSONSerialization.jsonObject(with: Data(contentsOf: poolingURL)) as? [String: Any],
           (pooling["pooling_mode_mean_tokens"] as? Bool) != true, (pooling["pooling_mode"] as? String) != "mean" {
            // Both spellings: pooling_mode_mean_tokens (sentence-transformers ≤ 3) and pooling_mode (newer).
            throw ModelFileError.malformed(file: poolingURL.path, "only mean pooling is supported (pooling_mode \"mean\" / pooling_mode_mean_tokens)")
        }
        var normalize = false
        let modulesURL = directory.appendingPathComponent("modules.json")
        if let data = try? Data(contentsOf: modulesURL), let modules = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] {
            normalize = modules.contains { ($0["type"] as? String)?.hasSuffix("Normalize") ?? false }
        }
        var maxLength = 256
        if let data = try? Data(contentsOf: directory.appendingPathComponent("sentence_bert_config.json")),
           let cfg = try JSONSerialization.jsonObject(with: data) as? [String: Any], let m = cfg["max_seq_length"] as? Int {
            maxLength = m
        }
        let model = try BertModel.load(directory, on: device)
        backbone = .bert(model)
        sourceDirectory = directory
        tokenizer = try Tokenizer(directory: directory)
        self.normalize = normalize
        self.maxLength = min(maxLength, model.config.maxPositions)
        description = "sentence-transformers encoder \(directory.lastPathComponent) (BERT, \(model.config.numLayers) layers, mean pooling\(normalize ? ", normalised" : ""))"
    }

    /// The fallback: a causal LM's last hidden states, mean-pooled and normalised.
    public init(causalLM bundle: ModelBundle) {
        backbone = .causal(bundle.model)
        sourceDirectory = nil
        tokenizer = bundle.tokenizer
        normalize = true
        maxLength = min(bundle.model.config.maxPositions, 512)
        description = "mean-pooled hidden states of \(bundle.directory.lastPathComponent) (no --encoder given)"
    }

    /// One vector per text, in order. Texts of equal token length share a forward pass.
    public func encode(_ texts: [String]) throws -> [[Float]] {
        let ids = tokenizer.encode(batch: texts).map { Array($0.prefix(maxLength)).map(Int32.init) }
        var out = [[Float]](repeating: [], count: texts.count)
        var byLength: [Int: [Int]] = [:]
        for (i, t) in ids.enumerated() { byLength[max(t.count, 1), default: []].append(i) }
        try noGrad {
            for (T, members) in byLength.sorted(by: { $0.key < $1.key }) {
                for chunk in stride(from: 0, to: members.count, by: 32) {
                    let rows = Array(members[chunk..<min(members.count, chunk + 32)])
                    let flat = rows.flatMap { ids[$0].isEmpty ? [Int32(0)] : ids[$0] }
                    let states: Tensor
                    switch backbone {
                    case let .bert(m):
                        states = try m(Tensor(indices: flat, shape: [rows.count, T], on: m.device))
                    case let .causal(m):
                        states = try m.hiddenStates(Tensor(indices: flat, shape: [rows.count, T], on: m.device))
                    }
                    let pooled = try states.meanOverTokens().toArray()
                    let H = pooled.count / rows.count
                    for (k, i) in rows.enumerated() {
                        var v = Array(pooled[(k * H)..<((k + 1) * H)])
                        if normalize {
                            let norm = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
                            v = v.map { $0 / norm }
                        }
                        out[i] = v
                    }
                }
            }
        }
        return out
    }
}

/// A task of a pool: its name, its files, and the instruction texts that describe it.
public struct PoolTask: Sendable {
    public var name: String
    public var files: [String]
    public var instructions: [String]
    public var examples: Int
}

public enum TaskPool {
    /// Groups a directory's .json/.jsonl files into tasks. `<dataset>_<template>.jsonl` files
    /// (FLAN/T0 pools) are grouped by dataset: the longest name prefix, in whole `_` words, that
    /// the file shares with another file and that no third file's different continuation
    /// splits; a file alone is its own task. Instruction texts: a task file's Definition, the
    /// records' `instruction`, or for prompt/completion files a few prompts per template.
    public static func load(_ directory: String, promptsPerFile: Int = 4) throws -> [PoolTask] {
        try examples(directory).map { name, examples in
            var files: [String] = []
            var taken: [String: Int] = [:]
            var seen = Set<String>()
            var texts: [String] = []
            for e in examples {
                if taken[e.source.file] == nil { files.append(e.source.file); taken[e.source.file] = 0 }
                // Up to `promptsPerFile` distinct instructions of each file (its template).
                guard let t = e.conversation.turns.first, taken[e.source.file]! < promptsPerFile,
                      seen.insert(t.instruction).inserted else { continue }
                texts.append(t.instruction)
                taken[e.source.file]! += 1
            }
            return PoolTask(name: name, files: files, instructions: texts, examples: examples.count)
        }
    }

    /// The examples of each task of a directory (files grouped into datasets as in `load`).
    public static func examples(_ directory: String) throws -> [(String, [Example])] {
        let data = try DatasetReader.read([directory])
        let stems = Set(data.examples.map { (($0.source.file as NSString).lastPathComponent as NSString).deletingPathExtension })
        let groups = groupByDataset(Array(stems))
        var byTask: [String: [Example]] = [:]
        for e in data.examples {
            let stem = ((e.source.file as NSString).lastPathComponent as NSString).deletingPathExtension
            byTask[groups[stem] ?? stem, default: []].append(e)
        }
        return byTask.keys.sorted().map { ($0, byTask[$0]!) }
    }

    /// First words that name a family of datasets in prompt-source/T0 file names, with how
    /// many words the dataset name takes (glue_mrpc and glue_qqp are two datasets).
    static let familyPrefixes: [String: Int] = [
        "glue": 2, "wiki": 2, "super": 3, "adversarial": 3, "kilt": 3, "duorc": 2, "trivia": 2, "web": 2,
    ]

    /// File stem → dataset name: stems are keyed by their first word (or the family's first
    /// words), and a key's dataset name is the longest word prefix all its stems share, short
    /// of any stem's last word (which names the template).
    static func groupByDataset(_ stems: [String]) -> [String: String] {
        let words = stems.map { $0.split(separator: "_").map(String.init) }
        var groups: [String: [Int]] = [:]
        for (i, w) in words.enumerated() {
            let n = min(w.count, familyPrefixes[w[0]] ?? 1)
            groups[w.prefix(n).joined(separator: "_"), default: []].append(i)
        }
        var out: [String: String] = [:]
        for (key, members) in groups {
            guard members.count > 1 else { out[stems[members[0]]] = key; continue }
            var n = key.split(separator: "_").count
            let shortest = members.map { words[$0].count }.min()!
            while n < shortest - 1, Set(members.map { words[$0][n] }).count == 1 { n += 1 }
            let name = words[members[0]].prefix(n).joined(separator: "_")
            for m in members { out[stems[m]] = name }
        }
        return out
    }
}

/// One task's similarity to the target.
public struct TaskScore: Sendable {
    public var task: String
    public var similarity: Float
}

public enum TaskSelector {
    /// The normalised mean of a task's instruction embeddings.
    public static func taskVector(_ embeddings: [[Float]]) -> [Float] {
        guard let H = embeddings.first?.count else { return [] }
        var v = [Float](repeating: 0, count: H)
        for e in embeddings { for k in 0..<H { v[k] += e[k] } }
        let n = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        return v.map { $0 / n }
    }

    public static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for k in a.indices { dot += a[k] * b[k]; na += a[k] * a[k]; nb += b[k] * b[k] }
        return dot / max((na * nb).squareRoot(), 1e-12)
    }

    /// The pool's tasks (the target excluded) ranked by the cosine similarity of their task
    /// vector to the target's, highest first; ties by name.
    public static func rank(target: [String], pool: [(String, [String])], encoder: SentenceEncoder) throws -> [TaskScore] {
        let t = taskVector(try encoder.encode(target))
        return try pool.map { name, texts in
            TaskScore(task: name, similarity: cosine(t, taskVector(try encoder.encode(texts))))
        }.sorted { $0.similarity != $1.similarity ? $0.similarity > $1.similarity : $0.task < $1.task }
    }
}
