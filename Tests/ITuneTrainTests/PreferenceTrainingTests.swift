import Foundation
import XCTest
import ITuneData
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// DPO and ORPO inside the trainer: the curve at initialisation, TRL's metrics in
/// metrics.jsonl, checkpoints and --resume, the reference options, and what is refused.
final class PreferenceTrainingTests: XCTestCase {
    /// Pairs over the tiny model's 40 ids: a prompt of 4 tokens of the pattern t+3, the chosen
    /// answer continues it, the rejected one breaks it.
    static func pairs(_ n: Int, seed: UInt64 = 5) -> [TrainingRow] {
        var g = SplitMix64(seed: seed)
        return (0..<n).map { _ in
            let s = Int32(g.next() % 37)
            let prompt = (0..<Int32(4)).map { (s + 3 * $0) % 37 + 1 }
            let good = (4..<Int32(4 + 3 + Int32(g.next() % 2))).map { (s + 3 * $0) % 37 + 1 }
            let bad = (0..<Int32(3)).map { _ in Int32(g.next() % 37) + 1 }
            func side(_ a: [Int32]) -> ([Int32], [Int32]) { (prompt + a, [Int32](repeating: -100, count: prompt.count) + a) }
            return TrainingRow(chosen: side(good), rejected: side(bad))
        }
    }

