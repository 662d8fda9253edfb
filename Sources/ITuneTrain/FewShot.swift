import ITuneData
import ITuneTokenizers

// FLAN's few-shot protocol for held-out tasks: K exemplars of the same task, each its
// instruction (and input) followed by its answer, stand before the question, inside the one
// instruction the template wraps; zero shots is the plain question.

public enum FewShot {
    /// `example` with `exemplars` written in front of its last turn's instruction, one paragraph
    /// each (instruction, input, answer), then the question itself. Why: `eval --tasks --shots K`.
    public static func prompting(_ example: Example, with exemplars: [Example]) -> Example {
        guard !exemplars.isEmpty, var last = example.conversation.turns.last else { return example }
        var blocks: [String] = []
        for e in exemplars {
            guard let t = e.conversation.turns.last else { continue }
            blocks.append(([t.instruction] + (t.input.map { [$0] } ?? []) + [t.response]).joined(separator: "\n"))
        }
        last.instruction = (blocks + [last.instruction]).joined(separator: "\n\n")
        var out = example
        out.conversation.turns[out.conversation.turns.count - 1] = last
        return out
    }

    /// The exemplars of the question at `index` of a task: the first `shots` of `pool` (the task's
    /// examples that are not evaluated) after a shuffle seeded by `seed` and `index`, never the
    /// question itself. Deterministic: the same seed gives the same prompts.
    public static func exemplars(for question: Example, index: Int, pool: [Example], shots: Int, seed: UInt64) -> [Example] {
        guard shots > 0 else { return [] }
        let candidates = pool.filter { $0 != question && !$0.conversation.turns.isEmpty && $0.conversation.text == nil }
        return Array(DatasetTokenizer.shuffled(candidates, seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15).prefix(shots))
    }
}
