import ITuneTokenizers

// Instruction data for encoder-decoder models (T5, FLAN-T5, mT5): no chat template and no prompt
// mask — the prompt side is the encoder's input and the answer the decoder's target, each
// tokenized on its own (T5's tokenizer appends </s> to both), and batches pad the two sides
// separately: the input with the pad id and an attention mask, the target with -100.

/// One encoder-decoder example: `input` for the encoder, `target` the decoder learns (teacher
/// forcing: every target token is scored).
public struct Seq2SeqExample: Sendable, Equatable {
    public var input: [Int32]
    public var target: [Int32]
    public var source: Example.Source

    public init(input: [Int32], target: [Int32], source: Example.Source) {
        self.input = input
        self.target = target
        self.source = source
    }
}

public enum Seq2SeqData {
    /// FLAN's layout of an instruction record: the system prompt, earlier turns (instruction
    /// then response), the instruction and its input, one paragraph each, for the encoder; the
    /// last turn's response as the target. `text` records have no target and are refused.
    public static func texts(of example: Example) throws -> (input: String, target: String) {
        let c = example.conversation
        guard c.text == nil, let last = c.turns.last else {
            throw DataError(source: example.source.description, field: nil,
                            reason: "a plain-text record has no answer for an encoder-decoder model to learn; give instruction/output or prompt/completion fields")
        }
        var parts: [String] = []
        if let s = c.system, !s.isEmpty { parts.append(s) }
        for turn in c.turns.dropLast() {
            parts.append(turn.instruction)
            if let input = turn.input { parts.append(input) }
            parts.append(turn.response)
        }
        parts.append(last.instruction)
        if let input = last.input { parts.append(input) }
        return (parts.joined(separator: "\n\n"), last.response)
    }

    /// Tokenizes `examples` for an encoder-decoder model. Each side is cut to its maximum
    /// before the tokenizer's closing special tokens (T5's </s>), which are kept, as
    /// transformers' truncation does.
    public static func tokenize(_ examples: [Example], tokenizer: Tokenizer, maxInputLength: Int,
                                maxTargetLength: Int) throws -> [Seq2SeqExample] {
        let closing = tokenizer.encode("", addSpecialTokens: true).map(Int32.init)
        guard maxInputLength > closing.count, maxTargetLength > closing.count else {
            throw DataError(source: "seq2seq", field: nil,
                            reason: "maximum lengths \(maxInputLength)/\(maxTargetLength) leave no room beside \(closing.count) special token(s)")
        }
        func encode(_ text: String, _ limit: Int) -> [Int32] {
            let ids = tokenizer.encode(text, addSpecialTokens: false).map(Int32.init)
            return Array(ids.prefix(limit - closing.count)) + closing
        }
        return try examples.map { e in
            let (input, target) = try texts(of: e)
            return Seq2SeqExample(input: encode(input, maxInputLength), target: encode(target, maxTargetLength), source: e.source)
        }
    }
}

/// A padded encoder-decoder batch, row-major: inputs (B, inputLength) padded on the right with
/// `padID` and masked (1 = token, 0 = padding); labels (B, targetLength) padded with -100.
public struct Seq2SeqBatch: Sendable, Equatable {
    public let batch: Int
    public let inputLength: Int
    public let targetLength: Int
    public var inputIDs: [Int32]
    public var inputMask: [Int32]
    public var labels: [Int32]

    public init(_ examples: [Seq2SeqExample], padID: Int32) {
        self.init(inputs: examples.map(\.input), targets: examples.map(\.target), padID: padID)
    }

    /// The batch of `inputs[b]` → `targets[b]`.
    public init(inputs: [[Int32]], targets: [[Int32]], padID: Int32) {
        batch = min(inputs.count, targets.count)
        inputLength = max(1, inputs.map(\.count).max() ?? 1)
        targetLength = max(1, targets.map(\.count).max() ?? 1)
        inputIDs = [Int32](repeating: padID, count: batch * inputLength)
        inputMask = [Int32](repeating: 0, count: batch * inputLength)
        labels = [Int32](repeating: -100, count: batch * targetLength)
        for b in 0..<batch {
            for (t, id) in inputs[b].enumerated() {
                inputIDs[b * inputLength + t] = id
                inputMask[b * inputLength + t] = 1
            }
            for (t, id) in targets[b].enumerated() { labels[b * targetLength + t] = id }
        }
    }

    /// The number of target tokens scored.
    public var targetTokens: Int { labels.filter { $0 != -100 }.count }
}
