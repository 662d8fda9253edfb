import Foundation
import ITuneModels
import ITuneTensor

// Preference pairs through the model: one forward over the chosen and rejected rows together
// (a (2B, T) batch, chosen first), each row's summed log-probability of its answer tokens, the
// reference's the same way without gradients, and the loss of PreferenceLoss.swift on top.

/// Where DPO's reference log-probabilities come from.
public enum PreferenceReference {
    /// The policy itself with its LoRA adapters switched off: the base, no second copy.
    case adaptersOff
    /// A frozen copy of the starting model (full fine-tuning).
    case frozen(any CausalLM)
    /// Computed before training and carried by every row (`TrainingRow.referenceLogProbs`).
    case precomputed
}

/// A micro-batch of pairs laid out for the model: chosen rows then rejected rows, padded to the
/// longest, targets shifted (the label of t+1 at t, −100 where nothing is scored).
struct PairBatch {
    var ids: [Int32]
    var targets: [Int32]
    /// Every token after the first of the chosen rows (padding excepted): ORPO's NLL targets for
    /// the chosen half.
    var chosenAllTargets: [Int32]
    var pairs: Int
    var length: Int

    init(_ rows: [TrainingRow], padID: Int32) throws {
        var sequences: [(ids: [Int32], labels: [Int32])] = rows.map { ($0.ids, $0.labels) }
        for r in rows {
            guard let ids = r.rejectedIDs, let labels = r.rejectedLabels else {
                throw TrainError.invalid("a preference batch holds a row without a rejected answer")
            }
            sequences.append((ids, labels))
        }
        let T = sequences.map(\.ids.count).max() ?? 0
        guard T >= 2 else { throw TrainError.invalid("preference rows need at least 2 tokens") }
        ids = []
        targets = []
        chosenAllTargets = []
        for (k, s) in sequences.enumerated() {
            ids += s.ids + [Int32](repeating: padID, count: T - s.ids.count)
            for t in 0..<T {
                targets.append(t + 1 < s.labels.count ? s.labels[t + 1] : -100)
                if k < rows.count { chosenAllTargets.append(t + 1 < s.ids.count ? s.ids[t + 1] : -100) }
            }
        }
        pairs = rows.count
        length = T
    }
}

/// The preference loss of a micro-batch of pair rows (see PreferenceLoss.swift), as a scalar
/// tensor whose backward reaches the policy's trainable weights, and the metric sums of its pairs.
public func preferenceLoss(model: any CausalLM, reference: PreferenceReference?, rows: [TrainingRow],
                           objective o: PreferenceObjective, padID: Int32) throws -> (loss: Tensor, metrics: PreferenceMetrics) {
    let batch = try PairBatch(rows, padID: padID)
    let B = batch.pairs
    let idT = try Tensor(indices: batch.ids, shape: [2 * B, batch.length], on: model.device)
    let hidden = try model.hiddenStates(idT)
    let (logProbs, counts) = try model.sequenceLogProbs(hidden, targets: batch.targets)
    let chosenCounts = Array(counts[..<B]), rejectedCounts = Array(counts[B...])
    var metrics = PreferenceMetrics()
    switch o.method {
    case .dpo:
        let ref = try referenceLogProbs(model: model, reference: reference, rows: rows, batch: batch)
        let loss = try logProbs.hostScalarFunction("dpoLoss") { x in
            let r = PreferenceLoss.dpo(o, chosen: Array(x[..<B]), rejected: Array(x[B...]), refChosen: Array(ref[..<B]),
                                       refRejected: Array(ref[B...]), chosenCounts: chosenCounts, rejectedCounts: rejectedCounts)
            metrics = r.metrics
            return (r.loss, r.dChosen + r.dRejected)
        }
        return (loss, metrics)
    case .orpo:
        let chosenHidden = try hidden.narrow(axis: 0, start: 0, length: B)
        let nll = try model.headCrossEntropy(chosenHidden, targets: Tensor(indices: batch.chosenAllTargets, shape: [B * batch.length],
                                                                             on: model.device))
        let nllValue = Double(try nll.item())
        let odds = try logProbs.hostScalarFunction("orpoOddsRatio") { x in
            let r = PreferenceLoss.orpo(o, chosen: Array(x[..<B]), rejected: Array(x[B...]), chosenCounts: chosenCounts,
                                        rejectedCounts: rejectedCounts, nll: nllValue)
            metrics = r.metrics
            return (r.loss, r.dChosen + r.dRejected)
        }
        return (try nll + odds, metrics)
    case .sft:
        throw TrainError.invalid("preferenceLoss: --method sft trains on instruction rows, not pairs")
    }
}

