import Foundation
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers

/// What the held-out task protocol (`TaskEvaluator`) asks of a model: its greedy answer to a
/// question and the log-likelihood of a given answer. One conformance per kind of model — a
/// decoder behind a prompt template, an encoder-decoder reading the question — so that the
/// protocol (question and exemplar choice, exact match, rank classification) exists once.
public protocol TaskAnswering {
    /// The greedy answer to the last question of `example`, up to `maxNewTokens` tokens.
    func greedyAnswer(to example: Example, maxNewTokens: Int) throws -> String
    /// The total log-likelihood of `response` as the answer to `example` (end-of-sequence
    /// included) and the number of tokens it sums over; (−∞, 0) when nothing is scored.
    func logLikelihood(of response: String, answering example: Example) throws -> (Double, Int)
    /// Tokens of `response` alone: greedy answers get this many plus 8.
    func tokenCount(_ response: String) -> Int
    /// `greedyAnswer` for each example (its own token limit), in order: a model that can decode
    /// several questions together does (the default asks them one at a time).
    func greedyAnswers(to examples: [Example], maxNewTokens: [Int]) throws -> [String]
    /// `logLikelihood` of each response to the same example, in order: a model that can score
    /// several answers in one forward does (the default scores them one at a time).
    func logLikelihoods(of responses: [String], answering example: Example) throws -> [(Double, Int)]
}

extension TaskAnswering {
    public func greedyAnswers(to examples: [Example], maxNewTokens: [Int]) throws -> [String] {
        try zip(examples, maxNewTokens).map { try greedyAnswer(to: $0, maxNewTokens: $1) }
    }

    public func logLikelihoods(of responses: [String], answering example: Example) throws -> [(Double, Int)] {
        try responses.map { try logLikelihood(of: $0, answering: example) }
    }
}

/// A decoder-only model: the question is rendered by `template`, the answer follows it. With
/// `responsePrefix` every answer begins with it (the prompt leaves it open, as transformers'
/// continue_final_message): the model's continuation is what is matched and scored.
public struct DecoderTaskModel: TaskAnswering {
    public let bundle: ModelBundle
    public let template: PromptTemplate
    public let maxLength: Int
    public let responsePrefix: String?

    public init(bundle: ModelBundle, template: PromptTemplate, maxLength: Int = 512, responsePrefix: String? = nil) {
        self.bundle = bundle
        self.template = template
        self.maxLength = maxLength
        self.responsePrefix = responsePrefix
    }

    /// The text the model continues for the last question of `e` (nil: it has none).
    func prompt(for e: Example) throws -> String? {
        guard let turn = e.conversation.turns.last else { return nil }
        var prompt = e.rawPrompt ? turn.instruction : try template.generationPrompt(for: e.conversation)
        if let responsePrefix {
            var open = e.conversation
            open.turns[open.turns.count - 1].response = responsePrefix
            prompt = e.rawPrompt ? prompt + responsePrefix : try template.continuationPrompt(for: open)
        }
        return prompt
    }

    public func greedyAnswer(to e: Example, maxNewTokens: Int) throws -> String {
        guard let prompt = try prompt(for: e) else { return "" }
        return try bundle.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: maxNewTokens),
                                   stopStrings: template.stopStrings,
                                   addSpecialTokens: e.rawPrompt || !template.writesOwnSpecialTokens).text
    }

    /// The questions decoded together (ModelBundle's `generate(prompts:)`, 8 rows a batch), each
    /// up to its own token limit: the text `greedyAnswer` gives for each.
    public func greedyAnswers(to examples: [Example], maxNewTokens: [Int]) throws -> [String] {
        var answers = [String](repeating: "", count: examples.count)
        let prompts = try examples.map { try prompt(for: $0) }
        // Raw prompts and templated ones differ in the special tokens added: a batch of each.
        for raw in [false, true] {
            let rows = examples.indices.filter { prompts[$0] != nil && examples[$0].rawPrompt == raw }
            guard let longest = rows.map({ maxNewTokens[$0] }).max() else { continue }
            let out = try bundle.generate(prompts: rows.compactMap { prompts[$0] }, options: GenerationOptions(maxNewTokens: longest),
                                          stopStrings: template.stopStrings, addSpecialTokens: raw || !template.writesOwnSpecialTokens,
                                          limits: rows.map { maxNewTokens[$0] })
            for (row, o) in zip(rows, out) { answers[row] = o.text }
        }
        return answers
    }

    /// With a prefix, the answer is `prefix + response` and the tokens that the prompt with the
    /// prefix left open (`continuationPrompt`) already holds are not scored.
    public func logLikelihood(of response: String, answering example: Example) throws -> (Double, Int) {
        guard let (ids, labels, scored) = try scoredTokens(of: response, answering: example) else { return (-.infinity, 0) }
        let loss = try noGrad {
            try bundle.model.loss(Tensor(indices: ids, shape: [1, ids.count], on: bundle.model.device), labels: labels).item()
        }
        return (-Double(loss) * Double(scored), scored)
    }

    /// The responses' log-likelihoods from forwards of up to `logLikelihoodRows` of them as the
    /// rows of one batch (a multiple-choice question's options share its prompt): each row padded
    /// on the right, where the causal mask keeps the padding out of every real token's state, and
    /// each row's head and loss over its own scored tokens (CausalLM.sequenceLogProbs). Products
    /// of rows × tokens instead of one sequence's tokens: the GEMMs run at the sizes they are fast at.
    public func logLikelihoods(of responses: [String], answering example: Example) throws -> [(Double, Int)] {
        var out = [(Double, Int)](repeating: (-.infinity, 0), count: responses.count)
        var rows: [(index: Int, ids: [Int32], labels: [Int32])] = []
        for (i, r) in responses.enumerated() {
            if let (ids, labels, _) = try scoredTokens(of: r, answering: example) { rows.append((i, ids, labels)) }
        }
        let model = bundle.model
        for start in stride(from: 0, to: rows.count, by: Self.logLikelihoodRows) {
            let batch = rows[start..<min(rows.count, start + Self.logLikelihoodRows)]
            let T = batch.map(\.ids.count).max() ?? 0
            var ids = [Int32](repeating: 0, count: batch.count * T), targets = [Int32](repeating: -100, count: batch.count * T)
            for (s, row) in batch.enumerated() {
                for (t, id) in row.ids.enumerated() { ids[s * T + t] = id }
                // Shifted: position t predicts label t + 1.
                for t in 0..<(row.labels.count - 1) { targets[s * T + t] = row.labels[t + 1] }
            }
            let (logProbs, counts) = try noGrad {
                let hidden = try model.hiddenStates(Tensor(indices: ids, shape: [batch.count, T], on: model.device))
                return try model.sequenceLogProbs(hidden, targets: targets)
            }
            for ((row, lp), n) in zip(zip(batch, try logProbs.toArray()), counts) { out[row.index] = (Double(lp), n) }
        }
        return out
    }

    /// Answers scored together in one forward (`logLikelihoods`).
    static let logLikelihoodRows = 8

    /// The token ids and labels (−100: not scored) of `example` answered by `response`, and the
    /// count of scored targets; nil when nothing would be scored.
    func scoredTokens(of response: String, answering example: Example) throws -> (ids: [Int32], labels: [Int32], scored: Int)? {
        guard !example.conversation.turns.isEmpty else { return nil }
        var e = example
        let last = e.conversation.turns.count - 1
        e.conversation.turns[last].response = (responsePrefix ?? "") + response
        var t = try DatasetTokenizer.tokenize(e, bundle.tokenizer, TokenizeOptions(template: template, maxLength: maxLength))
        if let prefix = responsePrefix {
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
        guard scored > 0 else { return nil }
        return (t.ids, t.labels, scored)
    }

    public func tokenCount(_ response: String) -> Int { bundle.tokenizer.encode(response, addSpecialTokens: false).count }
}

