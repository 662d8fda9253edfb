import Foundation
import ITuneData
import ITuneDistributed
import ITuneModels
import ITuneTensor

/// One row of a training batch: token ids and Hugging Face-style labels (aligned with ids, −100
/// where no loss is taken; the model shifts). `lengths` lists the examples packed into the row
/// (empty: one example), so that attention stays inside each. An encoder-decoder row has a
/// `target`: `ids` is then the encoder's input and `target` the decoder's labels (every token
/// scored, teacher forcing); `labels` is unused.
public struct TrainingRow: Sendable, Codable, Equatable {
    public var ids: [Int32]
    public var labels: [Int32]
    public var lengths: [Int]
    public var target: [Int32]?
    /// A preference pair (`--method dpo|orpo`): `ids`/`labels` hold the prompt and the chosen
    /// answer, these the same prompt and the rejected one (labels −100 on the prompt in both).
    public var rejectedIDs: [Int32]? = nil
    public var rejectedLabels: [Int32]? = nil
    /// The reference model's summed log-probabilities of the chosen and rejected answers, when
    /// computed before training (`--precompute-ref`).
    public var referenceLogProbs: [Double]? = nil

    public init(ids: [Int32], labels: [Int32], lengths: [Int] = []) {
        self.ids = ids
        self.labels = labels
        self.lengths = lengths
    }

    /// An encoder-decoder row: `input` for the encoder, `target` for the decoder.
    public init(input: [Int32], target: [Int32]) {
        ids = input
        labels = []
        lengths = []
        self.target = target
    }

    /// A preference pair: prompt + chosen and prompt + rejected, each with its labels.
    public init(chosen: (ids: [Int32], labels: [Int32]), rejected: (ids: [Int32], labels: [Int32])) {
        self.init(ids: chosen.ids, labels: chosen.labels)
        rejectedIDs = rejected.ids
        rejectedLabels = rejected.labels
    }

    public var isPair: Bool { rejectedIDs != nil }

    /// Tokens whose prediction is scored (labels after the first that are not −100; every
    /// target token of an encoder-decoder row).
    public var scoredTokens: Int {
        if let target { return target.reduce(0) { $0 + ($1 == -100 ? 0 : 1) } }
        return labels.dropFirst().reduce(0) { $0 + ($1 == -100 ? 0 : 1) }
    }

    /// What a micro-batch's loss is weighted by within a step: scored tokens for instruction
    /// rows, one per pair for preference rows (DPO's loss is a mean over pairs).
    public var lossWeight: Int { isPair ? 1 : scoredTokens }

    /// Tokens the model reads for this row (both sides of an encoder-decoder row, both
    /// sequences of a pair).
    public var tokenCount: Int { ids.count + (target?.count ?? 0) + (rejectedIDs?.count ?? 0) }
}

/// How a run trains. Codable: it is saved with every checkpoint and read from `--config`.
public struct TrainerOptions: Sendable, Codable, Equatable {
    public var batchSize = 4
    public var gradientAccumulation = 1
    public var epochs = 1
    /// Optimizer steps; when set, overrides epochs.
    public var maxSteps: Int? = nil
    public var optimizer = AdamWConfig(learningRate: 2e-4, weightDecay: 0)
    /// Warm-up as a fraction of the steps, unless `warmupSteps` is set.
    public var warmupRatio: Float = 0.03
    public var warmupSteps: Int? = nil
    public var decay = LRSchedule.Decay.cosine
    public var maxGradNorm: Float = 1
    public var seed: UInt64 = 42
    /// Validation every N steps (0: at the end only); checkpoints every N steps (0: none).
    public var evalEvery = 0
    public var saveEvery = 0
    public var keepCheckpoints = 2
    public var padID: Int32 = 0
    /// A step whose loss or gradient norm is NaN or infinite stops the run (default) or is skipped.
    public var nanPolicy = NaNPolicy.stop
    /// The losses and gradient norms stay on the device for N optimizer steps and come back in
    /// one read: one metrics line (the mean loss of the N steps) and one progress event per N.
    public var logEvery = 1
    /// DPO or ORPO on preference rows; nil: supervised fine-tuning on instruction rows.
    public var preference: PreferenceObjective? = nil

