import Foundation
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers

/// Preference tuning after instruction tuning, with nothing from outside: the embedded
/// demonstration's SFT run (`EmbeddedDemo`), then a DPO stage with LoRA on pairs built from the
/// same task families — the right answer chosen, a plausible wrong one (a number off by a little,
/// two characters swapped) rejected. It reports on the held-out instructions, before and after
/// the DPO stage: exact match, how often the model gives the chosen answer a higher
/// log-probability than the rejected one, and TRL's reward accuracy against the SFT model.
public struct PreferenceDemo {
    /// Stage 1 (its output directory holds both stages).
    public var sft = EmbeddedDemo()
    public var dpoSteps = 300
    public var dpoBatchSize = 16
    public var dpoLearningRate: Float = 5e-4
    public var beta = 0.1
    public var loraRank = 16
    /// Training pairs drawn from the stage-1 training instructions.
    public var pairs = 6000

    public init() {}

    public struct Result: Sendable {
        public var sft: EmbeddedDemo.Result
        /// Held-out exact match after SFT (= before DPO) and after DPO.
        public var exactMatchBefore: Double
        public var exactMatchAfter: Double
        /// Held-out pairs whose chosen answer the model rates above the rejected one.
        public var preferenceAccuracyBefore: Double
        public var preferenceAccuracyAfter: Double
        /// TRL's rewards/accuracies and rewards/margins on the held-out pairs after DPO (against
        /// the SFT model as the reference; both are 0 before by definition).
        public var rewardAccuracyAfter: Double
        public var rewardMarginAfter: Double
        public var heldOutPairs: Int
        public var summary: TrainingSummary
    }

    /// Pairs for `examples`: prompt, right answer, a plausible wrong one.
    static func pairs(_ examples: [Example], seed: UInt64) -> [PreferenceExample] {
        examples.enumerated().map { i, e in
            let turn = e.conversation.turns[0]
            return PreferenceExample(prompt: Conversation(turns: [Turn(instruction: turn.instruction, input: turn.input, response: "")]),
                                     chosen: turn.response,
                                     rejected: SyntheticTasks.plausibleWrongAnswer(turn.response, seed: seed &+ UInt64(i)),
                                     source: e.source)
        }
    }

    /// Rows of pairs, each language in its template (as stage 1 trains them).
    static func rows(_ pairs: [PreferenceExample], _ tokenizer: Tokenizer) throws -> [TrainingRow] {
        var rows: [TrainingRow] = []
        for lang in ["/en", "/ja"] {
            let part = pairs.filter { $0.source.task.hasSuffix(lang) }
            let (t, _) = try DatasetTokenizer.tokenizePairs(part, tokenizer,
                                                            TokenizeOptions(template: EmbeddedDemo.template(forTask: lang), maxLength: 128))
            rows += t.map { TrainingRow(chosen: ($0.chosen.ids, $0.chosen.labels), rejected: ($0.rejected.ids, $0.rejected.labels)) }
        }
        return rows
    }

    /// The share of pairs whose chosen answer gets the higher summed log-probability.
    static func preferenceAccuracy(_ model: any CausalLM, _ rows: [TrainingRow], padID: Int32) throws -> Double {
        var right = 0
        for lo in stride(from: 0, to: rows.count, by: 32) {
            let chunk = Array(rows[lo..<min(rows.count, lo + 32)])
            let lp = try referenceLogProbs(model: model, reference: .frozen(model), rows: chunk, batch: PairBatch(chunk, padID: padID))
            right += (0..<chunk.count).filter { lp[$0] > lp[chunk.count + $0] }.count
        }
        return Double(right) / Double(max(rows.count, 1))
    }

    public func run(log: (String) -> Void = { print($0) }, onEvent: (TrainerEvent) -> Void = { _ in }) throws -> Result {
        log("stage 1: instruction tuning (the embedded demonstration)")
        let first = try sft.run(log: log, onEvent: onEvent)
        log("stage 2: DPO with LoRA on preference pairs (right answer chosen, a plausible wrong one rejected)")
        let bundle = try ModelBundle(directory: first.modelDirectory, on: sft.device)
        let model = bundle.model, tokenizer = bundle.tokenizer
        let pad = Int32(tokenizer.padTokenID ?? tokenizer.eosTokenID ?? 0)
        let (train, held) = sft.data()
        let trainRows = try Self.rows(Self.pairs(Array(train.prefix(pairs)), seed: sft.seed ^ 0xD90), tokenizer)
        let heldRows = try Self.rows(Self.pairs(held, seed: sft.seed ^ 0x4E1D), tokenizer)
        log("pairs: \(trainRows.count) for training, \(heldRows.count) from the held-out instructions")

        let exactBefore = try sft.score(model, tokenizer, held).rate
        let preferenceBefore = try Self.preferenceAccuracy(model, heldRows, padID: pad)
        log(String(format: "before DPO (after SFT): exact match %.1f%%, chosen rated above rejected on %.1f%% of held-out pairs",
                   exactBefore * 100, preferenceBefore * 100))

        let lora = LoRAConfig(rank: loraRank, alpha: Float(2 * loraRank), dropout: 0)
        try model.addLoRA(lora, seed: sft.seed)
        var options = TrainerOptions()
        options.batchSize = dpoBatchSize
        options.maxSteps = dpoSteps
        options.optimizer = AdamWConfig(learningRate: dpoLearningRate, weightDecay: 0)
        options.warmupRatio = 0.1
        options.seed = sft.seed
        options.padID = pad
        options.preference = PreferenceObjective(method: .dpo, beta: beta)
        let trainer = try Trainer(model: model, trainable: model.loraParameters, options: options, train: trainRows, validation: heldRows,
                                  outputDirectory: sft.outputDirectory.appendingPathComponent("dpo"))
        trainer.reference = .adaptersOff
        let summary = try trainer.run(onEvent: onEvent)
        try model.saveAdapter(to: sft.outputDirectory.appendingPathComponent("dpo/adapter"), config: lora, baseModel: first.modelDirectory.path)

        let exactAfter = try sft.score(model, tokenizer, held).rate
        let preferenceAfter = try Self.preferenceAccuracy(model, heldRows, padID: pad)
        let v = try evaluatePreference(model: model, reference: .adaptersOff, rows: heldRows, objective: options.preference!,
                                       batchSize: 32, padID: pad)
        let means = v.metrics.means
        log(String(format: "after DPO: exact match %.1f%%, chosen rated above rejected on %.1f%% of held-out pairs, rewards/accuracies %.3f, rewards/margins %.3f",
                   exactAfter * 100, preferenceAfter * 100, means["rewards/accuracies"] ?? .nan, means["rewards/margins"] ?? .nan))
        return Result(sft: first, exactMatchBefore: exactBefore, exactMatchAfter: exactAfter, preferenceAccuracyBefore: preferenceBefore,
                      preferenceAccuracyAfter: preferenceAfter, rewardAccuracyAfter: means["rewards/accuracies"] ?? .nan,
                      rewardMarginAfter: means["rewards/margins"] ?? .nan, heldOutPairs: heldRows.count, summary: summary)
    }
}
