import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// `train --quantize nf4` and `--grad-checkpoint` end to end on the tiny run (real text from
/// Tests/Fixtures/data/records.jsonl): the nf4 base's LoRA curve tracks the f32 base's, the
/// checkpointed curve equals the plain one, and the adapter is an ordinary PEFT adapter that
/// loads on the unquantised base.
final class QuantizedTrainingTests: XCTestCase {
    func curve(_ work: URL, _ name: String, _ edit: (inout FineTuneConfig) -> Void) throws -> (losses: [Double], log: [String], out: URL) {
        var config = try FineTuneConfigTests.tinyRun(in: work)
        config.output = work.appendingPathComponent(name).path
        config.trainer.maxSteps = 30
        edit(&config)
        var log: [String] = []
        let result = try FineTuneJob(config: config, device: .cpu).run(log: { log.append($0) })
        XCTAssertEqual(result.summary.history.count, 30, name)
        return (result.summary.history.map(\.1), log, result.outputDirectory)
    }

    func testNF4BaseCurveTracksF32AndCheckpointingChangesNothing() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-quantrun-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        let f32 = try curve(work, "f32") { _ in }
        let nf4 = try curve(work, "nf4") { $0.quantize = .nf4; $0.doubleQuant = true }
        let nf4Checkpointed = try curve(work, "nf4-ckpt") { $0.quantize = .nf4; $0.doubleQuant = true; $0.gradCheckpoint = true }
        XCTAssertTrue(nf4.log.contains { $0.contains("stored as nf4 blocks of 64 with double-quantised constants") }, "\(nf4.log)")
        XCTAssertTrue(nf4Checkpointed.log.contains { $0.contains("gradient checkpointing") })
        let d = zip(nf4.losses, f32.losses).map { abs($0 - $1) }.max() ?? .infinity
        print("[quantize] LoRA nf4 (double-quant) base vs f32 over 30 steps on cpu: max |Δloss| = \(d) (f32 \(f32.losses.first!) → \(f32.losses.last!))")
        XCTAssertLessThan(d, 2e-2)
        XCTAssertGreaterThan(d, 0, "the quantised base changed the numbers")
        for (a, b) in zip(nf4Checkpointed.losses, nf4.losses) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(b))) }
        // The adapter trained on the nf4 base loads on the unquantised base.
        let base = try ModelBundle(directory: work.appendingPathComponent("model"), on: .cpu).model
        let config = try base.loadAdapter(from: nf4.out, trainable: false)
        XCTAssertEqual(config.rank, try FineTuneConfigTests.tinyRun(in: work.appendingPathComponent("again")).lora.rank)
        XCTAssertFalse(base.loraParameters.isEmpty)
    }
}