/// The reference's summed log-probabilities of a batch's 2B rows (chosen first), without gradients.
func referenceLogProbs(model: any CausalLM, reference: PreferenceReference?, rows: [TrainingRow], batch: PairBatch) throws -> [Double] {
    func run(_ m: any CausalLM) throws -> [Double] {
        try noGrad {
            let idT = try Tensor(indices: batch.ids, shape: [2 * batch.pairs, batch.length], on: m.device)
            return try m.sequenceLogProbs(m.hiddenStates(idT), targets: batch.targets).logProbs.toArray().map(Double.init)
        }
    }
    switch reference {
    case .adaptersOff:
        guard !model.loraAdapters.isEmpty else {
            throw TrainError.invalid("DPO's reference is the model with its adapters off, but it has no LoRA adapters: full fine-tuning needs a frozen reference copy or precomputed reference log-probabilities")
        }
        return try model.withAdaptersDisabled { try run(model) }
    case let .frozen(m):
        return try run(m)
    case .precomputed, nil:
        var chosen: [Double] = [], rejected: [Double] = []
        for (i, r) in rows.enumerated() {
            guard let ref = r.referenceLogProbs, ref.count == 2 else {
                throw TrainError.invalid("pair \(i) of the batch carries no precomputed reference log-probabilities")
            }
            chosen.append(ref[0])
            rejected.append(ref[1])
        }
        return chosen + rejected
    }
}

/// Every row with its reference log-probabilities (chosen, rejected), computed in batches of
/// `batchSize` pairs before training (`--precompute-ref`): the reference then costs nothing per
/// step and, for full fine-tuning, needs no second model in memory.
public func precomputeReferenceLogProbs(model: any CausalLM, reference: PreferenceReference, rows: [TrainingRow], batchSize: Int,
                                        padID: Int32) throws -> [TrainingRow] {
    var out = rows
    for lo in stride(from: 0, to: rows.count, by: max(1, batchSize)) {
        let chunk = Array(rows[lo..<min(rows.count, lo + max(1, batchSize))])
        let batch = try PairBatch(chunk, padID: padID)
        let ref = try referenceLogProbs(model: model, reference: reference, rows: chunk, batch: batch)
        for i in 0..<chunk.count { out[lo + i].referenceLogProbs = [ref[i], ref[chunk.count + i]] }
    }
    return out
}

/// Mean preference loss and metrics over held-out pairs (no gradients), in batches.
public func evaluatePreference(model: any CausalLM, reference: PreferenceReference?, rows: [TrainingRow], objective: PreferenceObjective,
                               batchSize: Int, padID: Int32) throws -> (meanLoss: Double, metrics: PreferenceMetrics) {
    var total = 0.0
    var metrics = PreferenceMetrics()
    try noGrad {
        for lo in stride(from: 0, to: rows.count, by: max(1, batchSize)) {
            let chunk = Array(rows[lo..<min(rows.count, lo + max(1, batchSize))])
            let (loss, m) = try preferenceLoss(model: model, reference: reference, rows: chunk, objective: objective, padID: padID)
            total += Double(try loss.item()) * Double(chunk.count)
            metrics.add(m)
        }
    }
    guard metrics.pairs > 0 else { throw TrainError.invalid("preference evaluation: no pairs") }
    return (total / Double(metrics.pairs), metrics)
}