    public init() {}
}

/// What the trainer reports while it runs.
public enum TrainerEvent {
    case step(StepMetrics)
    case validation(step: Int, loss: Double)
    case checkpoint(step: Int, URL)
    case info(String)
}

public struct StepMetrics: Sendable, Codable {
    public var step: Int
    public var totalSteps: Int
    public var epoch: Double
    public var loss: Double
    public var learningRate: Float
    public var gradNorm: Float
    public var tokensPerSecond: Double
    public var elapsed: Double
    public var eta: Double
    /// Seconds this step spent summing gradients over the ranks after its backward ended (0 in
    /// a run of one: what communication added to the step), and of those the seconds spent
    /// waiting for the network.
    public var allreduceSeconds = 0.0
    public var allreduceWaitSeconds = 0.0
    /// The share of the gradient whose allreduce started during the backward (overlapped with it).
    public var allreduceOverlap = 0.0
    /// Preference runs: the logged steps' means over pairs of what TRL logs (rewards/chosen,
    /// rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected; ORPO
    /// also nll_loss, log_odds_ratio, log_odds_chosen). Empty for SFT.
    public var preference: [String: Double] = [:]
}

public struct TrainingSummary: Sendable {
    public var steps: Int
    public var firstLoss: Double
    public var lastLoss: Double
    public var validationLoss: Double?
    public var tokensPerSecond: Double
    public var seconds: Double
    /// (step, loss) of every step of this output directory, resumed runs included.
    public var history: [(Int, Double)]
    /// Steps skipped under `NaNPolicy.skipStep`, resumed runs included.
    public var skippedSteps = 0
    /// The process's peak resident memory and the backend's peak bytes in tensors, measured
    /// at the end of the run.
    public var peakMemory = PeakMemory()
    /// Per-kernel times of the profiled steps (`Trainer.profile`).
    public var profile: StepProfile?
}

/// A training loop over fixed rows: shuffled per epoch from the seed, batched, padded, with
/// gradient accumulation (the loss of a step is weighted by scored tokens, not micro-batches),
/// global-norm clipping, AdamW on a warm-up + decay schedule, checkpoints that resume the same
/// curve, metrics.jsonl and an SVG loss curve in the output directory.
///
/// Data-parallel under a `Communicator` of N ranks: `options.batchSize` is the batch of one
/// rank, a global micro-batch holds batchSize × N rows (the rows a single process with that
/// batch would take) and rank r trains on its r-th share; each micro-batch's loss is weighted
/// by the scored tokens of the whole global micro-batch, so the gradients summed over the ranks
/// (in buckets, each started during the step's last backward once its gradients are final)
/// are the single process's. AdamW then runs
/// alike on every rank. Rank 0 alone writes checkpoints, metrics and the loss curve, and
/// reports events.
public final class Trainer {
    /// A decoder-only model (`CausalLM`, rows of ids and labels) or an encoder-decoder
    /// (`T5Model`, rows with a target).
    public let model: any LoRAHost
    /// The tensors trained, each with the name it is checkpointed under.
    public let trainable: [(String, Tensor)]
    public let options: TrainerOptions
    public let train: [TrainingRow]
    public let validation: [TrainingRow]
    public let outputDirectory: URL
    public let optimizer: AdamW
    /// Held from `init` until the trainer is freed: one run per output directory (by rank 0).
    let outputLock: OutputLock?
    /// The ranks of a data-parallel run (a single process by default).
    public let communicator: any Communicator
    /// Gradients summed over the ranks in buckets of this many bytes (DDP's 25 MB by default).
    public let bucketBytes: Int
    /// The gradient buckets' plan and host buffer (built at the first step of a data-parallel run).
    var allreduceBuffers: BucketedAllreduce?
    /// This run's tape and dropout keys: forward and backward passes run inside it, so that
    /// other models (another device, a reference model) can train beside this one.
    public let context: TrainingContext
    /// Time every kernel (OpenCL) or op (CPU path) of the run's steps from the second on (the
    /// first builds kernels and fills the pools; a one-step run profiles that step): the
    /// summary's `profile`.
    public var profile = false
    /// DPO's reference (preference runs): the adapters switched off, a frozen copy, or the rows'
    /// precomputed log-probabilities.
    public var reference: PreferenceReference? = nil
    /// The preference metrics of the micro-batches run since the last step was recorded.
    var stepPreference = PreferenceMetrics()
    /// The epoch whose row order `epochOrder` holds (rebuilt once per epoch, not per micro-batch).
    private var epochOrder: (epoch: Int, order: [Int])?

