import Foundation
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers

/// Scores of one held-out task: FLAN's zero-shot protocol.
public struct TaskEvalResult: Sendable, Codable {
    public var task: String
    public var examples: Int
    /// Greedy answer equal to the reference (whitespace and case folded).
    public var exactMatch: Double
    /// Mean log-likelihood per token of the reference answer (its eos included).
    public var answerLogLikelihood: Double
    /// When the task's answers come from a small set (≤ 10 distinct): how often the reference
    /// has the highest total log-likelihood among them (rank classification), and the set size.
    public var rankAccuracy: Double?
    public var options: Int?
}

public enum TaskEvaluator {
    static func normalise(_ s: String) -> String {
        s.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    /// Total log-likelihood of `response` after the prompt of `example` (and its token count).
    /// With `prefix`, the answer is `prefix + response` and the tokens that the prompt with the
    /// prefix left open (`continuationPrompt`) already holds are not scored.
    static func answerLogLikelihood(_ example: Example, response: String, bundle: ModelBundle, template: PromptTemplate,
                                    maxLength: Int, prefix: String? = nil) throws -> (Double, Int) {
        try DecoderTaskModel(bundle: bundle, template: template, maxLength: maxLength, responsePrefix: prefix)
            .logLikelihood(of: response, answering: example)
    }

    /// `evaluate(tasks:model:…)` for a decoder-only model behind `template`; `responsePrefix`
    /// begins every answer (the prompt leaves it open, as transformers' continue_final_message):
    /// the model's continuation is what is matched and scored.
    public static func evaluate(tasks: [(String, [Example])], bundle: ModelBundle, template: PromptTemplate,
                                maxExamples: Int = 50, maxLength: Int = 512, seed: UInt64 = 0, shots: Int = 0,
                                responsePrefix: String? = nil,
                                progress: (String) -> Void = { _ in }) throws -> [TaskEvalResult] {
        try evaluate(tasks: tasks, model: DecoderTaskModel(bundle: bundle, template: template, maxLength: maxLength,
                                                           responsePrefix: responsePrefix),
                     maxExamples: maxExamples, seed: seed, shots: shots, progress: progress)
    }

    /// The questions asked of a task and the prompts they are asked with: up to `maxExamples`
    /// of its usable examples after a shuffle seeded by `seed`, each with `shots` exemplars of
    /// the task's unasked examples in front (FewShot). The same for every model of a seed.
    public static func prompts(for all: [Example], maxExamples: Int, seed: UInt64, shots: Int) -> [Example] {
        let usable = all.filter { !$0.conversation.turns.isEmpty && $0.conversation.text == nil }
        let shuffled = DatasetTokenizer.shuffled(usable, seed: seed)
        let questions = Array(shuffled.prefix(maxExamples))
        // Exemplars come from the examples not asked; a task with no others lends its asked ones.
        let pool = shuffled.count > maxExamples ? Array(shuffled.dropFirst(maxExamples)) : shuffled
        return questions.enumerated().map { i, q in
            FewShot.prompting(q, with: FewShot.exemplars(for: q, index: i, pool: pool, shots: shots, seed: seed))
        }
    }

    /// Exact match, answer log-likelihood and (where the answers form a small set) rank
    /// classification for each task, on up to `maxExamples` examples per task (the first ones
    /// after a seeded shuffle). With `shots` > 0 each question is preceded by that many exemplars
    /// from the task's other examples (FewShot), the same for every model and run of a seed.
    public static func evaluate(tasks: [(String, [Example])], model: any TaskAnswering, maxExamples: Int = 50, seed: UInt64 = 0,
                                shots: Int = 0, progress: (String) -> Void = { _ in }) throws -> [TaskEvalResult] {
        var out: [TaskEvalResult] = []
        for (name, all) in tasks {
            let usable = all.filter { !$0.conversation.turns.isEmpty && $0.conversation.text == nil }
            let examples = prompts(for: all, maxExamples: maxExamples, seed: seed, shots: shots)
            guard !examples.isEmpty else { continue }
            let answers = Array(Set(usable.map { $0.conversation.turns.last!.response })).sorted()
            let options = answers.count <= 10 && answers.count >= 2 ? answers : nil
            let perRecordChoices = examples.compactMap(\.choices)
            let optionCount = perRecordChoices.isEmpty ? options?.count : perRecordChoices.map(\.count).max()
            var right = 0, rankRight = 0
            var ll = 0.0, llTokens = 0
            // The greedy answers first, all questions of the task together (a decoder decodes
            // them as the rows of batches), each up to its reference's length plus 8 tokens.
            let texts = try model.greedyAnswers(to: examples, maxNewTokens: examples.map {
                model.tokenCount($0.conversation.turns.last!.response) + 8
            })
            for (e, text) in zip(examples, texts) {
                let turn = e.conversation.turns.last!
                if normalise(text) == normalise(turn.response) { right += 1 }
                // Every option is scored once; the reference is one of them. A multiple-choice
                // record's own choices come first (JCommonsenseQA's five answers differ per question).
                // A record whose choices leave out its own answer has the answer added, not a crash.
                let candidates = e.choices.map { $0.contains(turn.response) ? $0 : $0 + [turn.response] } ?? options ?? [turn.response]
                let scores = try model.logLikelihoods(of: candidates, answering: e)
                let (l, n) = scores[candidates.firstIndex(of: turn.response) ?? 0]
                if n > 0 { ll += l; llTokens += n }
                if e.choices != nil || options != nil, candidates[scores.indices.max { scores[$0].0 < scores[$1].0 }!] == turn.response {
                    rankRight += 1
                }
            }
            let r = TaskEvalResult(task: name, examples: examples.count, exactMatch: Double(right) / Double(examples.count),
                                   answerLogLikelihood: llTokens > 0 ? ll / Double(llTokens) : .nan,
                                   rankAccuracy: optionCount.map { _ in Double(rankRight) / Double(examples.count) }, options: optionCount)
            progress(String(format: "%@: exact match %.1f%%, answer log-likelihood %.3f/token%@", name, r.exactMatch * 100,
                            r.answerLogLikelihood, r.rankAccuracy.map { String(format: ", rank accuracy %.1f%% of %d options", $0 * 100, optionCount ?? 0) } ?? ""))
            out.append(r)
        }
        return out
    }
}
