import Foundation
import ITuneTokenizers

// From examples to token ids and loss labels: template, tokenizer, masks, truncation.

/// Token ids and Hugging Face labels of one example: `labels` is aligned with `ids` (the model
/// shifts), −100 where no loss is taken.
public struct TokenizedExample: Sendable, Equatable {
    public var ids: [Int32]
    public var labels: [Int32]
    /// The example's task (`Example.Source.task`), for mixing and per-task evaluation.
    public var task: String

    public init(ids: [Int32], labels: [Int32], task: String) {
        precondition(ids.count == labels.count, "ids and labels must be aligned")
        self.ids = ids
        self.labels = labels
        self.task = task
    }
}

public struct TokenizeOptions: Sendable {
    public var template: PromptTemplate
    /// Examples are cut to this many tokens (at the end).
    public var maxLength: Int
    /// Loss on every token, not only on the answers.
    public var trainOnInputs = false

    public init(template: PromptTemplate, maxLength: Int, trainOnInputs: Bool = false) {
        precondition(maxLength > 0, "maxLength must be positive")
        self.template = template
        self.maxLength = maxLength
        self.trainOnInputs = trainOnInputs
    }
}

/// What tokenizing a dataset kept, cut and dropped.
public struct TokenizeStats: Sendable, Equatable {
    /// Examples read, and tokens in the examples kept (after truncation).
    public var examples = 0
    public var tokens = 0
    /// Tokens that carry a loss in the examples kept (labels ≠ −100, the first excepted).
    public var scoredTokens = 0
    /// Examples longer than maxLength, cut at the end, and the tokens cut from them.
    public var truncated = 0
    public var truncatedTokens = 0
    /// Examples dropped because truncation left no answer token to learn from.
    public var droppedNoAnswer = 0
    /// The first example dropped, for the message when nothing is left: where it came from, its
    /// length in tokens and where its answer began.
    public var firstDropped: DroppedExample?

    /// An example that truncation left without an answer.
    public struct DroppedExample: Sendable, Equatable {
        public var source: Example.Source
        /// Its length in tokens before truncation.
        public var tokens: Int
        /// The 0-based index of its first scored token; nil when it had none.
        public var answerStart: Int?
    }

    public init() {}
}

public enum DatasetTokenizer {
    /// One example's ids and labels, cut to `maxLength`. Segments are tokenized one by one so
    /// that the boundary between prompt and answer is exact. The tokenizer's begin-of-text
    /// tokens come first (see `beginTokens`) unless the rendered text already starts with them
    /// (Llama 3's template writes `<|begin_of_text|>` itself); each answer ends with the
    /// tokenizer's eos, or with the template's own end marker (`<|im_end|>`, `<|eot_id|>`),
    /// which is trained on so that the model learns to stop.
    public static func tokenize(_ e: Example, _ tokenizer: Tokenizer, _ o: TokenizeOptions) throws -> TokenizedExample {
        var t = try tokenizeWhole(e, tokenizer, o, begin: beginTokens(tokenizer))
        if t.ids.count > o.maxLength {
            t.ids.removeLast(t.ids.count - o.maxLength)
            t.labels.removeLast(t.labels.count - o.maxLength)
        }
        return t
    }

