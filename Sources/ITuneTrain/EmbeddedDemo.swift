import Foundation
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers

/// What `itune-gpu train` runs with no arguments: a complete instruction-tuning run that needs
/// nothing from outside. It builds a small Llama-shaped model in Hugging Face format (config,
/// safetensors and a byte-level BPE tokenizer.json trained here), generates the built-in
/// FLAN-style mixture (task families × English and Japanese phrasings, Alpaca and 指示/回答
/// templates), trains on it with the loss on answers only, and scores exact match on held-out
/// instructions before and after.
public struct EmbeddedDemo {
    public var outputDirectory = URL(fileURLWithPath: "itune-demo")
    public var device: Device = .cpu
    public var steps = 1500
    public var batchSize = 16
    public var learningRate: Float = 2e-3
    public var seed: UInt64 = 1
    public var trainExamples = 40_000
    /// Held-out instructions per family and language.
    public var heldOutPerFamily = 4
    public var hiddenSize = 128
    public var layers = 4

    public init() {}

    public struct FamilyScore: Sendable {
        public var task: String
        public var before: Int
        public var after: Int
        public var total: Int
    }

    public struct Result: Sendable {
        public var exactMatchBefore: Double
        public var exactMatchAfter: Double
        public var perTask: [FamilyScore]
        public var summary: TrainingSummary
        public var modelDirectory: URL
        public var samples: [(instruction: String, expected: String, got: String)]
    }

    static func template(forTask task: String) -> PromptTemplate {
        PromptTemplate(task.hasSuffix("/ja") ? .alpacaJA : .alpaca)
    }

    public func run(log: (String) -> Void = { print($0) }, onEvent: (TrainerEvent) -> Void = { _ in }) throws -> Result {
        let fm = FileManager.default
        try fm.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
        let families = SyntheticTasks.familyNames.count
        let (train, held) = data()
        log("data: built-in mixture of \(families) task families in English and Japanese: \(train.count) training examples, \(held.count) held out")

        // Tokenizer (byte-level BPE trained on the rendered training texts) and model (Llama-shaped,
        // GQA, tied embeddings), written in Hugging Face format.
        let rendered = train.prefix(3000).map { e -> String in
            Self.template(forTask: e.source.task).render(e.conversation).map {
                if case let .text(s, _) = $0 { return s } else { return "" }
            }.joined()
        }
        let base = outputDirectory.appendingPathComponent("base")
        var scratch = ScratchModel()
        scratch.vocabSize = 1024
        scratch.hiddenSize = hiddenSize
        scratch.layers = layers
        scratch.seed = seed
        let (tokenizer, model) = try scratch.write(to: base, texts: Array(rendered), on: device)
        let config = model.config
        let eos = Int32(config.eosTokenIDs[0]), pad = Int32(tokenizer.padTokenID ?? Int(eos))
        log(String(format: "model: Llama-shaped, %d layers, hidden %d, 4 heads / 2 kv-heads, vocab %d (byte-level BPE trained here): %.2fM parameters, written to %@",
                   layers, hiddenSize, config.vocabSize, Double(model.parameterCount) / 1e6, base.path))

        // Tokens: loss on the answers only, eos appended, packed into rows of 128.
        var tokenized: [TokenizedExample] = []
        for lang in ["/en", "/ja"] {
            let part = train.filter { $0.source.task.hasSuffix(lang) }
            let (t, _) = try DatasetTokenizer.tokenize(part, tokenizer,
                                                      TokenizeOptions(template: Self.template(forTask: lang), maxLength: 128))
            tokenized += t
        }
        let order = permutation(count: tokenized.count, seed: seed)
        let rows = DatasetTokenizer.pack(order.map { tokenized[$0] }, rowLength: 128)
            .map { TrainingRow(ids: $0.ids, labels: $0.labels, lengths: $0.lengths) }
        let meanTokens = Double(tokenized.reduce(0) { $0 + $1.ids.count }) / Double(max(tokenized.count, 1))
        log(String(format: "tokens: %.1f per example on average, packed into %d rows of 128", meanTokens, rows.count))

        let before = try score(model, tokenizer, held)
        log(String(format: "exact match on %d held-out instructions before training: %.1f%%", held.count, before.rate * 100))

        var options = TrainerOptions()
        options.batchSize = batchSize
        options.maxSteps = steps
        options.optimizer = AdamWConfig(learningRate: learningRate, weightDecay: 0.01)
        options.warmupRatio = 0.05
        options.seed = seed
        options.padID = pad
        let trainer = try Trainer(model: model, trainable: model.namedParameters(), options: options, train: rows,
                                  outputDirectory: outputDirectory)
        let summary = try trainer.run(onEvent: onEvent)

        let after = try score(model, tokenizer, held)
        log(String(format: "exact match on %d held-out instructions after training: %.1f%%", held.count, after.rate * 100))
        let trained = outputDirectory.appendingPathComponent("model")
        try model.savePretrained(to: trained, tokenizerDirectory: base)
        let scores = held.map(\.source.task).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }.map { task in
            FamilyScore(task: task, before: before.right[task, default: 0], after: after.right[task, default: 0],
                        total: held.filter { $0.source.task == task }.count)
        }
        return Result(exactMatchBefore: before.rate, exactMatchAfter: after.rate, perTask: scores, summary: summary,
                      modelDirectory: trained, samples: after.samples)
    }

    /// The mixture, and held-out instructions never seen in training (`heldOutPerFamily` per
    /// family and language).
    func data() -> (train: [Example], heldOut: [Example]) {
        let families = SyntheticTasks.familyNames.count
        var held: [Example] = []
        var perTask: [String: Int] = [:]
        for e in SyntheticTasks.examples(count: families * 2 * heldOutPerFamily * 3, seed: seed ^ 0xE7A1)
        where perTask[e.source.task, default: 0] < heldOutPerFamily {
            perTask[e.source.task, default: 0] += 1
            held.append(e)
        }
        let heldPrompts = Set(held.map { $0.conversation.turns[0].instruction })
        let train = SyntheticTasks.examples(count: trainExamples, seed: seed)
            .filter { !heldPrompts.contains($0.conversation.turns[0].instruction) }
        return (train, held)
    }

    /// Greedy answers to the held-out instructions, compared exactly (surrounding spaces aside).
    func score(_ model: any CausalLM, _ tokenizer: Tokenizer, _ examples: [Example])
        throws -> (rate: Double, right: [String: Int], samples: [(String, String, String)]) {
        var right: [String: Int] = [:], total = 0
        var samples: [(String, String, String)] = []
        var shownPerLanguage: [String: Int] = [:]
        for e in examples {
            let turn = e.conversation.turns[0]
            let prompt = Self.template(forTask: e.source.task).prompt(instruction: turn.instruction)
            let ids = tokenizer.encode(prompt, addSpecialTokens: false).map(Int32.init)
            let out = try model.generate(prompt: ids, options: GenerationOptions(maxNewTokens: 12, stopTokens: Set(model.config.eosTokenIDs.map(Int32.init))))
            let got = tokenizer.decode(out.tokens.map(Int.init), skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
            if got == turn.response { right[e.source.task, default: 0] += 1; total += 1 }
            let lang = String(e.source.task.suffix(2))
            if shownPerLanguage[lang, default: 0] < 4, e.source.index.map({ $0 % 3 == 0 }) ?? true {
                shownPerLanguage[lang, default: 0] += 1
                samples.append((turn.instruction, turn.response, got))
            }
        }
        return (Double(total) / Double(max(examples.count, 1)), right, samples)
    }
}