    public init(model: any LoRAHost, trainable: [(String, Tensor)], options: TrainerOptions, train: [TrainingRow],
                validation: [TrainingRow] = [], outputDirectory: URL,
                communicator: any Communicator = SingleProcessCommunicator(),
                bucketBytes: Int = GradientBuckets.defaultBucketBytes) throws {
        guard !train.isEmpty else { throw TrainError.invalid("no training rows") }
        guard model is any CausalLM || model is T5Model else {
            throw TrainError.invalid("the trainer trains decoder-only (CausalLM) or encoder-decoder (T5Model) models, not \(type(of: model))")
        }
        let encoderDecoder = model is T5Model
        guard (train + validation).allSatisfy({ ($0.target != nil) == encoderDecoder }) else {
            throw TrainError.invalid(encoderDecoder ? "an encoder-decoder model trains on rows with a target (TrainingRow(input:target:))"
                                                    : "a decoder-only model trains on rows of ids and labels, not input → target rows")
        }
        try options.validate()
        let pairs = train.filter(\.isPair).count + validation.filter(\.isPair).count
        if options.preference != nil {
            guard pairs == train.count + validation.count else {
                throw TrainError.invalid("--method \(options.preference!.method.rawValue) trains on preference pairs ({prompt, chosen, rejected}), but \(train.count + validation.count - pairs) row(s) are not pairs")
            }
            if let packed = train.first(where: { $0.lengths.count > 1 }) {
                throw TrainError.invalid("preference rows cannot be packed (a row holds \(packed.lengths.count) examples): packing is off for --method dpo/orpo")
            }
        } else if pairs > 0 {
            throw TrainError.invalid("\(pairs) preference pair row(s) given to a supervised run: pass --method dpo or orpo")
        }
        guard bucketBytes >= 4 else { throw TrainError.invalid("gradient bucket of \(bucketBytes) bytes: must hold at least one float") }
        self.communicator = communicator
        self.bucketBytes = bucketBytes
        self.model = model
        self.trainable = trainable
        self.options = options
        self.train = train
        self.validation = validation
        self.outputDirectory = outputDirectory
        if communicator.isRoot {
            try OutputFiles.prepareDirectory(outputDirectory)
            outputLock = try OutputLock(directory: outputDirectory)
        } else {
            outputLock = nil
        }
        for (_, t) in trainable { t.requiresGrad = true }
        context = TrainingContext(seed: options.seed)
        // Room on the device for the records of the steps between two reads.
        let microBatches = (train.count + options.batchSize - 1) / options.batchSize
        let steps = options.maxSteps ?? options.epochs * max(1, (microBatches + options.gradientAccumulation - 1) / options.gradientAccumulation)
        optimizer = try AdamW(parameters: trainable.map(\.1), config: options.optimizer,
                              stepRecords: min(options.logEvery, max(1, steps)))
    }

    /// Rows of one global micro-batch: the per-rank batch times the ranks.
    public var globalBatchSize: Int { options.batchSize * communicator.size }
    public var microBatchesPerEpoch: Int { (train.count + globalBatchSize - 1) / globalBatchSize }
    public var stepsPerEpoch: Int { max(1, (microBatchesPerEpoch + options.gradientAccumulation - 1) / options.gradientAccumulation) }
    public var totalSteps: Int { options.maxSteps ?? options.epochs * stepsPerEpoch }

    public var schedule: LRSchedule {
        let warm = options.warmupSteps ?? Int((Float(totalSteps) * options.warmupRatio).rounded(.up))
        return LRSchedule(peak: options.optimizer.learningRate, warmupSteps: warm, totalSteps: totalSteps, decay: options.decay)
    }

