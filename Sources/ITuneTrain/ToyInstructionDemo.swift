import Foundation
import ITuneModels
import ITuneTensor

/// A small, real instruction-tuning run that needs nothing from outside: a character-level
/// Llama-shaped model learns three instruction families (reverse, sort, uppercase) from
/// generated (instruction, answer) pairs, with the loss on answer tokens only, and is scored
/// by exact match on held-out instructions before and after training.
///
/// It is what `itune-gpu train` runs with no arguments until Hugging Face models and
/// datasets are wired in; it exercises every op of the runtime on the chosen device.
public struct ToyInstructionDemo {
    public struct Result: Sendable {
        public var exactMatchBefore: Double
        public var exactMatchAfter: Double
        public var firstLoss: Float
        public var lastLoss: Float
        public var tokensPerSecond: Double
        public var steps: Int
        public var samples: [(prompt: String, expected: String, got: String)]
    }

    public var steps = 300
    public var batchSize = 16
    public var learningRate: Float = 3e-3
    public var seed: UInt64 = 1
    public var device: Device = .cpu
    public var heldOut = 60

    public init() {}

    /// Characters of the vocabulary after the three specials <pad>, <bos>, <eos>.
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :>")
    static let (pad, bos, eos): (Int32, Int32, Int32) = (0, 1, 2)
    static let maxLength = 24

    static func encode(_ s: String) -> [Int32] {
        s.map { c in Int32(alphabet.firstIndex(of: c)! + 3) }
    }

    static func decode(_ ids: [Int32]) -> String {
        String(ids.compactMap { $0 >= 3 && Int($0 - 3) < alphabet.count ? alphabet[Int($0 - 3)] : nil })
    }

    /// One (instruction, answer) pair of a random family.
    static func example(_ rng: inout SplitMix64) -> (String, String) {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        let n = 3 + Int(rng.next() % 4)
        switch rng.next() % 3 {
        case 0:
            let w = String((0..<n).map { _ in letters[Int(rng.next() % 26)] })
            return ("reverse: \(w) >", String(w.reversed()))
        case 1:
            let d = String((0..<n).map { _ in Character(String(rng.next() % 10)) })
            return ("sort: \(d) >", String(d.sorted()))
        default:
            let w = String((0..<n).map { _ in letters[Int(rng.next() % 26)] })
            return ("upper: \(w) >", w.uppercased())
        }
    }

    /// ids and targets (B,T): targets are the next token on answer positions, -100 elsewhere.
    static func batch(_ pairs: [(String, String)]) -> (ids: [Int32], targets: [Int32]) {
        var ids: [Int32] = [], targets: [Int32] = []
        for (prompt, answer) in pairs {
            let p = [bos] + encode(prompt), a = encode(answer) + [eos]
            var row = p + a
            var tgt = [Int32](repeating: -100, count: row.count)
            for i in (p.count - 1)..<(row.count - 1) { tgt[i] = row[i + 1] }
            while row.count < maxLength { row.append(pad); tgt.append(-100) }
            ids += row.prefix(maxLength)
            targets += tgt.prefix(maxLength)
        }
        return (ids, targets)
    }

    public func config() -> ModelConfig {
        ModelConfig(vocabSize: Self.alphabet.count + 3, hiddenSize: 96, intermediateSize: 256, numLayers: 2,
                    numHeads: 4, numKVHeads: 2, maxPositions: Self.maxLength, tieWordEmbeddings: true)
    }

    /// Greedy answer to one prompt (full recompute per token: the sequences are tiny).
    static func answer(_ model: LlamaModel, _ prompt: String) throws -> String {
        var ids = [bos] + encode(prompt)
        let start = ids.count
        try noGrad {
            while ids.count < maxLength {
                let logits = try model(Tensor(indices: ids, shape: [1, ids.count], on: model.device)).toArray()
                let V = model.config.vocabSize
                let last = logits[(ids.count - 1) * V..<ids.count * V]
                let next = Int32(last.indices.max { last[$0] < last[$1] }! - (ids.count - 1) * V)
                if next == eos { break }
                ids.append(next)
            }
        }
        return decode(Array(ids[start...]))
    }

    public func run(log: (String) -> Void = { print($0) }) throws -> Result {
        let model = try LlamaModel(config(), seed: seed, on: device)
        model.setTrainable(true)
        var rng = SplitMix64(seed: seed ^ 0xD1CE)
        let evalSet = (0..<heldOut).map { _ in Self.example(&rng) }
        let held = Set(evalSet.map(\.0))

        func exactMatch() throws -> (Double, [(String, String, String)]) {
            var right = 0
            var shown: [(String, String, String)] = []
            for (i, (p, a)) in evalSet.enumerated() {
                let got = try Self.answer(model, p)
                if got == a { right += 1 }
                if i < 6 { shown.append((p, a, got)) }
            }
            return (Double(right) / Double(evalSet.count), shown)
        }

        let (before, _) = try exactMatch()
        log(String(format: "model: %d parameters (Llama-shaped: %d layers, hidden %d, %d heads, %d kv-heads), device %@",
                   model.parameterCount, model.config.numLayers, model.config.hiddenSize, model.config.numHeads,
                   model.config.numKVHeads, "\(device)"))
        log(String(format: "exact match on %d held-out instructions before training: %.1f%%", evalSet.count, before * 100))

        let optimizer = try AdamW(parameters: model.parameters, config: AdamWConfig(learningRate: learningRate, weightDecay: 0.0))
        var first: Float = 0, last: Float = 0
        let started = Date()
        var tokens = 0
        for step in 1...steps {
            var pairs: [(String, String)] = []
            while pairs.count < batchSize {
                let e = Self.example(&rng)
                if !held.contains(e.0) { pairs.append(e) }
            }
            let (ids, targets) = Self.batch(pairs)
            let idT = try Tensor(indices: ids, shape: [batchSize, Self.maxLength], on: device)
            let tgT = try Tensor(indices: targets, shape: [batchSize, Self.maxLength], on: device)
            let loss = try model.loss(idT, targets: tgT)
            try loss.backward()
            _ = try clipGradients(optimizer.parameters, maxNorm: 1.0)
            // Linear warm-up over the first tenth, then linear decay.
            let warm = max(1, steps / 10)
            optimizer.config.learningRate = learningRate * Float(step < warm ? Double(step) / Double(warm)
                                                                   : Double(steps - step + 1) / Double(steps - warm + 1))
            try optimizer.update()
            optimizer.zeroGrad()
            let value = try loss.item()
            tokens += ids.count
            if step == 1 { first = value }
            last = value
            if step == 1 || step % 50 == 0 || step == steps {
                log(String(format: "step %4d/%d  loss %.4f  lr %.2e  %.0f tokens/s", step, steps, value,
                           optimizer.config.learningRate, Double(tokens) / Date().timeIntervalSince(started)))
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        let (after, shown) = try exactMatch()
        log(String(format: "exact match on %d held-out instructions after training: %.1f%%", evalSet.count, after * 100))
        return Result(exactMatchBefore: before, exactMatchAfter: after, firstLoss: first, lastLoss: last,
                      tokensPerSecond: Double(tokens) / elapsed, steps: steps,
                      samples: shown.map { (prompt: $0.0, expected: $0.1, got: $0.2) })
    }
}