    /// Every example, in order, truncated to maxLength; examples whose answer is cut away
    /// entirely are dropped and counted. Tokenized in parallel over all cores.
    public static func tokenize(_ examples: [Example], _ tokenizer: Tokenizer, _ o: TokenizeOptions) throws -> ([TokenizedExample], TokenizeStats) {
        let begin = beginTokens(tokenizer)
        var results = [Result<TokenizedExample, Error>?](repeating: nil, count: examples.count)
        results.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress
            let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, examples.count))
            let chunk = (examples.count + workers - 1) / workers
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let lo = w * chunk, hi = min(examples.count, lo + chunk)
                guard lo < hi else { return }
                for i in lo..<hi { base![i] = Result { try tokenizeWhole(examples[i], tokenizer, o, begin: begin) } }
            }
        }
        var stats = TokenizeStats()
        var out: [TokenizedExample] = []
        out.reserveCapacity(examples.count)
        for (i, r) in results.enumerated() {
            var t = try r!.get()
            stats.examples += 1
            let length = t.ids.count, answerStart = t.labels.dropFirst().firstIndex { $0 != -100 }
            if t.ids.count > o.maxLength {
                stats.truncated += 1
                stats.truncatedTokens += t.ids.count - o.maxLength
                t.ids.removeLast(t.ids.count - o.maxLength)
                t.labels.removeLast(t.labels.count - o.maxLength)
            }
            // The first label is never scored (the model predicts token t+1 from token t).
            let scored = t.labels.dropFirst().reduce(0) { $0 + ($1 == -100 ? 0 : 1) }
            guard scored > 0 else {
                stats.droppedNoAnswer += 1
                if stats.firstDropped == nil { stats.firstDropped = .init(source: examples[i].source, tokens: length, answerStart: answerStart) }
                continue
            }
            stats.tokens += t.ids.count
            stats.scoredTokens += scored
            out.append(t)
        }
        return (out, stats)
    }

    /// The ids the tokenizer puts before a text: its post-processor's (Llama's `<s>`, Llama 3's
    /// `<|begin_of_text|>`), overridden by `add_bos_token` in tokenizer_config.json where that
    /// is set, as transformers does for Llama-family tokenizers. Whatever the post-processor
    /// puts after a text is left out: answers get their end token from the template.
    public static func beginTokens(_ tokenizer: Tokenizer) -> [Int32] {
        let probe = "a"
        let with = tokenizer.encode(probe, addSpecialTokens: true), without = tokenizer.encode(probe, addSpecialTokens: false)
        var prefix: [Int] = []
        if !without.isEmpty, let start = (0...max(0, with.count - without.count)).first(where: { with[$0..<min(with.count, $0 + without.count)].elementsEqual(without) }) {
            prefix = Array(with[..<start])
        }
        if let bos = tokenizer.bosTokenID, let add = tokenizer.config.addBosToken {
            if add && !prefix.contains(bos) { prefix.insert(bos, at: 0) }
            if !add { prefix.removeAll { $0 == bos } }
        }
        return prefix.map(Int32.init)
    }

    /// The segments an example renders to: the template's, or for a prompt used as written, the
    /// prompt (no loss), the response and eos.
    static func segments(_ e: Example, _ template: PromptTemplate) -> [TemplateSegment] {
        if e.rawPrompt, e.conversation.text == nil, let t = e.conversation.turns.first {
            return [.text(t.instruction, trainable: false), .text(t.response, trainable: true), .eos]
        }
        return template.render(e.conversation)
    }

    /// One conversation rendered by the model's own chat template: the whole text tokenized as
    /// transformers' apply_chat_template does (no tokens added), the loss on the tokens of every
    /// assistant turn as rendering finds them (`PromptTemplate.renderConversation`).
    static func tokenizeRendered(_ e: Example, _ tokenizer: Tokenizer, _ o: TokenizeOptions) throws -> TokenizedExample {
        let rendered: RenderedConversation
        do { rendered = try o.template.renderConversation(e.conversation) } catch {
            throw DataError(source: e.source.description, field: nil, reason: "\(error)")
        }
        let (ids, trained) = rendered.tokenized(with: tokenizer)
        let ids32 = ids.map(Int32.init)
        var labels = [Int32](repeating: -100, count: ids.count)
        for span in trained { for k in span { labels[k] = ids32[k] } }
        if o.trainOnInputs { labels = ids32 }
        return TokenizedExample(ids: ids32, labels: labels, task: e.source.task)
    }

    /// One example, not truncated.
    static func tokenizeWhole(_ e: Example, _ tokenizer: Tokenizer, _ o: TokenizeOptions, begin: [Int32]) throws -> TokenizedExample {
        if o.template.chat != nil, !e.rawPrompt, e.conversation.text == nil { return try tokenizeRendered(e, tokenizer, o) }
        if e.conversation.messages != nil {
            throw DataError(source: e.source.description, field: "messages",
                            reason: "holds tool calls or tool results, which only the model's own chat template renders (--template model; the \(o.template.name) template has no place for them)")
        }
        var ids: [Int32] = [], labels: [Int32] = []
        ids.reserveCapacity(256)
        labels.reserveCapacity(256)
        ids += begin
        labels += [Int32](repeating: -100, count: begin.count)
        var first = true
        for s in segments(e, o.template) {
            let start = ids.count
            let trainable: Bool
            switch s {
            case let .text(text, t):
                trainable = t
                for id in tokenizer.encode(text, addSpecialTokens: false) { ids.append(Int32(id)) }
            case .eos:
                guard let eos = tokenizer.eosTokenID else {
                    throw DataError(source: e.source.description, field: nil,
                                    reason: "the tokenizer has no eos token (tokenizer_config.json eos_token) to end the answer with")
                }
                trainable = true
                ids.append(Int32(eos))
            }
            // Not doubled: a template that writes the begin marker itself replaces the tokenizer's.
            if first, !begin.isEmpty, ids[start...].starts(with: begin) {
                ids.removeFirst(begin.count)
                labels.removeFirst(begin.count)
            }
            first = false
            let added = ids.count - labels.count
            if trainable {
                labels += ids[(ids.count - added)...]
            } else {
                labels += repeatElement(-100, count: added)
            }
        }
        if o.trainOnInputs { labels = ids }
        return TokenizedExample(ids: ids, labels: labels, task: e.source.task)
    }
}

