import Foundation
import ITuneData
import ITuneModels
import ITuneTensor

/// Mean loss and perplexity of a model over tokenized sequences.
public struct EvaluationResult: Sendable, Codable {
    /// Mean negative log-likelihood per predicted token (nats).
    public var meanLoss: Double
    public var perplexity: Double
    /// Tokens whose prediction was scored, and sequences read.
    public var tokens: Int
    public var sequences: Int
    public var seconds: Double
}

/// Scores every sequence with the Hugging Face convention (labels aligned with ids, −100 not
/// scored, shifted inside) and averages over tokens, not sequences, as perplexity is defined.
/// Sequences are grouped into batches of equal length so nothing is padded. Throws when no token
/// is scored.
public func evaluate(_ model: any CausalLM, sequences: [(ids: [Int32], labels: [Int32])], batchSize: Int = 8) throws -> EvaluationResult {
    try OptionCheck.atLeast(batchSize, 1, "batch-size")
    let start = Date()
    var byLength: [Int: [Int]] = [:]
    for (i, s) in sequences.enumerated() where s.ids.count >= 2 { byLength[s.ids.count, default: []].append(i) }
    var total = 0.0, tokens = 0
    try noGrad {
        for T in byLength.keys.sorted() {
            let members = byLength[T]!
            for chunk in stride(from: 0, to: members.count, by: batchSize) {
                let rows = members[chunk..<min(members.count, chunk + batchSize)]
                let ids = rows.flatMap { sequences[$0].ids }, labels = rows.flatMap { sequences[$0].labels }
                let scored = rows.reduce(0) { n, i in n + sequences[i].labels.dropFirst().filter { $0 != -100 }.count }
                guard scored > 0 else { continue }
                let loss = try model.loss(Tensor(indices: ids, shape: [rows.count, T], on: model.device), labels: labels).item()
                total += Double(loss) * Double(scored)
                tokens += scored
            }
        }
    }
    // A mean over nothing is no measurement: "loss nan over 0 tokens" must not pass for a result.
    guard tokens > 0 else {
        throw TrainError.invalid("evaluation scored no tokens: none of the \(sequences.count) sequences has a label to predict "
                                 + "(every label −100, or fewer than 2 tokens; an empty tokenizer vocabulary or --max-length cutting every answer does this)")
    }
    let mean = total / Double(tokens)
    return EvaluationResult(meanLoss: mean, perplexity: exp(mean), tokens: tokens, sequences: sequences.count,
                            seconds: Date().timeIntervalSince(start))
}

/// Mean loss and perplexity of an encoder-decoder model over input → target examples: the
/// targets' tokens (their </s> included) scored with teacher forcing, averaged over tokens as
/// T5ForConditionalGeneration's loss averages a batch's. Batches of `batchSize` in order, each
/// side padded on its own. Throws when no token is scored.
public func evaluate(_ model: T5Model, examples: [Seq2SeqExample], batchSize: Int = 8) throws -> EvaluationResult {
    try OptionCheck.atLeast(batchSize, 1, "batch-size")
    let start = Date()
    var total = 0.0, tokens = 0
    try noGrad {
        for lo in stride(from: 0, to: examples.count, by: batchSize) {
            let rows = examples[lo..<min(examples.count, lo + batchSize)].filter { !$0.target.isEmpty && !$0.input.isEmpty }
            guard !rows.isEmpty else { continue }
            let batch = Seq2SeqBatch(Array(rows), padID: Int32(model.config.padTokenID))
            let ids = try Tensor(indices: batch.inputIDs, shape: [batch.batch, batch.inputLength], on: model.device)
            let loss = try model.loss(inputIDs: ids, mask: batch.inputMask, labels: batch.labels, decoderLength: batch.targetLength).item()
            total += Double(loss) * Double(batch.targetTokens)
            tokens += batch.targetTokens
        }
    }
    guard tokens > 0 else {
        throw TrainError.invalid("evaluation scored no tokens: none of the \(examples.count) examples has a target")
    }
    let mean = total / Double(tokens)
    return EvaluationResult(meanLoss: mean, perplexity: exp(mean), tokens: tokens, sequences: examples.count,
                            seconds: Date().timeIntervalSince(start))
}