    /// Rows of micro-batch `index` (counted over the whole run): epoch e visits a permutation
    /// of the rows drawn from seed and e, so a resumed run sees the same batches.
    func rows(ofMicroBatch index: Int) -> [TrainingRow] {
        let epoch = index / microBatchesPerEpoch, within = index % microBatchesPerEpoch
        let order: [Int]
        if let cached = epochOrder, cached.epoch == epoch {
            order = cached.order
        } else {
            order = permutation(count: train.count, seed: options.seed &+ UInt64(epoch) &* 0x9E37_79B9)
            epochOrder = (epoch, order)
        }
        let lo = within * globalBatchSize
        return order[lo..<min(train.count, lo + globalBatchSize)].map { train[$0] }
    }

    /// This rank's share of a global micro-batch: rows r·batchSize ..< (r+1)·batchSize (fewer,
    /// or none, in an epoch's last micro-batch).
    func shard(_ rows: [TrainingRow]) -> ArraySlice<TrainingRow> {
        let lo = min(rows.count, communicator.rank * options.batchSize)
        return rows[lo..<min(rows.count, lo + options.batchSize)]
    }

    /// Runs until `totalSteps`, from the latest checkpoint when `resume` is set.
    public func run(resume: Bool = false, onEvent reportEvent: (TrainerEvent) -> Void = { _ in }) throws -> TrainingSummary {
        let root = communicator.isRoot
        func onEvent(_ event: TrainerEvent) { if root { reportEvent(event) } }
        if root { try OutputFiles.prepareDirectory(outputDirectory) }
        if let notice = outputLock?.notice { onEvent(.info(notice)) }
        if root { removeLeftovers(onEvent: onEvent) }
        // Ranks that disagree about the data would train different models without a word.
        try communicator.checkSame(Double(train.count), "the number of training rows")
        try communicator.checkSame(Double(trainable.reduce(0) { $0 + $1.1.count }), "the number of trainable parameters")
        var history: [(Int, Double)] = []
        var validationHistory: [(Int, Double)] = []
        var start = 0, skippedSteps = 0
        if resume {
            // Rank 0 reads the checkpoint and hands it to the others (who need not see the
            // output directory): a failure on rank 0 ends the run on every rank.
            let state = root ? try loadLatestCheckpoint(onEvent: onEvent) : nil
            if communicator.size > 1 { start = try broadcastResumedState(state) }
            if let state {
                start = state.step
                history = state.history
                validationHistory = state.validation
                skippedSteps = state.skippedSteps
                onEvent(.info("resumed from step \(start) of \(totalSteps)"))
            } else if root {
                onEvent(.info("no checkpoint in \(checkpointsDirectory.path): starting from step 0"))
            }
        }
        if root { try metricsLog.trim(keepingUpTo: start) }
        if communicator.size > 1 {
            onEvent(.info("data parallel: \(communicator.size) ranks × batch \(options.batchSize) × \(options.gradientAccumulation) accumulation = global batch \(globalBatchSize * options.gradientAccumulation) rows per step; gradients summed in \(try gradientBuckets().plan.buckets.count) bucket(s) of up to \(bucketBytes / 1_048_576 > 0 ? "\(bucketBytes / 1_048_576) MiB" : "\(bucketBytes) bytes") (\(communicator.description))"))
        }
        let schedule = self.schedule
        let began = Date()
        var tokens = 0
        var validationLoss: Double? = validationHistory.last?.1
        // Steps since the last read of the device's step records (see `readWindow`).
        var window: [PendingStep] = []
        var curveWritten = start
        let backend = try model.device.backend()
        let profileFrom = totalSteps - start >= 2 ? start + 2 : start + 1
        var profiled: StepProfile?
        if start < totalSteps {
            for step in (start + 1)...totalSteps {
                if profile && step == profileFrom { try backend.startProfiling() }
                let micro = (0..<options.gradientAccumulation).map { (step - 1) * options.gradientAccumulation + $0 }
                    .filter { options.maxSteps != nil || $0 < options.epochs * microBatchesPerEpoch }
                let batches = micro.map { ($0, rows(ofMicroBatch: $0)) }
                let scored = batches.reduce(0) { $0 + $1.1.reduce(0) { $0 + $1.lossWeight } }
                // Each micro-batch's loss, weighted by its share of the step's scored tokens (over
                // every rank's rows): they sum to the step's loss on the device, and over the ranks.
                var losses: [Tensor] = []
                var stepTokens = 0
                let shards = batches.map { index, global in
                    let rows = Array(shard(global))
                    return (index: index, rows: rows, scored: rows.reduce(0) { $0 + $1.lossWeight })
                }
                // Gradients are summed over the ranks once per optimizer step, as DDP's no_sync
                // accumulation does: buckets start during this rank's last backward of the step.
                let buckets = communicator.size > 1 ? try gradientBuckets() : nil
                if let buckets { beginGradientSync(buckets) }
                let lastBackward = shards.lastIndex { $0.scored > 0 }
                for (k, micro) in shards.enumerated() where micro.scored > 0 {
                    // Dropout masks from (seed, micro-batch, rank): ranks must not draw the same
                    // masks for their different rows (a run of one keeps its old keys).
                    let weighted = try context.microBatch(micro.index &* communicator.size &+ communicator.rank) {
                        let weighted = try batchLoss(micro.rows).scaled(by: Float(micro.scored) / Float(max(scored, 1)))
                        if let buckets, k == lastBackward {
                            try weighted.backward(watching: trainable.map(\.1)) { try buckets.parameterReady($0) }
                        } else {
                            try weighted.backward()
                        }
                        return weighted
                    }
                    losses.append(weighted)
                    stepTokens += micro.rows.reduce(0) { $0 + $1.tokenCount }
                }
                var allreduceSeconds = 0.0, allreduceWait = 0.0, allreduceOverlap = 0.0
                if let buckets {
                    stepTokens = try finishGradientSync(buckets, tokens: stepTokens)
                    allreduceSeconds = buckets.lastExposedSeconds
                    allreduceWait = buckets.lastWaitSeconds
                    allreduceOverlap = buckets.lastOverlap
                }
                tokens += stepTokens
                let lr = schedule.rate(at: step)
                // Clipping (maxGradNorm ≤ 0 turns it off, as in transformers; the norm is still
                // recorded), the divergence check and the update, all on the device: a step
                // that is not finite is skipped there, and under --nan-policy stop halts every
                // later update until the host reads the records below.
                try optimizer.step(losses: losses, maxGradNorm: options.maxGradNorm, learningRate: lr,
                                   haltOnNonFinite: options.nanPolicy == .stop, record: window.count)
                optimizer.zeroGrad()
                window.append(PendingStep(step: step, scored: scored, learningRate: lr,
                                          allreduceSeconds: allreduceSeconds, allreduceWaitSeconds: allreduceWait,
                                          allreduceOverlap: allreduceOverlap, preference: stepPreference))
                stepPreference = PreferenceMetrics()
                let last = step == totalSteps
                let validating = !validation.isEmpty && ((options.evalEvery > 0 && step % options.evalEvery == 0) || last)
                let saving = options.saveEvery > 0 && (step % options.saveEvery == 0 || last)
                // Every rank reads at the same steps (the records' losses are summed over the ranks).
                guard step % options.logEvery == 0 || last || validating || saving || window.count == optimizer.control.records
                else { continue }
                if profile && last, let p = try backend.stopProfiling() {
                    profiled = StepProfile(profile: p, steps: profileFrom...step)
                }
                try readWindow(window, history: &history, skippedSteps: &skippedSteps, start: start, tokens: tokens,
                               began: began, onEvent: onEvent)
                window = []
                if validating, root {
                    let meanLoss: Double
                    var line: [String: Any] = ["type": "validation", "step": step]
                    if let objective = options.preference {
                        guard let lm = model as? any CausalLM else { throw TrainError.invalid("preference tuning trains decoder-only models") }
                        let v = try evaluatePreference(model: lm, reference: reference, rows: validation, objective: objective,
                                                       batchSize: options.batchSize, padID: options.padID)
                        meanLoss = v.meanLoss
                        for (k, x) in v.metrics.means { line[k] = x }
                    } else {
                        let v = try validationResult()
                        meanLoss = v.meanLoss
                        line["perplexity"] = v.perplexity
                    }
                    guard meanLoss.isFinite else {
                        throw TrainError.diverged(step: step, what: "validation loss \(meanLoss)", lastCheckpoint: lastCheckpointPath())
                    }
                    validationLoss = meanLoss
                    validationHistory.append((step, meanLoss))
                    line["loss"] = meanLoss
                    try metricsLog.append(line)
                    if options.preference != nil {
                        // No perplexity for a preference loss: the held-out pairs' reward accuracy and margin instead.
                        let f = { (k: String) in (line[k] as? Double).map { String(format: "%.4f", $0) } ?? "?" }
                        onEvent(.info("validation at step \(step): loss \(f("loss")), rewards/accuracies \(f("rewards/accuracies")), rewards/margins \(f("rewards/margins")) over \(validation.count) held-out pairs"))
                    } else {
                        onEvent(.validation(step: step, loss: meanLoss))
                    }
                }
                if saving, root {
                    let url = try saveCheckpoint(CheckpointState(step: step, optimizerStep: optimizer.step, history: history,
                                                                 validation: validationHistory, skippedSteps: skippedSteps))
                    onEvent(.checkpoint(step: step, url))
                }
                if root, step / 10 > curveWritten / 10 || last {
                    curveWritten = step
                    try LossCurve.write(train: history, validation: validationHistory,
                                        to: outputDirectory.appendingPathComponent("loss_curve.svg"))
                }
            }
        }
        // What the caller saves next (adapter, model) must be finite too.
        if let bad = try firstNonFinite(trainable.map { (name: $0.0, tensor: $0.1) }) {
            throw TrainError.diverged(step: totalSteps, what: "\(bad) holds NaN or infinite values", lastCheckpoint: lastCheckpointPath())
        }
        let seconds = Date().timeIntervalSince(began)
        var summary = TrainingSummary(steps: totalSteps, firstLoss: history.first?.1 ?? .nan, lastLoss: history.last?.1 ?? .nan,
                                      validationLoss: validationLoss, tokensPerSecond: Double(tokens) / max(seconds, 1e-9),
                                      seconds: seconds, history: history)
        summary.skippedSteps = skippedSteps
        summary.profile = profiled
        if skippedSteps > 0 { onEvent(.info("skipped \(skippedSteps) step(s) whose loss or gradient norm was not finite (--nan-policy skip-step)")) }
        summary.peakMemory = PeakMemory.measure(model.device)
        onEvent(.info(summary.peakMemory.description))
        return summary
    }

