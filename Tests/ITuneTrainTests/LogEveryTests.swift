import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// `--log-every N`: the steps' losses and norms stay on the device for N steps and come back
/// in one read. The loss curve is the same as reading every step; the metrics log and the
/// progress get one line per N steps holding the mean loss of the N (transformers' Trainer's
/// `logging_steps`); divergence still stops at (or skips) the step that diverged.
final class LogEveryTests: XCTestCase {
    typealias F = TrainerFixtures

    struct Run {
        var summary: TrainingSummary
        var events: [StepMetrics]
        var metrics: [[String: Any]]
        var weights: [Float]
        var error: String?
    }

    func run(_ o: TrainerOptions, device: Device = .cpu, lora: Bool = false, name: String = #function) throws -> Run {
        let dir = F.directory(name + "\(o.logEvery)\(device)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try LlamaModel(StepBudgetTests.config, seed: 1, on: device)
        if lora { try m.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0), seed: 2) }
        let trainer = try Trainer(model: m, trainable: lora ? m.loraParameters : m.namedParameters(), options: o,
                                  train: F.rows(), outputDirectory: dir)
        var events: [StepMetrics] = []
        var summary = TrainingSummary(steps: 0, firstLoss: .nan, lastLoss: .nan, validationLoss: nil, tokensPerSecond: 0, seconds: 0,
                                      history: [])
        var failure: String?
        do {
            summary = try trainer.run { if case let .step(m) = $0 { events.append(m) } }
        } catch {
            failure = "\(error)"
        }
        let metrics = (try? F.lines(dir.appendingPathComponent("metrics.jsonl"))) ?? []
        return Run(summary: summary, events: events, metrics: metrics,
                   weights: try trainer.trainable.flatMap { try $0.1.toArray() }, error: failure)
    }

    func options(steps: Int, logEvery: Int) -> TrainerOptions {
        var o = F.options(steps: steps)
        o.logEvery = logEvery
        o.maxGradNorm = 0.5  // clipping on in most steps
        return o
    }

    func testLogEveryKeepsTheLossCurveAndLogsTheMeanOfEachWindow() throws {
        let every = try run(options(steps: 10, logEvery: 1))
        let four = try run(options(steps: 10, logEvery: 4))
        XCTAssertEqual(every.events.count, 10)
        XCTAssertEqual(four.summary.history.map(\.0), Array(1...10))
        // The same computation on the device whatever the reads: the same bits.
        XCTAssertEqual(four.summary.history.map(\.1), every.summary.history.map(\.1))
        XCTAssertEqual(four.weights, every.weights)
        XCTAssertEqual(four.events.map(\.step), [4, 8, 10], "a read every 4 steps and at the last")
        let train = four.metrics.filter { $0["type"] as? String == "train" }
        XCTAssertEqual(train.compactMap { $0["step"] as? Int }, [4, 8, 10])
        let perStep = every.summary.history.map(\.1)
        for (line, window) in zip(train, [0..<4, 4..<8, 8..<10]) {
            let mean = perStep[window].reduce(0, +) / Double(window.count)
            XCTAssertEqual(try XCTUnwrap(line["loss"] as? Double), mean, accuracy: 1e-12, "\(window)")
            // The last step's gradient norm, as transformers logs it.
            let norm = Double(every.events[window.upperBound - 1].gradNorm)
            XCTAssertEqual(try XCTUnwrap(line["grad_norm"] as? Double), norm, accuracy: 1e-6 * norm)
        }
        // The progress event carries the logged mean (metrics.jsonl's text round-trips it to ~1e-15).
        for (event, logged) in zip(four.events.map(\.loss), train.compactMap { $0["loss"] as? Double }) {
            XCTAssertEqual(event, logged, accuracy: 1e-12 * abs(logged))
        }
    }

    func testLogEveryOnOpenCLKeepsTheLossCurve() throws {
        let device = try F.openCLDevice()
        let every = try run(options(steps: 6, logEvery: 1), device: device, lora: true)
        let three = try run(options(steps: 6, logEvery: 3), device: device, lora: true)
        XCTAssertEqual(three.summary.history.map(\.1), every.summary.history.map(\.1))
        XCTAssertEqual(three.weights, every.weights)
        XCTAssertEqual(three.events.map(\.step), [3, 6])
        // And the OpenCL curve is the CPU path's.
        let cpu = try run(options(steps: 6, logEvery: 3), lora: true)
        for (a, b) in zip(three.summary.history, cpu.summary.history) { XCTAssertEqual(a.1, b.1, accuracy: 1e-4 * abs(b.1)) }
    }

    /// A learning rate of 1e30 overflows the weights; the next step is not finite. With reads
    /// every 4 steps the device holds every update from that step on, so the run stops naming
    /// the same step, with the same weights, as when it reads every step.
    func testDivergenceBetweenReadsStopsAtTheStepThatDivergedWithTheWeightsBeforeIt() throws {
        var o = options(steps: 8, logEvery: 1)
        o.optimizer.learningRate = 1e30
        o.warmupSteps = 0
        let every = try run(o)
        o.logEvery = 4
        let four = try run(o)
        let message = try XCTUnwrap(every.error)
        XCTAssertTrue(message.hasPrefix("loss diverged at step "), message)
        XCTAssertEqual(four.error, message)
        XCTAssertEqual(four.weights, every.weights, "the weights of the last finite step")
        XCTAssertTrue(four.weights.allSatisfy(\.isFinite))
        XCTAssertTrue(four.metrics.allSatisfy { ($0["loss"] as? Double)?.isFinite == true }, "no NaN logged")
    }

    func testSkipStepBetweenReadsSkipsTheSameSteps() throws {
        var o = options(steps: 8, logEvery: 1)
        o.optimizer.learningRate = 1e30
        o.warmupSteps = 0
        o.nanPolicy = .skipStep
        let every = try run(o)
        o.logEvery = 3
        let three = try run(o)
        XCTAssertNil(three.error)
        XCTAssertGreaterThan(every.summary.skippedSteps, 0)
        XCTAssertEqual(three.summary.skippedSteps, every.summary.skippedSteps)
        XCTAssertEqual(three.summary.history.map(\.0), every.summary.history.map(\.0))
        XCTAssertEqual(three.weights, every.weights)
        let skipped = { (r: Run) in r.metrics.filter { $0["type"] as? String == "skipped" }.compactMap { $0["step"] as? Int } }
        XCTAssertEqual(skipped(three), skipped(every))
    }

    func testLogEveryOutOfRangeIsRefusedByName() throws {
        for bad in [0, -1, 100_001] {
            var o = TrainerOptions()
            o.logEvery = bad
            XCTAssertEqual(F.message { try o.validate() }, "--log-every must be in [1, 100000], not \(bad)")
        }
    }

    /// `Trainer.profile`: the steps from the second on, one row per op, launches per step that
    /// are whole numbers, and a table that ends with the totals.
    func testProfileCoversTheStepsFromTheSecondOn() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var o = options(steps: 4, logEvery: 2)
        o.maxGradNorm = 1
        let m = try F.model()
        let trainer = try Trainer(model: m, trainable: m.namedParameters(), options: o, train: F.rows(), outputDirectory: dir)
        trainer.profile = true
        let summary = try trainer.run()
        let p = try XCTUnwrap(summary.profile)
        XCTAssertEqual(p.steps, 2...4)
        let updates = try XCTUnwrap(p.profile.rows.first { $0.name == "adamWUpdate" })
        XCTAssertEqual(updates.launches, 3 * trainer.optimizer.parameters.count, "one update per parameter per step")
        XCTAssertEqual(p.profile.launches["optimizerStepPrepare"], 3)
        XCTAssertLessThanOrEqual(p.profile.busySeconds + p.profile.gapSeconds, p.profile.wallSeconds)
        let table = p.table()
        XCTAssertTrue(table.hasPrefix("profile of steps 2–4 on cpu"), table)
        XCTAssertTrue(table.split(separator: "\n").last?.hasPrefix("total") == true, table)
        XCTAssertTrue(table.contains("adamWUpdate"), table)
    }
}
