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
        var e = example
        let last = e.conversation.turns.count - 1
        e.conversation.turns[last].response = (prefix ?? "") + response
        var t = try DatasetTokenizer.tokenize(e, bundle.tokenizer, TokenizeOptions(template: template, maxLength: maxLength))
        if let prefix {
            var open = e.conversation
            open.turns[last].response = prefix
            let given = e.rawPrompt
                ? bundle.tokenizer.encode(open.turns[last].instruction + prefix, addSpecialTokens: true)
                : bundle.tokenizer.encode(try template.continuationPrompt(for: open), addSpecialTokens: !template.writesOwnSpecialTokens)
            var shared = 0
            while shared < given.count, shared < t.ids.count, Int32(given[shared]) == t.ids[shared] { shared += 1 }
            for i in 0..<min(shared, t.labels.count) { t.labels[i] = -100 }
        }
        let scored = t.labels.dropFirst().filter { $0 != -100 }.count
        guard scored > 0 else { return (-.infinity, 0) }
        let loss = try noGrad {
            try bundle.model.loss(Tensor(indices: t.ids, shape: [1, t.ids.count], on: bundle.model.device), labels: t.labels).item()
        }
        return (-Double(loss) * Double(scored), scored)
    }

    /// Exact match, answer log-likelihood and (where the answers form a small set) rank
    /// classification for each task, on up to `maxExamples` examples per task (the first ones
    /// after a seeded shuffle). With `shots` > 0 each question is preceded by that many exemplars
    /// from the task's other examples (FewShot), the same for every model and run of a seed.
    /// `responsePrefix` begins every answer (the prompt leaves it open, as transformers'
    /// continue_final_message): the model's continuation is what is matched and scored.
    public static func evaluate(tasks: [(String, [Example])], bundle: ModelBundle, template: PromptTemplate,
                                maxExamples: Int = 50, maxLength: Int = 512, seed: UInt64 = 0, shots: Int = 0,
                                responsePrefix: String? = nil,
                                progress: (String) -> Void = { _ in }) throws -> [TaskEvalResult] {
        var out: [TaskEvalResult] = []
        for (name, all) in tasks {
            let usable = all.filter { !$0.conversation.turns.isEmpty && $0.conversation.text == nil }
            let shuffled = DatasetTokenizer.shuffled(usable, seed: seed)
            let questions = Array(shuffled.prefix(maxExamples))
            guard !questions.isEmpty else { continue }
            // Exemplars come from the examples not asked; a task with no others lends its asked ones.
            let pool = shuffled.count > maxExamples ? Array(shuffled.dropFirst(maxExamples)) : shuffled
            let examples = questions.enumerated().map { i, q in
                FewShot.prompting(q, with: FewShot.exemplars(for: q, index: i, pool: pool, shots: shots, seed: seed))
            }
            let answers = Array(Set(usable.map { $0.conversation.turns.last!.response })).sorted()
            let options = answers.count <= 10 && answers.count >= 2 ? answers : nil
            let perRecordChoices = examples.compactMap(\.choices)
            let optionCount = perRecordChoices.isEmpty ? options?.count : perRecordChoices.map(\.count).max()
            var right = 0, rankRight = 0
            var ll = 0.0, llTokens = 0
            for e in examples {
                let turn = e.conversation.turns.last!
                var prompt = e.rawPrompt ? turn.instruction : try template.generationPrompt(for: e.conversation)
                if let responsePrefix {
                    var open = e.conversation
                    open.turns[open.turns.count - 1].response = responsePrefix
                    prompt = e.rawPrompt ? prompt + responsePrefix : try template.continuationPrompt(for: open)
                }
                let answerTokens = bundle.tokenizer.encode(turn.response, addSpecialTokens: false).count
                let (text, _) = try bundle.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: answerTokens + 8),
                                                    stopStrings: template.stopStrings,
                                                    addSpecialTokens: e.rawPrompt || !template.writesOwnSpecialTokens)
                if normalise(text) == normalise(turn.response) { right += 1 }
                // Every option is scored once; the reference is one of them. A multiple-choice
                // record's own choices come first (JCommonsenseQA's five answers differ per question).
                let candidates = e.choices ?? options ?? [turn.response]
                let scores = try candidates.map { try answerLogLikelihood(e, response: $0, bundle: bundle, template: template, maxLength: maxLength,
                                                                        prefix: responsePrefix) }
                let (l, n) = scores[candidates.firstIndex(of: turn.response)!]
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