    /// The validation rows' mean loss per scored token.
    func validationResult() throws -> EvaluationResult {
        if let t5 = model as? T5Model {
            return try evaluate(t5, examples: validation.map { Seq2SeqExample(input: $0.ids, target: $0.target ?? [], source: Example.Source(file: "validation", task: "validation")) },
                                batchSize: options.batchSize)
        }
        guard let lm = model as? any CausalLM else { fatalError("Trainer.init admits CausalLM and T5Model only") }
        return try evaluate(lm, sequences: validation.map { ($0.ids, $0.labels) }, batchSize: options.batchSize)
    }

    /// Mean cross-entropy of a padded micro-batch (pad id, label −100 on padding); for an
    /// encoder-decoder, of the targets, each side padded on its own (the model's pad id and an
    /// attention mask on the input, −100 on the target).
    func batchLoss(_ rows: [TrainingRow]) throws -> Tensor {
        if let t5 = model as? T5Model {
            let batch = Seq2SeqBatch(inputs: rows.map(\.ids), targets: rows.map { $0.target ?? [] }, padID: Int32(t5.config.padTokenID))
            let ids = try Tensor(indices: batch.inputIDs, shape: [batch.batch, batch.inputLength], on: t5.device)
            return try t5.loss(inputIDs: ids, mask: batch.inputMask, labels: batch.labels, decoderLength: batch.targetLength)
        }
        if let objective = options.preference {
            guard let lm = model as? any CausalLM else { throw TrainError.invalid("preference tuning trains decoder-only models") }
            let (loss, metrics) = try preferenceLoss(model: lm, reference: reference, rows: rows, objective: objective,
                                                     padID: options.padID)
            stepPreference.add(metrics)
            return loss
        }
        guard let model = model as? any CausalLM else { fatalError("Trainer.init admits CausalLM and T5Model only") }
        let T = rows.map(\.ids.count).max()!
        var ids = [Int32](), labels = [Int32]()
        ids.reserveCapacity(rows.count * T)
        labels.reserveCapacity(rows.count * T)
        for r in rows {
            ids += r.ids + [Int32](repeating: options.padID, count: T - r.ids.count)
            labels += r.labels + [Int32](repeating: -100, count: T - r.labels.count)
        }
        let idT = try Tensor(indices: ids, shape: [rows.count, T], on: model.device)
        guard rows.contains(where: { $0.lengths.count > 1 }) else {
            return try model.loss(idT, labels: labels)
        }
        // Packed: attention inside each example, and positions restarting at each example as
        // if it were alone in its row.
        let lengths = rows.map { $0.lengths.isEmpty ? [$0.ids.count] : $0.lengths }
        var positions = [Int32]()
        positions.reserveCapacity(rows.count * T)
        for row in lengths {
            for n in row + [T - row.reduce(0, +)] where n > 0 { positions += (0..<Int32(n)).map { $0 } }
        }
        let segments = try AttentionSegments(lengths: lengths, rowLength: T, on: model.device)
        return try model.loss(idT, labels: labels, segments: segments,
                              positions: Tensor(indices: positions, shape: [rows.count, T], on: model.device))
    }

