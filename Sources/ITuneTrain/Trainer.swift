import Foundation
import ITuneData
import ITuneDistributed
import ITuneModels
import ITuneTensor

/// One row of a training batch: token ids and Hugging Face-style labels (aligned with ids, −100
/// where no loss is taken; the model shifts). `lengths` lists the examples packed into the row
/// (empty: one example), so that attention stays inside each.
public struct TrainingRow: Sendable, Codable, Equatable {
    public var ids: [Int32]
    public var labels: [Int32]
    public var lengths: [Int]

    public init(ids: [Int32], labels: [Int32], lengths: [Int] = []) {
        self.ids = ids
        self.labels = labels
        self.lengths = lengths
    }

    /// Tokens whose prediction is scored (labels after the first that are not −100).
    public var scoredTokens: Int { labels.dropFirst().reduce(0) { $0 + ($1 == -100 ? 0 : 1) } }
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
    /// Seconds this step spent summing gradients over the ranks (0 in a run of one), and of
    /// those the seconds spent waiting for the network after the last bucket was sent.
    public var allreduceSeconds = 0.0
    public var allreduceWaitSeconds = 0.0
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
/// (in buckets, after the step's last backward) are the single process's. AdamW then runs
/// alike on every rank. Rank 0 alone writes checkpoints, metrics and the loss curve, and
/// reports events.
public final class Trainer {
    public let model: any CausalLM
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
    /// The epoch whose row order `epochOrder` holds (rebuilt once per epoch, not per micro-batch).
    private var epochOrder: (epoch: Int, order: [Int])?

