import Foundation
import ITuneData
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
}

/// A training loop over fixed rows: shuffled per epoch from the seed, batched, padded, with
/// gradient accumulation (the loss of a step is weighted by scored tokens, not micro-batches),
/// global-norm clipping, AdamW on a warm-up + decay schedule, checkpoints that resume the same
/// curve, metrics.jsonl and an SVG loss curve in the output directory.
public final class Trainer {
    public let model: any CausalLM
    /// The tensors trained, each with the name it is checkpointed under.
    public let trainable: [(String, Tensor)]
    public let options: TrainerOptions
    public let train: [TrainingRow]
    public let validation: [TrainingRow]
    public let outputDirectory: URL
    public let optimizer: AdamW
    /// This run's tape and dropout keys: forward and backward passes run inside it, so that
    /// other models (another device, a reference model) can train beside this one.
    public let context: TrainingContext
    /// The epoch whose row order `epochOrder` holds (rebuilt once per epoch, not per micro-batch).
    private var epochOrder: (epoch: Int, order: [Int])?

    public init(model: any CausalLM, trainable: [(String, Tensor)], options: TrainerOptions, train: [TrainingRow],
                validation: [TrainingRow] = [], outputDirectory: URL) throws {
        guard !train.isEmpty else { throw TrainError.invalid("no training rows") }
        try options.validate()
        self.model = model
        self.trainable = trainable
        self.options = options
        self.train = train
        self.validation = validation
        self.outputDirectory = outputDirectory
        for (_, t) in trainable { t.requiresGrad = true }
        context = TrainingContext(seed: options.seed)
        optimizer = try AdamW(parameters: trainable.map(\.1), config: options.optimizer)
    }