    static func loraModel(seed: UInt64 = 1, adapterSeed: UInt64 = 2) throws -> LlamaModel {
        let m = try TrainerTests.model(seed: seed)
        try m.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0, targetModules: LoRAConfig.llamaTargets), seed: adapterSeed)
        return m
    }

    static func options(_ objective: PreferenceObjective, steps: Int, saveEvery: Int = 0) -> TrainerOptions {
        var o = TrainerFixtures.options(steps: steps, saveEvery: saveEvery)
        o.preference = objective
        return o
    }

    func metricLines(_ dir: URL) throws -> [[String: Any]] {
        try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func testDPOStartsAtLn2LogsTRLsMetricsAndLearnsThePreference() throws {
        let dir = TrainerFixtures.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try Self.loraModel()
        let trainer = try Trainer(model: m, trainable: m.loraParameters, options: Self.options(PreferenceObjective(method: .dpo, beta: 0.5),
                                                                                                 steps: 30),
                                  train: Self.pairs(24), validation: Self.pairs(8, seed: 77), outputDirectory: dir)
        trainer.reference = .adaptersOff
        let summary = try trainer.run()
        XCTAssertEqual(summary.history.first!.1, log(2.0), accuracy: 1e-7, "B = 0: the policy is the reference")
        XCTAssertLessThan(summary.lastLoss, 0.6, "\(summary.history)")
        let lines = try metricLines(dir)
        let train = lines.filter { $0["type"] as? String == "train" }
        XCTAssertEqual(train.count, 30)
        for k in PreferenceMetrics.dpoNames { XCTAssertNotNil(train[0][k], k) }
        XCTAssertEqual(train[0]["rewards/margins"] as? Double, 0)
        XCTAssertGreaterThanOrEqual(train.last!["rewards/accuracies"] as! Double, 0.75)
        let margins = train.last!["rewards/chosen"] as! Double - (train.last!["rewards/rejected"] as! Double)
        XCTAssertEqual(train.last!["rewards/margins"] as! Double, margins, accuracy: 1e-9)
        let validation = lines.filter { $0["type"] as? String == "validation" }
        XCTAssertEqual(validation.count, 1)
        XCTAssertGreaterThan(validation[0]["rewards/accuracies"] as! Double, 0.5, "held-out pairs of the same pattern")
    }

    /// A LoRA DPO run of a fresh trainer (freed at the end, so its output directory's lock goes too).
    func runLoRA(_ objective: PreferenceObjective, steps: Int, saveEvery: Int = 0, data: [TrainingRow], dir: URL, adapterSeed: UInt64 = 2,
                 resume: Bool = false) throws -> (TrainingSummary, [[Float]]) {
        let m = try Self.loraModel(adapterSeed: adapterSeed)
        let t = try Trainer(model: m, trainable: m.loraParameters, options: Self.options(objective, steps: steps, saveEvery: saveEvery),
                            train: data, outputDirectory: dir)
        t.reference = .adaptersOff
        let summary = try t.run(resume: resume)
        return (summary, try m.loraParameters.map { try $0.1.toArray() })
    }

    func testDPOResumeReproducesTheUninterruptedRun() throws {
        let straightDir = TrainerFixtures.directory("dpo-straight"), resumedDir = TrainerFixtures.directory("dpo-resumed")
        defer { try? FileManager.default.removeItem(at: straightDir); try? FileManager.default.removeItem(at: resumedDir) }
        let objective = PreferenceObjective(method: .dpo, beta: 0.2, labelSmoothing: 0.1)
        let data = Self.pairs(16)
        let (straight, straightWeights) = try runLoRA(objective, steps: 8, data: data, dir: straightDir)
        _ = try runLoRA(objective, steps: 8, saveEvery: 4, data: data, dir: resumedDir)
        // Interrupted after step 4: only that checkpoint survives.
        try FileManager.default.removeItem(at: resumedDir.appendingPathComponent("checkpoints/step-8"))
        // Other adapters: everything must come from the checkpoint.
        let (resumed, resumedWeights) = try runLoRA(objective, steps: 8, saveEvery: 4, data: data, dir: resumedDir, adapterSeed: 99,
                                                    resume: true)
        XCTAssertEqual(resumed.history.map(\.0), Array(1...8))
        XCTAssertEqual(resumed.history.map(\.1), straight.history.map(\.1), "same curve, bit for bit")
        XCTAssertEqual(resumedWeights, straightWeights)
        let lines = try metricLines(resumedDir).filter { $0["type"] as? String == "train" }
        XCTAssertEqual(lines.count, 8)
        XCTAssertEqual(lines.map { $0["rewards/margins"] as! Double }, try metricLines(straightDir).filter { $0["type"] as? String == "train" }
            .map { $0["rewards/margins"] as! Double })
    }

    /// Full fine-tuning: the frozen copy and log-probabilities computed before training give the
    /// same curve; ORPO needs no reference and its NLL falls.
    func testFullFineTuningReferenceOptionsAgreeAndORPOTrains() throws {
        let data = Self.pairs(12)
        var curves: [[Double]] = []
        for precompute in [false, true] {
            let dir = TrainerFixtures.directory("full-\(precompute)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let m = try TrainerTests.model()
            m.setTrainable(true)
            let reference: PreferenceReference
            var rows = data
            if precompute {
                rows = try precomputeReferenceLogProbs(model: m, reference: .frozen(m), rows: data, batchSize: 3, padID: 0)
                XCTAssertTrue(rows.allSatisfy { $0.referenceLogProbs?.count == 2 })
                reference = .precomputed
            } else {
                let copy = try TrainerTests.model()
                copy.setTrainable(false)
                reference = .frozen(copy)
            }
            let t = try Trainer(model: m, trainable: m.namedParameters(), options: Self.options(PreferenceObjective(method: .dpo), steps: 5),
                                train: rows, outputDirectory: dir)
            t.reference = reference
            curves.append(try t.run().history.map(\.1))
        }
        XCTAssertEqual(curves[0][0], log(2.0), accuracy: 1e-6)
        for (a, b) in zip(curves[0], curves[1]) { XCTAssertEqual(a, b, accuracy: 1e-5) }

        let dir = TrainerFixtures.directory("orpo")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try Self.loraModel()
        let summary = try Trainer(model: m, trainable: m.loraParameters, options: Self.options(PreferenceObjective(method: .orpo, lambda: 0.5),
                                                                                                 steps: 20),
                                  train: data, outputDirectory: dir).run()
        XCTAssertLessThan(summary.lastLoss, summary.firstLoss - 0.1, "\(summary.history)")
        let first = try metricLines(dir).first { $0["type"] as? String == "train" }!
        for k in PreferenceMetrics.orpoNames { XCTAssertNotNil(first[k], k) }
    }

    func testRefusals() throws {
        var c = FineTuneConfig(model: "m", data: ["d.jsonl"])
        c.method = .dpo
        c.packing = true
        XCTAssertEqual((TrainerFixtures.message { try c.validate() }), "--packing is off for --method dpo: each pair's chosen and rejected rows are scored whole")
        c.packing = false
        c.labelSmoothing = 0.5
        XCTAssertTrue(TrainerFixtures.message { try c.validate() }.hasPrefix("--label-smoothing must be in [0.0, 0.5)"))
        c.labelSmoothing = 0
        c.beta = 0
        XCTAssertTrue(TrainerFixtures.message { try c.validate() }.hasPrefix("--beta must be"))
        c.beta = 0.1
        c.method = .orpo
        c.precomputeRef = true
        XCTAssertTrue(TrainerFixtures.message { try c.validate() }.contains("ORPO has no reference"))
        // Instruction rows under a preference objective, and pairs under SFT.
        let m = try TrainerTests.model()
        let dir = TrainerFixtures.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertTrue(TrainerFixtures.message {
            try Trainer(model: m, trainable: m.namedParameters(), options: Self.options(PreferenceObjective(method: .dpo), steps: 1),
                        train: TrainerTests.rows(4), outputDirectory: dir)
        }.contains("trains on preference pairs"))
        XCTAssertTrue(TrainerFixtures.message {
            try Trainer(model: m, trainable: m.namedParameters(), options: TrainerFixtures.options(steps: 1), train: Self.pairs(4),
                        outputDirectory: dir)
        }.contains("pass --method dpo or orpo"))
        // Full fine-tuning DPO with no reference given: no adapters to switch off.
        let t = try Trainer(model: m, trainable: m.namedParameters(), options: Self.options(PreferenceObjective(method: .dpo), steps: 1),
                            train: Self.pairs(4), outputDirectory: dir)
        t.reference = .adaptersOff
        XCTAssertTrue(TrainerFixtures.message { try t.run() }.contains("has no LoRA adapters"))
    }
}

/// `FineTuneJob` (what `itune-gpu train --method dpo|orpo` runs) from preference files.
final class PreferenceJobTests: XCTestCase {
    static func data(in work: URL) throws -> String {
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        var lines: [String] = []
        for i in 0..<6 {
            let record: [String: Any] = i % 2 == 0
                ? ["prompt": "Add \(i) and 2.", "chosen": "\(i + 2)", "rejected": "\(i + 3)"]
                : ["prompt": [["role": "system", "content": "Be brief."], ["role": "user", "content": "Double \(i)."]],
                   "chosen": [["role": "assistant", "content": "\(2 * i)"]], "rejected": [["role": "assistant", "content": "\(2 * i + 1)"]]]
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self))
        }
        let path = work.appendingPathComponent("pairs.jsonl").path
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testJobsTrainDPOAndORPOWithEachReferenceAndResume() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-pref-job-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        var base = try FineTuneConfigTests.tinyRun(in: work)
        base.data = [try Self.data(in: work)]
        base.template = "chatml"
        for (method, full, precompute) in [(TrainingMethod.dpo, false, false), (.dpo, false, true), (.dpo, true, false), (.dpo, true, true),
                                           (.orpo, false, false)] {
            var c = base
            c.method = method
            c.full = full
            c.precomputeRef = precompute
            c.output = work.appendingPathComponent("out-\(method)-\(full)-\(precompute)").path
            var log: [String] = []
            let r = try FineTuneJob(config: c, device: .cpu).run(log: { log.append($0) })
            let what = "\(method) full \(full) precompute \(precompute)"
            XCTAssertEqual(r.summary.history.count, 4, what)
            if method == .dpo { XCTAssertEqual(r.summary.history[0].1, log2Value, accuracy: 1e-6, "\(what): the policy starts as its reference") }
            XCTAssertEqual(r.outputDirectory.lastPathComponent, full ? "model" : "adapter", what)
            XCTAssertTrue(log.contains { $0.contains("6 preference pairs") }, "\(what): \(log)")
            let metrics = try String(contentsOf: URL(fileURLWithPath: c.output).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            XCTAssertTrue(metrics.contains("\"rewards\\/accuracies\"") || metrics.contains("\"rewards/accuracies\""), what)
        }
        // --resume of a DPO job continues the same curve.
        var c = base
        c.method = .dpo
        c.trainer.saveEvery = 2
        c.output = work.appendingPathComponent("resume").path
        let straight = try FineTuneJob(config: c, device: .cpu).run(log: { _ in })
        try FileManager.default.removeItem(at: URL(fileURLWithPath: c.output).appendingPathComponent("checkpoints/step-4"))
        c.resume = true
        let resumed = try FineTuneJob(config: c, device: .cpu).run(log: { _ in })
        XCTAssertEqual(resumed.summary.history.map(\.1), straight.summary.history.map(\.1))
        // Packing is refused for preference data, naming the option.
        c.resume = false
        c.packing = true
        XCTAssertTrue(TrainerFixtures.message { try FineTuneJob(config: c, device: .cpu).run(log: { _ in }) }.contains("--packing is off for --method dpo"))
    }

    let log2Value = log(2.0)
}
