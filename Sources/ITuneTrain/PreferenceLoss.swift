import Foundation

// The preference losses, as TRL 1.16 computes them (trl/trainer/dpo_trainer.py `_compute_loss`,
// trl/experimental/orpo/orpo_trainer.py `odds_ratio_loss` and `concatenated_forward`), on the
// per-sequence log-probabilities of a micro-batch of pairs. Golden values: 
// scripts/make_preference_fixtures.py runs TRL's own trainers on a tiny model.
//
// For pair i: π_c, π_r the policy's summed log-probabilities of the chosen and rejected answer
// tokens, ρ_c, ρ_r the reference's, n_c, n_r the answers' token counts.
// - DPO sigmoid (Rafailov et al. 2023), with label smoothing ε (conservative DPO):
//   Δ = (π_c − ρ_c) − (π_r − ρ_r), loss = −(1−ε)·logσ(βΔ) − ε·logσ(−βΔ)
//   (TRL 1.16's "sigmoid" is ε = 0; its ε form survives in the "aot" loss, equal for one pair.)
// - IPO (Azar et al. 2023), length-normalised as TRL does:
//   loss = ((π_c − ρ_c)/n_c − (π_r − ρ_r)/n_r − 1/(2β))²
// - ORPO (Hong et al. 2024) on the mean log-probabilities m = π/n, no reference:
//   log_odds = (m_c − m_r) − (log(1−e^{m_c}) − log(1−e^{m_r})), loss = NLL − λ·logσ(log_odds),
//   the NLL being the chosen rows' mean cross-entropy over every token (TRL scores the prompt
//   too: its labels there are the input ids wherever the attention mask is 1).
// Each loss is the mean over the pairs of the micro-batch. Rewards as TRL logs them: β·(π − ρ)
// for DPO/IPO, λ·m for ORPO.

/// What `itune-gpu train --method` trains for.
public enum TrainingMethod: String, Codable, Sendable, CaseIterable {
    /// Supervised fine-tuning on instruction data (the loss on the answers).
    case sft
    /// Direct preference optimisation against a reference model.
    case dpo
    /// Odds-ratio preference optimisation: NLL on the chosen answer plus an odds-ratio term.
    case orpo
}

/// The DPO loss family (`--loss-type`).
public enum PreferenceLossType: String, Codable, Sendable, CaseIterable {
    case sigmoid, ipo
}

/// The preference objective of a run: how pairs of answers become a loss.
public struct PreferenceObjective: Sendable, Codable, Equatable {
    public var method: TrainingMethod
    /// DPO's β (IPO's τ): how far the policy may move from the reference.
    public var beta: Double = 0.1
    /// Conservative DPO's ε: the probability that a pair's labels are flipped, in [0, 0.5).
    public var labelSmoothing: Double = 0
    public var lossType = PreferenceLossType.sigmoid
    /// ORPO's λ: the weight of the odds-ratio term against the NLL.
    public var lambda: Double = 0.1

    public init(method: TrainingMethod, beta: Double = 0.1, labelSmoothing: Double = 0, lossType: PreferenceLossType = .sigmoid,
                lambda: Double = 0.1) {
        self.method = method
        self.beta = beta
        self.labelSmoothing = labelSmoothing
        self.lossType = lossType
        self.lambda = lambda
    }

    /// Whether the loss needs reference log-probabilities (DPO and IPO do, ORPO does not).
    public var needsReference: Bool { method == .dpo }
}

/// Sums over pairs of the metrics TRL logs, so that micro-batches, steps and ranks add up.
public struct PreferenceMetrics: Sendable, Equatable {
    /// Pairs summed.
    public var pairs = 0
    /// name → sum over pairs (for ORPO's batch-level numbers, the batch value × its pairs).
    public var sums: [String: Double] = [:]

    public init() {}

    public static let dpoNames = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                                  "logps/chosen", "logps/rejected"]
    public static let orpoNames = dpoNames + ["nll_loss", "log_odds_ratio", "log_odds_chosen"]

    public mutating func add(_ other: PreferenceMetrics) {
        pairs += other.pairs
        for (k, v) in other.sums { sums[k, default: 0] += v }
    }

    /// name → mean over pairs.
    public var means: [String: Double] {
        sums.mapValues { pairs > 0 ? $0 / Double(pairs) : .nan }
    }
}