    /// A step whose records are still on the device.
    struct PendingStep {
        var step: Int
        var scored: Int
        var learningRate: Float
        var allreduceSeconds = 0.0
        var allreduceWaitSeconds = 0.0
        var allreduceOverlap = 0.0
        var preference = PreferenceMetrics()
    }

    /// Reads the device's records of `window` (one blocking read) and does what a step's
    /// numbers decide, in step order: a non-finite step stops the run (`NaNPolicy.stop`: the
    /// device held every update from that step on, so the parameters are those before it) or is
    /// recorded as skipped; the others join the history. Then one metrics line and one progress
    /// event for the window: the mean loss of its steps (as transformers' Trainer logs over
    /// `logging_steps`), the last step's gradient norm and learning rate.
    func readWindow(_ window: [PendingStep], history: inout [(Int, Double)], skippedSteps: inout Int, start: Int, tokens: Int,
                    began: Date, onEvent: (TrainerEvent) -> Void) throws {
        guard let lastStep = window.last else { return }
        let readout = try optimizer.readSteps(window.count)
        // Each rank's record holds its own rows' share of the step's loss: the step's loss is
        // their sum (one host allreduce per read, not per step).
        var rankLosses = readout.records.map { Double($0.loss) }
        if communicator.size > 1 { rankLosses = try communicator.allreduceSum(rankLosses) }
        var logged: [(loss: Double, norm: Float)] = []
        var lastLoss = Double.nan, lastNorm = Float.nan
        for ((pending, record), stepLoss) in zip(zip(window, readout.records), rankLosses) {
            // A step with nothing scored has no loss (NaN by definition), which is not divergence.
            let loss = pending.scored > 0 ? stepLoss : .nan
            (lastLoss, lastNorm) = (loss, record.gradNorm)
            if record.skipped {
                let what = divergence(loss: Double(record.loss), gradNorm: record.gradNorm) ?? "an earlier step was not finite"
                try skipDivergedStep(pending.step, what: what, onEvent: onEvent)
                skippedSteps += 1
            } else {
                history.append((pending.step, loss))
                logged.append((loss, record.gradNorm))
            }
        }
        // Preference metrics: pair-weighted means over the window's recorded steps and the ranks.
        var preference = PreferenceMetrics()
        for (pending, record) in zip(window, readout.records) where !record.skipped { preference.add(pending.preference) }
        if options.preference != nil, communicator.size > 1 {
            let names = (options.preference?.method == .orpo ? PreferenceMetrics.orpoNames : PreferenceMetrics.dpoNames)
            let summed = try communicator.allreduceSum([Double(preference.pairs)] + names.map { preference.sums[$0] ?? 0 })
            preference.pairs = Int(summed[0])
            for (k, v) in zip(names, summed.dropFirst()) { preference.sums[k] = v }
        }
        let elapsed = Date().timeIntervalSince(began)
        let done = lastStep.step - start
        let scoredLosses = logged.map(\.loss).filter { !$0.isNaN }
        let loss = logged.isEmpty ? lastLoss : scoredLosses.isEmpty ? .nan : scoredLosses.reduce(0, +) / Double(scoredLosses.count)
        let metrics = StepMetrics(step: lastStep.step, totalSteps: totalSteps, epoch: Double(lastStep.step) / Double(stepsPerEpoch),
                                  loss: loss, learningRate: lastStep.learningRate, gradNorm: logged.last?.norm ?? lastNorm,
                                  tokensPerSecond: Double(tokens) / max(elapsed, 1e-9), elapsed: elapsed,
                                  eta: elapsed / Double(max(done, 1)) * Double(totalSteps - lastStep.step),
                                  allreduceSeconds: lastStep.allreduceSeconds, allreduceWaitSeconds: lastStep.allreduceWaitSeconds,
                                  allreduceOverlap: lastStep.allreduceOverlap,
                                  preference: preference.pairs > 0 ? preference.means : [:])
        if !logged.isEmpty, communicator.isRoot { try appendMetrics(metrics) }
        onEvent(.step(metrics))
    }

