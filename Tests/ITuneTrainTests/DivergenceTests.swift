import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// A loss, gradient norm or parameter that becomes NaN or infinite stops the run at once naming
/// the step, keeps the last good checkpoint and writes nothing non-finite; `--nan-policy
/// skip-step` skips such steps and counts them.
final class DivergenceTests: XCTestCase {
    typealias F = TrainerFixtures

    func checkpoints(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("checkpoints").path)) ?? []).sorted()
    }

    /// AdamW with eps 0 divides 0 by 0 for every weight that has had no gradient yet (embedding
    /// rows of tokens the data never uses): NaN weights after the update. They are refused at
    /// the checkpoint, the earlier checkpoint stays, and a resume from it works.
    func testAdamEpsZeroStopsBeforeSavingNaNWeightsAndKeepsTheLastGoodCheckpoint() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try F.trainer(F.options(steps: 3, saveEvery: 1), dir).run()
        var o = F.options(steps: 6, saveEvery: 1)
        o.optimizer.eps = 0
        let message = F.message { try F.trainer(o, dir).run(resume: true) }
        XCTAssertTrue(message.hasPrefix("loss diverged at step 4 (model.embed_tokens.weight holds NaN or infinite values after the update): lower --lr"), message)
        XCTAssertTrue(message.hasSuffix("the last good checkpoint is \(dir.path)/checkpoints/step-3 (--resume continues from it)"), message)
        XCTAssertEqual(checkpoints(dir), ["step-1", "step-2", "step-3"], "no step-4 checkpoint, no temporary left")
        // The good checkpoint resumes with a sane eps and finishes finite.
        let resumed = try F.trainer(F.options(steps: 6, saveEvery: 1), dir).run(resume: true)
        XCTAssertTrue(resumed.history.allSatisfy { $0.1.isFinite })
        XCTAssertEqual(resumed.history.map(\.0), Array(1...6))
    }

    /// With no checkpoint, NaN weights left by the last update are refused before the caller
    /// saves an adapter or model from them.
    func testNonFiniteWeightsAtTheEndAreAnErrorNotAResult() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var o = F.options(steps: 1)
        o.optimizer.eps = 0
        let message = F.message { try F.trainer(o, dir).run() }
        XCTAssertTrue(message.hasPrefix("loss diverged at step 1 (model.embed_tokens.weight holds NaN or infinite values)"), message)
        XCTAssertTrue(message.hasSuffix("no checkpoint was written (--save-every N keeps one); nothing non-finite was saved"), message)
    }

    /// A learning rate of 1e30 makes the weights overflow: the next step's gradient norm (or loss)
    /// is not finite and the run stops at that step; the metrics hold no NaN.
    func testNonFiniteLossStopsAtOnceNamingTheStep() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var o = F.options(steps: 6, saveEvery: 1)
        o.optimizer.learningRate = 1e30
        o.warmupSteps = 0
        let message = F.message { try F.trainer(o, dir).run() }
        XCTAssertTrue(message.hasPrefix("loss diverged at step "), message)
        let step = try XCTUnwrap(Int(message.dropFirst("loss diverged at step ".count).prefix { $0.isNumber }), message)
        let numbers = message.split(separator: "(")[1].split(separator: ")")[0]  // "loss X, grad norm Y"
        XCTAssertTrue(numbers.contains("nan") || numbers.contains("inf"), message)
        XCTAssertGreaterThan(step, 1)
        XCTAssertEqual(checkpoints(dir), (1..<step).map { "step-\($0)" })
        let lines = try F.lines(dir.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(lines.compactMap { $0["step"] as? Int }, Array(1..<step))
        XCTAssertTrue(lines.allSatisfy { ($0["loss"] as? Double)?.isFinite == true })
    }

    func testSkipStepPolicyLeavesTheWeightsAndCountsTheSkips() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var o = F.options(steps: 6)
        o.optimizer.learningRate = 1e30
        o.warmupSteps = 0
        o.nanPolicy = .skipStep
        let trainer = try F.trainer(o, dir)
        var infos: [String] = []
        var weightsAfterStep: [Int: [Float]] = [:]
        let summary = try trainer.run { event in
            switch event {
            case let .info(s): infos.append(s)
            case let .step(m): weightsAfterStep[m.step] = try? trainer.trainable[0].1.toArray()
            default: break
            }
        }
        XCTAssertGreaterThan(summary.skippedSteps, 0)
        XCTAssertEqual(summary.history.count + summary.skippedSteps, 6)
        XCTAssertTrue(summary.history.allSatisfy { $0.1.isFinite })
        let skipped = try F.lines(dir.appendingPathComponent("metrics.jsonl")).filter { $0["type"] as? String == "skipped" }
        XCTAssertEqual(skipped.count, summary.skippedSteps)
        for line in skipped {
            let step = try XCTUnwrap(line["step"] as? Int)
            XCTAssertEqual(weightsAfterStep[step], weightsAfterStep[step - 1], "step \(step) changed nothing")
        }
        XCTAssertTrue(infos.contains("skipped \(summary.skippedSteps) step(s) whose loss or gradient norm was not finite (--nan-policy skip-step)"), "\(infos)")
    }

    func testNaNPolicyIsSavedWithTheOptions() throws {
        var o = TrainerOptions()
        o.nanPolicy = .skipStep
        let json = try JSONEncoder().encode(o)
        XCTAssertTrue(String(decoding: json, as: UTF8.self).contains(#""nanPolicy":"skip-step""#))
        XCTAssertEqual(try JSONDecoder().decode(TrainerOptions.self, from: json).nanPolicy, .skipStep)
    }

    func testEvaluationOverZeroTokensIsAnError() throws {
        let m = try F.model()
        let message = F.message { try evaluate(m, sequences: [([1, 2, 3], [-100, -100, -100]), ([5], [5])]) }
        XCTAssertTrue(message.hasPrefix("evaluation scored no tokens: none of the 2 sequences has a label to predict"), message)
        XCTAssertEqual(try evaluate(m, sequences: [([1, 2, 3], [-100, 2, 3])]).tokens, 2)
    }
}
