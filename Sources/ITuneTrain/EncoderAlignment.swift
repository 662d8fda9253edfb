import Foundation
import ITuneModels
import ITuneTensor

// Aligning the sentence encoder to a pool's own instruction style before ranking, as INSTA does:
// two instructions (templates) of the same task are a positive pair (target cosine 1); two of
// tasks the base encoder already finds dissimilar (task-vector cosine < 0.3) a negative pair
// (target 0); the encoder is trained with sentence-transformers' CosineSimilarityLoss, the mean
// squared error between the pair's cosine and its target, on our own runtime.

public enum EncoderAlignment {
    public struct Report: Sendable {
        public var steps: Int
        public var positivePairs: Int
        public var negativePairs: Int
        public var firstLoss: Float
        public var lastLoss: Float
    }

    /// Trains `encoder` in place on pairs drawn (seeded) from `tasks` (name, instructions).
    public static func align(_ encoder: SentenceEncoder, tasks: [(String, [String])], steps: Int = 100, pairsPerStep: Int = 8,
                             learningRate: Float = 2e-5, seed: UInt64 = 0, log: (String) -> Void = { _ in }) throws -> Report {
        guard case let .bert(model) = encoder.backbone else {
            throw TrainError.invalid("--align needs a sentence-transformers encoder (--encoder DIR), not hidden states")
        }
        // A task without instructions has no embedding to align (and nothing to draw pairs from).
        if let empty = tasks.first(where: { $0.1.isEmpty }) {
            throw TrainError.invalid("--align: task '\(empty.0)' has no instructions; give it at least one (two or more to form positive pairs) or leave it out of the pool")
        }
        let usable = tasks.filter { $0.1.count >= 2 }
        guard !usable.isEmpty else { throw TrainError.invalid("--align needs tasks with at least two instructions (templates)") }
        // Negatives: task pairs the base encoder already finds dissimilar.
        let vectors = try tasks.map { TaskSelector.taskVector(try encoder.encode($0.1)) }
        var negatives: [(Int, Int)] = []
        for i in tasks.indices { for j in tasks.indices where i < j && TaskSelector.cosine(vectors[i], vectors[j]) < 0.3 { negatives.append((i, j)) } }
        model.setTrainable(true)
        defer { model.setTrainable(false) }
        let optimizer = try AdamW(parameters: model.parameters, config: AdamWConfig(learningRate: learningRate, weightDecay: 0.01))
        let context = TrainingContext(seed: seed)
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        var first: Float = .nan, last: Float = .nan
        for step in 1...max(steps, 1) {
            var left: [String] = [], right: [String] = [], labels: [Float] = []
            for k in 0..<pairsPerStep {
                if k % 2 == 1, !negatives.isEmpty {
                    let (i, j) = pick(negatives)
                    left.append(pick(tasks[i].1)); right.append(pick(tasks[j].1)); labels.append(0)
                } else {
                    let t = pick(usable).1
                    let a = Int(rng.next() % UInt64(t.count))
                    var b = Int(rng.next() % UInt64(t.count - 1))
                    if b >= a { b += 1 }
                    left.append(t[a]); right.append(t[b]); labels.append(1)
                }
            }
            let loss = try context.microBatch(step) {
                let u = try Tensor.concatenated(left.map { try pooled(model, encoder, $0) }, axis: 0)
                let v = try Tensor.concatenated(right.map { try pooled(model, encoder, $0) }, axis: 0)
                let diff = try u.cosineSimilarity(v) - Tensor(labels, shape: [labels.count], on: model.device)
                return try (diff * diff).mean()
            }
            try loss.backward()
            try clipGradients(optimizer.parameters, maxNorm: 1)
            try optimizer.update()
            optimizer.zeroGrad()
            let value = try loss.item()
            if step == 1 { first = value }
            last = value
            if step == 1 || step % 20 == 0 || step == steps { log(String(format: "align step %d/%d: cosine loss %.4f", step, steps, value)) }
        }
        return Report(steps: steps, positivePairs: usable.count, negativePairs: negatives.count, firstLoss: first, lastLoss: last)
    }

    /// Mean-pooled token states (1, H) of one text, recorded for the backward.
    static func pooled(_ model: BertModel, _ encoder: SentenceEncoder, _ text: String) throws -> Tensor {
        let ids = encoder.tokenizer.encode(text).prefix(encoder.maxLength).map(Int32.init)
        return try model(Tensor(indices: ids, shape: [1, ids.count], on: model.device)).meanOverTokens()
    }

    /// Writes the (aligned) encoder as a sentence-transformers directory: the source's files with
    /// the new weights.
    public static func save(_ encoder: SentenceEncoder, to directory: URL) throws {
        guard case let .bert(model) = encoder.backbone, let source = encoder.sourceDirectory else {
            throw TrainError.invalid("only a sentence-transformers encoder can be saved")
        }
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        for item in try fm.contentsOfDirectory(atPath: source.path) where !item.hasSuffix(".safetensors") && !item.hasSuffix(".index.json") && !item.hasPrefix(".") {
            let to = directory.appendingPathComponent(item)
            try? fm.removeItem(at: to)
            try fm.copyItem(at: source.appendingPathComponent(item), to: to)
        }
        try SafetensorsFile.write(model.namedParameters().map { (name: $0.0, tensor: $0.1) },
                                  to: directory.appendingPathComponent("model.safetensors"))
    }
}
