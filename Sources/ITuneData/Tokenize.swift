import Foundation
import ITuneTokenizers

// From examples to training rows: template, tokens, loss masks, truncation, packing, splits.

/// Token ids and Hugging Face labels (aligned with ids; −100 = no loss) of one example.
public struct TokenizedExample: Sendable, Equatable {
    public var ids: [Int32]
    public var labels: [Int32]
    public var task: String
}

/// A row of packed examples; `lengths` are the examples' token counts in order.
public struct PackedRow: Sendable, Equatable {
    public var ids: [Int32]
    public var labels: [Int32]
    public var lengths: [Int]
}

public struct TokenizeOptions: Sendable {
    public var template: PromptTemplate
    public var maxLength: Int
    /// Loss on every token, not only on the answers.
    public var trainOnInputs = false

    public init(template: PromptTemplate, maxLength: Int, trainOnInputs: Bool = false) {
        self.template = template
        self.maxLength = maxLength
        self.trainOnInputs = trainOnInputs
    }
}

/// What tokenizing a dataset cut and dropped.
public struct TokenizeStats: Sendable, Equatable {
    public var examples = 0
    public var tokens = 0
    /// Examples longer than maxLength, cut at the end, and the tokens cut.
    public var truncated = 0
    public var truncatedTokens = 0
    /// Examples dropped because truncation left no answer token to learn from.
    public var droppedNoAnswer = 0
}

public enum DatasetTokenizer {
    /// One example's ids and labels. Segments are tokenized one by one so that the boundary
    /// between prompt and answer is exact; whatever the tokenizer puts before a text (its bos)
    /// comes first unless the template writes its own marker, and eos follows each answer.
    public static func tokenize(_ e: Example, _ tokenizer: Tokenizer, _ o: TokenizeOptions) throws -> TokenizedExample {
        var ids: [Int32] = [], labels: [Int32] = []
        if !o.template.beginsWithOwnMarker || e.rawPrompt || e.conversation.text != nil {
            // What the tokenizer itself puts before a text (Llama's <s> or <|begin_of_text|>).
            let prefix = tokenizer.encode("", addSpecialTokens: true).map(Int32.init)
            ids += prefix
            labels += [Int32](repeating: -100, count: prefix.count)
        }
        let segments: [TemplateSegment]
        if e.rawPrompt, let t = e.conversation.turns.first {
            segments = [.text(t.instruction, trainable: false), .text(t.response, trainable: true), .eos]
        } else {
            segments = o.template.render(e.conversation)
        }
        for s in segments {
            switch s {
            case let .text(text, trainable):
                let piece = tokenizer.encode(text, addSpecialTokens: false).map(Int32.init)
                ids += piece
                labels += (trainable || o.trainOnInputs) ? piece : [Int32](repeating: -100, count: piece.count)
            case .eos:
                guard let eos = tokenizer.eosTokenID else {
                    throw DataError(source: e.source.description, field: nil,
                                    reason: "the tokenizer has no eos token (tokenizer_config.json eos_token) to end the answer with")
                }
                ids.append(Int32(eos))
                labels.append(Int32(eos))
            }
        }
        return TokenizedExample(ids: ids, labels: labels, task: e.source.task)
    }

    /// Every example, truncated to maxLength; examples whose answer is cut away entirely are
    /// dropped and counted.
    public static func tokenize(_ examples: [Example], _ tokenizer: Tokenizer, _ o: TokenizeOptions) throws -> ([TokenizedExample], TokenizeStats) {
        var stats = TokenizeStats()
        var out: [TokenizedExample] = []
        out.reserveCapacity(examples.count)
        // Tokenized in parallel chunks; the order of the result is the input order.
        var results = [Result<TokenizedExample, Error>?](repeating: nil, count: examples.count)
        results.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, examples.count))
            let chunk = (examples.count + workers - 1) / workers
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for i in (w * chunk)..<min(examples.count, (w + 1) * chunk) {
                    base[i] = Result { try tokenize(examples[i], tokenizer, o) }
                }
            }
        }
        for r in results {
            var t = try r!.get()
            stats.examples += 1
            if t.ids.count > o.maxLength {
                stats.truncated += 1
                stats.truncatedTokens += t.ids.count - o.maxLength
                t.ids.removeLast(t.ids.count - o.maxLength)
                t.labels.removeLast(t.labels.count - o.maxLength)
            }
            guard t.labels.dropFirst().contains(where: { $0 != -100 }) else {
                stats.droppedNoAnswer += 1
                continue
            }
            stats.tokens += t.ids.count
            out.append(t)
        }
        return (out, stats)
    }

    /// Greedy first-fit packing in the given order: each example goes into the first row with
    /// room, rows hold at most `rowLength` tokens, no example is split.
    public static func pack(_ examples: [TokenizedExample], rowLength: Int) -> [PackedRow] {
        var rows: [PackedRow] = []
        var open: [Int] = []  // indices of rows that still have room
        for e in examples where e.ids.count <= rowLength {
            if let k = open.firstIndex(where: { rows[$0].ids.count + e.ids.count <= rowLength }) {
                let r = open[k]
                rows[r].ids += e.ids
                rows[r].labels += e.labels
                rows[r].lengths.append(e.ids.count)
                if rows[r].ids.count == rowLength { open.remove(at: k) }
            } else {
                rows.append(PackedRow(ids: e.ids, labels: e.labels, lengths: [e.ids.count]))
                if e.ids.count < rowLength { open.append(rows.count - 1) }
                // Keep the search short: rows that are nearly full leave the open list.
                if open.count > 64 { open.removeFirst() }
            }
        }
        return rows
    }

    /// A deterministic split: `count` examples (or a `fraction`) drawn by `seed` for validation.
    public static func split<T>(_ items: [T], fraction: Double? = nil, count: Int? = nil, seed: UInt64) -> (train: [T], validation: [T]) {
        let n = min(items.count, count ?? Int((Double(items.count) * (fraction ?? 0)).rounded()))
        guard n > 0 else { return (items, []) }
        var state = seed
        var order = Array(items.indices)
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            state = state &+ 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            order.swapAt(i, Int(z % UInt64(i + 1)))
        }
        let held = Set(order.prefix(n))
        return (items.indices.filter { !held.contains($0) }.map { items[$0] }, order.prefix(n).sorted().map { items[$0] })
    }
}