    // MARK: output

    var metricsLog: MetricsLog { MetricsLog(url: outputDirectory.appendingPathComponent("metrics.jsonl")) }

    func appendMetrics(_ m: StepMetrics) throws {
        try metricsLog.append(["type": "train", "step": m.step, "epoch": m.epoch, "loss": m.loss, "lr": m.learningRate,
                            "grad_norm": m.gradNorm, "tokens_per_s": m.tokensPerSecond, "elapsed_s": m.elapsed]
                            .merging(communicator.size > 1 ? ["allreduce_s": m.allreduceSeconds, "allreduce_wait_s": m.allreduceWaitSeconds,
                                                              "allreduce_overlap": m.allreduceOverlap, "ranks": communicator.size] : [:]) { a, _ in a }
                            .merging(m.preference.mapValues { $0 as Any }) { a, _ in a })
    }

    /// Under `NaNPolicy.stop` throws the divergence error; under `skipStep` records the skip, or
    /// throws when the parameters themselves are no longer finite (skipping cannot recover that).
    func skipDivergedStep(_ step: Int, what: String, onEvent: (TrainerEvent) -> Void) throws {
        guard options.nanPolicy == .skipStep else {
            throw TrainError.diverged(step: step, what: what, lastCheckpoint: lastCheckpointPath())
        }
        if let bad = try firstNonFinite(trainable.map { (name: $0.0, tensor: $0.1) }) {
            throw TrainError.diverged(step: step, what: "\(what); \(bad) holds NaN or infinite values", lastCheckpoint: lastCheckpointPath())
        }
        if communicator.isRoot { try metricsLog.append(["type": "skipped", "step": step, "reason": what]) }
        onEvent(.info("step \(step) skipped (\(what)); the parameters are unchanged"))
    }

    /// Removes what a killed save left behind (temporary files and checkpoint directories), in
    /// the directories a run writes and no others: an output directory may hold the user's files.
    func removeLeftovers(onEvent: (TrainerEvent) -> Void) {
        let dirs = [outputDirectory, checkpointsDirectory] + ["adapter", "model"].map { outputDirectory.appendingPathComponent($0) }
        for dir in dirs {
            let removed = OutputFiles.removeLeftovers(in: dir)
            if !removed.isEmpty {
                onEvent(.info("removed \(removed.count) temporary file(s) left by an interrupted save in \(dir.path): \(removed.joined(separator: ", "))"))
            }
        }
    }
}

/// A permutation of 0..<count from a seed (ITuneData's seeded Fisher–Yates).
public func permutation(count: Int, seed: UInt64) -> [Int] {
    DatasetTokenizer.shuffled(Array(0..<count), seed: seed)
}