    public var microBatchesPerEpoch: Int { (train.count + options.batchSize - 1) / options.batchSize }
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
        let lo = within * options.batchSize
        return order[lo..<min(train.count, lo + options.batchSize)].map { train[$0] }
    }

    /// Runs until `totalSteps`, from the latest checkpoint when `resume` is set.
    public func run(resume: Bool = false, onEvent: (TrainerEvent) -> Void = { _ in }) throws -> TrainingSummary {
        try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
        var history: [(Int, Double)] = []
        var validationHistory: [(Int, Double)] = []
        var start = 0
        if resume {
            if let (step, h, vh) = try loadLatestCheckpoint() {
                start = step
                history = h
                validationHistory = vh
                onEvent(.info("resumed from step \(step) of \(totalSteps)"))
            } else {
                onEvent(.info("no checkpoint in \(checkpointsDirectory.path): starting from step 0"))
            }
        }
        try rewriteMetrics(keepingUpTo: start)
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
                var lossSum = 0.0
                for (index, rows) in batches {
                    let n = rows.reduce(0) { $0 + $1.scoredTokens }
                    guard n > 0 else { continue }
                    let loss = try context.microBatch(index) {
                        let loss = try batchLoss(rows)
                        // Weighted by this micro-batch's share of the step's scored tokens.
                        try loss.scaled(by: Float(n) / Float(max(scored, 1))).backward()
                        return loss
                    }
                    lossSum += Double(try loss.item()) * Double(n)
                    tokens += rows.reduce(0) { $0 + $1.ids.count }
                }
                // maxGradNorm ≤ 0 turns clipping off, as in transformers; the norm is still reported.
                let norm = options.maxGradNorm > 0 ? try clipGradients(optimizer.parameters, maxNorm: options.maxGradNorm)
                    : try clipGradients(optimizer.parameters, maxNorm: .infinity)
                let lr = schedule.rate(at: step)
                try optimizer.update(learningRate: lr)
                optimizer.zeroGrad()
                let loss = scored > 0 ? lossSum / Double(scored) : .nan
                history.append((step, loss))
                let elapsed = Date().timeIntervalSince(began)
                let done = step - start
                let metrics = StepMetrics(step: step, totalSteps: totalSteps,
                                          epoch: Double(step) / Double(stepsPerEpoch), loss: loss, learningRate: lr,
                                          gradNorm: norm, tokensPerSecond: Double(tokens) / max(elapsed, 1e-9), elapsed: elapsed,
                                          eta: elapsed / Double(done) * Double(totalSteps - step))
                try appendMetrics(metrics)
                onEvent(.step(metrics))
                let last = step == totalSteps
                if !validation.isEmpty, (options.evalEvery > 0 && step % options.evalEvery == 0) || last {
                    let v = try evaluate(model, sequences: validation.map { ($0.ids, $0.labels) }, batchSize: options.batchSize)
                    validationLoss = v.meanLoss
                    validationHistory.append((step, v.meanLoss))
                    try appendLine(["type": "validation", "step": step, "loss": v.meanLoss, "perplexity": v.perplexity])
                    onEvent(.validation(step: step, loss: v.meanLoss))
                }
                if options.saveEvery > 0, step % options.saveEvery == 0 || (last && options.saveEvery > 0) {
                    let url = try saveCheckpoint(step: step, history: history, validation: validationHistory)
                    onEvent(.checkpoint(step: step, url))
                }
                if step % 10 == 0 || last {
                    try LossCurve.write(train: history, validation: validationHistory,
                                        to: outputDirectory.appendingPathComponent("loss_curve.svg"))
                }
            }
        }
        let seconds = Date().timeIntervalSince(began)
        return TrainingSummary(steps: totalSteps, firstLoss: history.first?.1 ?? .nan, lastLoss: history.last?.1 ?? .nan,
                               validationLoss: validationLoss, tokensPerSecond: Double(tokens) / max(seconds, 1e-9),
                               seconds: seconds, history: history)
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

    // MARK: checkpoints

    public var checkpointsDirectory: URL { outputDirectory.appendingPathComponent("checkpoints") }

    /// checkpoints/step-N: trainable tensors, optimizer moments, and state.json (step, loss
    /// history, options). Written under a temporary name and renamed, so a crash mid-write
    /// leaves the previous checkpoint as the latest.
    func saveCheckpoint(step: Int, history: [(Int, Double)], validation: [(Int, Double)]) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: checkpointsDirectory, withIntermediateDirectories: true)
        let final = checkpointsDirectory.appendingPathComponent("step-\(step)")
        let tmp = checkpointsDirectory.appendingPathComponent(".tmp-step-\(step)-\(getpid())")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        try SafetensorsFile.write(trainable.map { (name: $0.0, tensor: $0.1) }, to: tmp.appendingPathComponent("trainable.safetensors"))
        var moments: [(name: String, tensor: Tensor)] = []
        for ((name, _), state) in zip(trainable, optimizer.moments) {
            moments += [("m." + name, state.m), ("v." + name, state.v)]
        }
        try SafetensorsFile.write(moments, to: tmp.appendingPathComponent("optimizer.safetensors"))
        let state: [String: Any] = [
            "step": step, "optimizer_step": optimizer.step, "total_steps": totalSteps,
            // Losses as bit patterns (hex) too: JSON's decimal round trip may change the last bit,
            // and a resumed run must report the same curve exactly.
            "history": history.map { [$0.0, $0.1] }, "validation": validation.map { [$0.0, $0.1] },
            "history_bits": history.map { [String($0.0), String($0.1.bitPattern, radix: 16)] },
            "validation_bits": validation.map { [String($0.0), String($0.1.bitPattern, radix: 16)] },
            "options": try JSONSerialization.jsonObject(with: JSONEncoder().encode(options)),
        ]
        try JSONSerialization.data(withJSONObject: state, options: [.prettyPrinted, .sortedKeys])
            .write(to: tmp.appendingPathComponent("state.json"))
        try? fm.removeItem(at: final)
        try fm.moveItem(at: tmp, to: final)
        // Keep the newest few.
        let all = try checkpointSteps()
        for old in all.dropLast(max(1, options.keepCheckpoints)) {
            try? fm.removeItem(at: checkpointsDirectory.appendingPathComponent("step-\(old)"))
        }
        return final
    }

    func checkpointSteps() throws -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsDirectory.path)) ?? []
        return names.compactMap { $0.hasPrefix("step-") ? Int($0.dropFirst(5)) : nil }.sorted()
    }

    /// Restores the newest checkpoint; nil when there is none.
    func loadLatestCheckpoint() throws -> (Int, [(Int, Double)], [(Int, Double)])? {
        guard let step = try checkpointSteps().last else { return nil }
        let dir = checkpointsDirectory.appendingPathComponent("step-\(step)")
        let stateURL = dir.appendingPathComponent("state.json")
        guard let state = try JSONSerialization.jsonObject(with: Data(contentsOf: stateURL)) as? [String: Any],
              let optStep = state["optimizer_step"] as? Int else {
            throw TrainError.invalid("\(stateURL.path): not a checkpoint state")
        }
        let file = try SafetensorsFile(url: dir.appendingPathComponent("trainable.safetensors"))
        let opt = try SafetensorsFile(url: dir.appendingPathComponent("optimizer.safetensors"))
        var moments: [(m: [Float], v: [Float])] = []
        for (name, t) in trainable {
            guard file.names.contains(name) else { throw ModelFileError.missingTensor(name: name, file: dir.path) }
            try t.assign(file.floats(name))
            moments.append((try opt.floats("m." + name), try opt.floats("v." + name)))
        }
        try optimizer.restore(step: optStep, moments: moments)
        func pairs(_ key: String) -> [(Int, Double)] {
            if let bits = state[key + "_bits"] as? [[String]] {
                return bits.compactMap { p in
                    guard let s = Int(p[0]), let b = UInt64(p[1], radix: 16) else { return nil }
                    return (s, Double(bitPattern: b))
                }
            }
            return ((state[key] as? [[NSNumber]]) ?? []).map { ($0[0].intValue, $0[1].doubleValue) }
        }
        return (step, pairs("history"), pairs("validation"))
    }

    // MARK: metrics

    var metricsURL: URL { outputDirectory.appendingPathComponent("metrics.jsonl") }

    func appendMetrics(_ m: StepMetrics) throws {
        try appendLine(["type": "train", "step": m.step, "epoch": m.epoch, "loss": m.loss, "lr": m.learningRate,
                        "grad_norm": m.gradNorm, "tokens_per_s": m.tokensPerSecond, "elapsed_s": m.elapsed])
    }

    func appendLine(_ object: [String: Any]) throws {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        data.append(0x0A)
        if let h = try? FileHandle(forWritingTo: metricsURL) {
            defer { try? h.close() }
            h.seekToEndOfFile()
            h.write(data)
        } else {
            try data.write(to: metricsURL)
        }
    }

    /// On resume, lines after the checkpoint's step are dropped so that the file is one curve.
    func rewriteMetrics(keepingUpTo step: Int) throws {
        guard let text = try? String(contentsOf: metricsURL, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = o["step"] as? Int else { return false }
            return s <= step
        }
        try Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8).write(to: metricsURL)
    }
}

public enum TrainError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case let .invalid(s): return s }
    }
}

/// A permutation of 0..<count from a seed (ITuneData's seeded Fisher–Yates).
public func permutation(count: Int, seed: UInt64) -> [Int] {
    DatasetTokenizer.shuffled(Array(0..<count), seed: seed)
}