    public init(model: any CausalLM, trainable: [(String, Tensor)], options: TrainerOptions, train: [TrainingRow],
                validation: [TrainingRow] = [], outputDirectory: URL,
                communicator: any Communicator = SingleProcessCommunicator(),
                bucketBytes: Int = GradientBuckets.defaultBucketBytes) throws {
        guard !train.isEmpty else { throw TrainError.invalid("no training rows") }
        try options.validate()
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
        optimizer = try AdamW(parameters: trainable.map(\.1), config: options.optimizer)
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
        if start < totalSteps {
            for step in (start + 1)...totalSteps {
                let micro = (0..<options.gradientAccumulation).map { (step - 1) * options.gradientAccumulation + $0 }
                    .filter { options.maxSteps != nil || $0 < options.epochs * microBatchesPerEpoch }
                let batches = micro.map { ($0, rows(ofMicroBatch: $0)) }
                let scored = batches.reduce(0) { $0 + $1.1.reduce(0) { $0 + $1.scoredTokens } }
                // The micro-batches' losses stay on the device until the gradient norm is read:
                // one blocking read per optimizer step brings both back.
                var losses: [(loss: Tensor, scored: Int)] = []
                var stepTokens = 0
                for (index, global) in batches {
                    let rows = Array(shard(global))
                    let n = rows.reduce(0) { $0 + $1.scoredTokens }
                    guard n > 0 else { continue }
                    // Dropout masks from (seed, micro-batch, rank): ranks must not draw the same
                    // masks for their different rows (a run of one keeps its old keys).
                    let loss = try context.microBatch(index &* communicator.size &+ communicator.rank) {
                        let loss = try batchLoss(rows)
                        // Weighted by this micro-batch's share of the step's scored tokens.
                        try loss.scaled(by: Float(n) / Float(max(scored, 1))).backward()
                        return loss
                    }
                    losses.append((loss, n))
                    stepTokens += rows.reduce(0) { $0 + $1.ids.count }
                }
                // Gradients summed over the ranks once per optimizer step (after the last
                // micro-batch's backward, as DDP's no_sync accumulation does).
                var allreduceSeconds = 0.0, allreduceWait = 0.0
                if communicator.size > 1 {
                    let b = try gradientBuckets()
                    try synchronizeGradients(b)
                    allreduceSeconds = b.lastSeconds
                    allreduceWait = b.lastWaitSeconds
                }
                // maxGradNorm ≤ 0 turns clipping off, as in transformers; the norm is still reported.
                let (norm, lossValues) = try clipGradients(optimizer.parameters,
                                                           maxNorm: options.maxGradNorm > 0 ? options.maxGradNorm : .infinity,
                                                           reading: losses.map(\.loss))
                var lossSum = 0.0
                for (value, micro) in zip(lossValues, losses) { lossSum += Double(value) * Double(micro.scored) }
                if communicator.size > 1 {
                    let sums = try communicator.allreduceSum([lossSum, Double(stepTokens)])
                    lossSum = sums[0]
                    stepTokens = Int(sums[1])
                }
                tokens += stepTokens
                let lr = schedule.rate(at: step)
                // A step with nothing scored has no loss (NaN by definition), which is not divergence.
                let diverged = divergence(loss: scored > 0 ? lossSum / Double(scored) : 0, gradNorm: norm)
                if let what = diverged {
                    try skipDivergedStep(step, what: what, onEvent: onEvent)
                    skippedSteps += 1
                } else {
                    try optimizer.update(learningRate: lr)
                }
                optimizer.zeroGrad()
                let loss = scored > 0 ? lossSum / Double(scored) : .nan
                if diverged == nil { history.append((step, loss)) }
                let elapsed = Date().timeIntervalSince(began)
                let done = step - start
                let metrics = StepMetrics(step: step, totalSteps: totalSteps,
                                          epoch: Double(step) / Double(stepsPerEpoch), loss: loss, learningRate: lr,
                                          gradNorm: norm, tokensPerSecond: Double(tokens) / max(elapsed, 1e-9), elapsed: elapsed,
                                          eta: elapsed / Double(done) * Double(totalSteps - step),
                                          allreduceSeconds: allreduceSeconds, allreduceWaitSeconds: allreduceWait)
                if diverged == nil, root { try appendMetrics(metrics) }
                onEvent(.step(metrics))
                let last = step == totalSteps
                if root, !validation.isEmpty, (options.evalEvery > 0 && step % options.evalEvery == 0) || last {
                    let v = try evaluate(model, sequences: validation.map { ($0.ids, $0.labels) }, batchSize: options.batchSize)
                    guard v.meanLoss.isFinite else {
                        throw TrainError.diverged(step: step, what: "validation loss \(v.meanLoss)", lastCheckpoint: lastCheckpointPath())
                    }
                    validationLoss = v.meanLoss
                    validationHistory.append((step, v.meanLoss))
                    try metricsLog.append(["type": "validation", "step": step, "loss": v.meanLoss, "perplexity": v.perplexity])
                    onEvent(.validation(step: step, loss: v.meanLoss))
                }
                if root, options.saveEvery > 0, step % options.saveEvery == 0 || (last && options.saveEvery > 0) {
                    let url = try saveCheckpoint(CheckpointState(step: step, optimizerStep: optimizer.step, history: history,
                                                                 validation: validationHistory, skippedSteps: skippedSteps))
                    onEvent(.checkpoint(step: step, url))
                }
                if root, step % 10 == 0 || last {
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
        if skippedSteps > 0 { onEvent(.info("skipped \(skippedSteps) step(s) whose loss or gradient norm was not finite (--nan-policy skip-step)")) }
        summary.peakMemory = PeakMemory.measure(model.device)
        onEvent(.info(summary.peakMemory.description))
        return summary
    }

    /// Mean cross-entropy of a padded micro-batch (pad id, label −100 on padding).
    func batchLoss(_ rows: [TrainingRow]) throws -> Tensor {
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

    // MARK: output

    var metricsLog: MetricsLog { MetricsLog(url: outputDirectory.appendingPathComponent("metrics.jsonl")) }

    func appendMetrics(_ m: StepMetrics) throws {
        try metricsLog.append(["type": "train", "step": m.step, "epoch": m.epoch, "loss": m.loss, "lr": m.learningRate,
                            "grad_norm": m.gradNorm, "tokens_per_s": m.tokensPerSecond, "elapsed_s": m.elapsed]
                            .merging(communicator.size > 1 ? ["allreduce_s": m.allreduceSeconds, "allreduce_wait_s": m.allreduceWaitSeconds,
                                                              "ranks": communicator.size] : [:]) { a, _ in a })
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