/// An encoder-decoder model (T5, FLAN-T5, mT5): the question in FLAN's layout
/// (`Seq2SeqData.texts`) is the encoder's input, the answer the decoder's target, each cut to
/// `maxLength` as training cuts them.
public struct Seq2SeqTaskModel: TaskAnswering {
    public let bundle: Seq2SeqBundle
    public let maxLength: Int

    public init(bundle: Seq2SeqBundle, maxLength: Int = 512) {
        self.bundle = bundle
        self.maxLength = maxLength
    }

    /// The encoder input and decoder target of `example` answered by `response`.
    func tokenized(_ example: Example, response: String) throws -> Seq2SeqExample? {
        guard !example.conversation.turns.isEmpty else { return nil }
        var e = example
        e.conversation.turns[e.conversation.turns.count - 1].response = response
        return try Seq2SeqData.tokenize([e], tokenizer: bundle.tokenizer, maxInputLength: maxLength, maxTargetLength: maxLength).first
    }

    public func greedyAnswer(to e: Example, maxNewTokens: Int) throws -> String {
        guard let t = try tokenized(e, response: "") else { return "" }
        return try bundle.generate(inputIDs: t.input, maxNewTokens: maxNewTokens).text
    }

    public func logLikelihood(of response: String, answering example: Example) throws -> (Double, Int) {
        guard let t = try tokenized(example, response: response), !t.target.isEmpty else { return (-.infinity, 0) }
        let model = bundle.model
        let loss = try noGrad {
            try model.loss(inputIDs: Tensor(indices: t.input, shape: [1, t.input.count], on: model.device),
                           labels: t.target, decoderLength: t.target.count).item()
        }
        return (-Double(loss) * Double(t.target.count), t.target.count)
    }

    public func tokenCount(_ response: String) -> Int { bundle.tokenizer.encode(response, addSpecialTokens: false).count }
}

/// Loads `directory` for the task protocol by its family: an encoder-decoder as
/// `Seq2SeqTaskModel`, a decoder as `DecoderTaskModel` behind `template` (nil: the model's own
/// chat template, else alpaca), with `adapter` applied when given. An encoder-decoder reads the
/// question in FLAN's layout, so a template for one is refused by name.
public func loadTaskModel(directory: URL, on device: Device, adapter: URL? = nil, template: String? = nil,
                          maxLength: Int = 512, responsePrefix: String? = nil) throws -> any TaskAnswering {
    if try ModelFamily.of(directory: directory).kind == .encoderDecoder {
        if let template {
            throw OptionError(option: "template", message: "'\(template)' given for an encoder-decoder model, which reads the question as its encoder input (FLAN's layout), not through a template")
        }
        if responsePrefix != nil {
            throw OptionError(option: "response-prefix", message: "is for decoder-only models (it continues a rendered template); an encoder-decoder's answer is its decoder's whole output")
        }
        let bundle = try Seq2SeqBundle(directory: directory, on: device)
        if let adapter { try bundle.model.loadAdapter(from: adapter) }
        return Seq2SeqTaskModel(bundle: bundle, maxLength: maxLength)
    }
    let bundle = try ModelBundle(directory: directory, on: device)
    if let adapter { try bundle.model.loadAdapter(from: adapter) }
    return DecoderTaskModel(bundle: bundle, template: try PromptTemplate.resolve(template, tokenizer: bundle.tokenizer).template,
                            maxLength: maxLength, responsePrefix: responsePrefix)
}