/// The host side of the losses: value, gradient with respect to each sequence's summed
/// log-probability, and the metrics. Double precision throughout.
public enum PreferenceLoss {
    /// log σ(z), without overflow for large |z|.
    static func logSigmoid(_ z: Double) -> Double { min(z, 0) - log1p(exp(-abs(z))) }
    static func sigmoid(_ z: Double) -> Double { z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)) }
    /// log(1 − eˣ) for x < 0, as TRL's log1mexp (branch at −ln 2 against cancellation).
    static func log1mexp(_ x: Double) -> Double { x < -0.6931471805599453 ? log1p(-exp(x)) : log(-expm1(x)) }

    /// DPO (sigmoid, with label smoothing, or IPO) over B pairs. chosen/rejected: the policy's
    /// summed log-probabilities; refChosen/refRejected: the reference's; counts: answer tokens.
    /// Returns the mean loss, ∂loss/∂chosenᵢ and ∂loss/∂rejectedᵢ, and the metric sums.
    public static func dpo(_ o: PreferenceObjective, chosen: [Double], rejected: [Double], refChosen: [Double], refRejected: [Double],
                           chosenCounts: [Int], rejectedCounts: [Int])
        -> (loss: Double, dChosen: [Double], dRejected: [Double], metrics: PreferenceMetrics) {
        let B = chosen.count
        var loss = 0.0
        var dc = [Double](repeating: 0, count: B), dr = dc
        var m = PreferenceMetrics()
        m.pairs = B
        for i in 0..<B {
            let lc = chosen[i] - refChosen[i], lr = rejected[i] - refRejected[i]
            switch o.lossType {
            case .sigmoid:
                let z = o.beta * (lc - lr), e = o.labelSmoothing
                loss += -(1 - e) * logSigmoid(z) - e * logSigmoid(-z)
                // d/dz [−(1−ε)logσ(z) − ε logσ(−z)] = −(1−ε)σ(−z) + εσ(z)
                let dz = -(1 - e) * sigmoid(-z) + e * sigmoid(z)
                dc[i] = dz * o.beta / Double(B)
                dr[i] = -dz * o.beta / Double(B)
            case .ipo:
                let nc = Double(max(chosenCounts[i], 1)), nr = Double(max(rejectedCounts[i], 1))
                let d = lc / nc - lr / nr - 1 / (2 * o.beta)
                loss += d * d
                dc[i] = 2 * d / nc / Double(B)
                dr[i] = -2 * d / nr / Double(B)
            }
            let rc = o.beta * lc, rr = o.beta * lr
            m.sums["rewards/chosen", default: 0] += rc
            m.sums["rewards/rejected", default: 0] += rr
            m.sums["rewards/accuracies", default: 0] += rc > rr ? 1 : 0
            m.sums["rewards/margins", default: 0] += rc - rr
            m.sums["logps/chosen", default: 0] += chosen[i]
            m.sums["logps/rejected", default: 0] += rejected[i]
        }
        return (loss / Double(B), dc, dr, m)
    }

    /// ORPO's odds-ratio term over B pairs, −λ·mean logσ(log_odds), on the mean log-probabilities
    /// (summed ones divided by the counts); the caller adds the NLL and passes its value in `nll`
    /// for the metrics. Derivatives are with respect to the summed log-probabilities.
    public static func orpo(_ o: PreferenceObjective, chosen: [Double], rejected: [Double], chosenCounts: [Int], rejectedCounts: [Int],
                            nll: Double)
        -> (loss: Double, dChosen: [Double], dRejected: [Double], metrics: PreferenceMetrics) {
        let B = chosen.count
        var loss = 0.0, ratioSum = 0.0, oddsSum = 0.0
        var dc = [Double](repeating: 0, count: B), dr = dc
        var m = PreferenceMetrics()
        m.pairs = B
        for i in 0..<B {
            let nc = Double(max(chosenCounts[i], 1)), nr = Double(max(rejectedCounts[i], 1))
            let mc = chosen[i] / nc, mr = rejected[i] / nr
            let logOdds = (mc - mr) - (log1mexp(mc) - log1mexp(mr))
            let ratio = logSigmoid(logOdds)
            loss += -o.lambda * ratio
            ratioSum += ratio
            oddsSum += logOdds
            // ∂logσ(x)/∂x = σ(−x); ∂log_odds/∂m_c = 1/(1 − e^{m_c}); ∂log_odds/∂m_r = −1/(1 − e^{m_r}).
            let g = -o.lambda * sigmoid(-logOdds) / Double(B)
            dc[i] = g / -expm1(mc) / nc
            dr[i] = -g / -expm1(mr) / nr
            let rc = o.lambda * mc, rr = o.lambda * mr
            m.sums["rewards/chosen", default: 0] += rc
            m.sums["rewards/rejected", default: 0] += rr
            m.sums["rewards/accuracies", default: 0] += rc > rr ? 1 : 0
            m.sums["rewards/margins", default: 0] += rc - rr
            m.sums["logps/chosen", default: 0] += mc
            m.sums["logps/rejected", default: 0] += mr
        }
        // Batch-level numbers, weighted by the batch's pairs so that batches average by pairs.
        m.sums["nll_loss"] = nll * Double(B)
        m.sums["log_odds_ratio"] = ratioSum
        m.sums["log_odds_chosen"] = oddsSum
        return (loss / Double(B), dc, dr, m)
    }
}