extension TokenizeStats {
    /// When tokenizing kept no example of a non-empty set: an error naming the files and why
    /// (every answer cut away by `maxLength`, with the first such example's length); nil otherwise.
    public func noRowsError(maxLength: Int) -> DataError? {
        guard examples > 0, droppedNoAnswer == examples, let first = firstDropped else { return nil }
        let where_ = first.answerStart.map { "its answer starts at token \($0 + 1)" } ?? "it has no answer token at all"
        return DataError(source: first.source.file, field: nil,
                         reason: "no training rows: all \(examples) example(s) lost their whole answer to --max-length \(maxLength) "
                             + "(the first, \(first.source), is \(first.tokens) tokens long and \(where_)); "
                             + "raise --max-length or shorten the prompts")
    }
}

/// An example as training sees it, for `itune-gpu render`.
public struct ExamplePreview: Sendable {
    /// The text the template wrote (special tokens spelled out; the tokenizer's begin tokens
    /// included when they are added).
    public var text: String
    public var ids: [Int32]
    public var labels: [Int32]
    /// The trained tokens decoded, runs joined by " … ".
    public var trainedText: String
    public var trainedCount: Int { labels.filter { $0 != -100 }.count }
}

extension DatasetTokenizer {
    /// One example's text, ids and labels, not truncated.
    public static func preview(_ e: Example, _ tokenizer: Tokenizer, _ o: TokenizeOptions) throws -> ExamplePreview {
        let t = try tokenizeWhole(e, tokenizer, o, begin: beginTokens(tokenizer))
        let text: String
        if o.template.chat != nil, !e.rawPrompt, e.conversation.text == nil {
            do { text = try o.template.renderConversation(e.conversation).text } catch {
                throw DataError(source: e.source.description, field: nil, reason: "\(error)")
            }
        } else {
            text = tokenizer.decode(t.ids.map(Int.init))
        }
        var runs: [[Int]] = [], current: [Int] = []
        for (id, label) in zip(t.ids, t.labels) {
            if label != -100 { current.append(Int(id)) } else if !current.isEmpty { runs.append(current); current = [] }
        }
        if !current.isEmpty { runs.append(current) }
        let trained = runs.map { tokenizer.decode($0) }.joined(separator: " … ")
        return ExamplePreview(text: text, ids: t.ids, labels: t.labels, trainedText: trained)
    }
}
