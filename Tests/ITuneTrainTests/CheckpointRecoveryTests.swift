import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// A damaged checkpoint is named and the previous one used, never a trap; with none usable the
/// resume is refused naming each. Resuming survives a crash during the resume itself: the
/// metrics trim and every other rewrite go through a temporary file and a rename, and what a
/// killed save left behind is removed at the next start.
final class CheckpointRecoveryTests: XCTestCase {
    typealias F = TrainerFixtures

    /// Trains 8 steps with a checkpoint every 2; returns the straight curve.
    func trainWithCheckpoints(_ dir: URL) throws -> [(Int, Double)] {
        try F.trainer(F.options(steps: 8, saveEvery: 2), dir).run().history
    }

    func state(_ dir: URL, _ step: Int) -> URL {
        dir.appendingPathComponent("checkpoints/step-\(step)/state.json")
    }

    func testOneElementHistoryPairSkipsToThePreviousCheckpointAndContinuesTheSameCurve() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let straight = try trainWithCheckpoints(dir)
        try Data(#"{"step": 8, "optimizer_step": 8, "history": [[1]], "history_bits": [["1"]]}"#.utf8).write(to: state(dir, 8))
        var infos: [String] = []
        let resumed = try F.trainer(F.options(steps: 8, saveEvery: 2), dir).run(resume: true) { if case let .info(s) = $0 { infos.append(s) } }
        XCTAssertTrue(infos.contains("skipping damaged checkpoint \(dir.path)/checkpoints/step-8: \(state(dir, 8).path): field 'history_bits[0]': not a [step, hex bits] pair"),
                      "\(infos)")
        XCTAssertTrue(infos.contains("resumed from step 6 of 8"), "\(infos)")
        XCTAssertEqual(resumed.history.map(\.0), straight.map(\.0))
        XCTAssertEqual(resumed.history.map(\.1), straight.map(\.1), "steps 7 and 8 are retrained to the same losses")
        // The decimal form alone, one element short, is caught the same way.
        try Data(#"{"step": 8, "optimizer_step": 8, "history": [[1, 2.5], [2]]}"#.utf8).write(to: state(dir, 8))
        XCTAssertThrowsError(try CheckpointState(contentsOf: state(dir, 8))) {
            XCTAssertEqual("\($0)", "\(self.state(dir, 8).path): field 'history[1]': not a [step, loss] pair")
        }
    }

    func testEmptyStateFilesAreNamedAndTheResumeRefusedWhenNoCheckpointIsUsable() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try trainWithCheckpoints(dir)
        for step in [2, 4, 6, 8] { try Data().write(to: state(dir, step)) }
        let message = F.message { try F.trainer(F.options(steps: 8, saveEvery: 2), dir).run(resume: true) }
        XCTAssertTrue(message.hasPrefix("no usable checkpoint in \(dir.path)/checkpoints to resume from: \(state(dir, 8).path): empty file"), message)
        for step in [2, 4, 6] { XCTAssertTrue(message.contains("\(state(dir, step).path): empty file"), message) }
        XCTAssertFalse(message.contains("Unexpected end of file"), message)
    }

    func testNonFiniteOrMissizedCheckpointTensorsAreRefusedAndNothingIsRestoredFromThem() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let straight = try trainWithCheckpoints(dir)
        // step-8 holds a NaN weight; step-6 a tensor of the wrong size.
        let m = try F.model()
        let tensors8 = dir.appendingPathComponent("checkpoints/step-8/trainable.safetensors")
        var named = m.namedParameters().map { (name: $0.0, tensor: $0.1) }
        var values = try named[0].tensor.toArray()
        values[3] = .nan
        named[0].tensor = try Tensor(values, shape: named[0].tensor.shape, on: .cpu)
        try SafetensorsFile.write(named, to: tensors8)
        let tensors6 = dir.appendingPathComponent("checkpoints/step-6/trainable.safetensors")
        var short = m.namedParameters().map { (name: $0.0, tensor: $0.1) }
        short[1].tensor = try Tensor.zeros([1], on: .cpu)
        try SafetensorsFile.write(short, to: tensors6)
        var infos: [String] = []
        let resumed = try F.trainer(F.options(steps: 8, saveEvery: 2), dir).run(resume: true) { if case let .info(s) = $0 { infos.append(s) } }
        XCTAssertTrue(infos.contains { $0.hasPrefix("skipping damaged checkpoint \(dir.path)/checkpoints/step-8: \(tensors8.path): tensor \(named[0].name) holds NaN or infinite values") }, "\(infos)")
        XCTAssertTrue(infos.contains { $0.hasPrefix("skipping damaged checkpoint \(dir.path)/checkpoints/step-6: \(tensors6.path): tensor \(short[1].name) has 1 values") }, "\(infos)")
        XCTAssertTrue(infos.contains("resumed from step 4 of 8"), "\(infos)")
        XCTAssertEqual(resumed.history.map(\.1), straight.map(\.1))
    }

    func testMetricsTrimIsAtomicAndLeftoversOfAKilledSaveAreRemoved() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try trainWithCheckpoints(dir)
        let metrics = dir.appendingPathComponent("metrics.jsonl")
        let before = try Data(contentsOf: metrics)
        // A resume from step 6 trims steps 7 and 8. Killed between writing the trimmed copy and
        // the rename (simulated: the rename fails), the file is the old one, whole.
        try FileManager.default.removeItem(at: dir.appendingPathComponent("checkpoints/step-8"))
        let killed = F.message { try F.failingWrites(EIO, { $0 == "metrics.jsonl" }) { try F.trainer(F.options(steps: 8, saveEvery: 2), dir).run(resume: true) } }
        XCTAssertEqual(killed, "cannot write \(metrics.path): \(String(cString: strerror(EIO)))")
        XCTAssertEqual(try Data(contentsOf: metrics), before, "the metrics are untouched")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".tmp-") }, [])
        // What a killed save leaves: a half checkpoint directory and half files.
        let leftovers = [dir.appendingPathComponent(".tmp-metrics.jsonl-99999"), dir.appendingPathComponent(".loss_curve.svg.tmp"),
                         dir.appendingPathComponent("checkpoints/.tmp-step-8-99999/state.json")]
        for url in leftovers {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("{".utf8).write(to: url)
        }
        var infos: [String] = []
        let resumed = try F.trainer(F.options(steps: 8, saveEvery: 2), dir).run(resume: true) { if case let .info(s) = $0 { infos.append(s) } }
        XCTAssertTrue(infos.contains("removed 2 temporary file(s) left by an interrupted save in \(dir.path): .loss_curve.svg.tmp, .tmp-metrics.jsonl-99999"), "\(infos)")
        XCTAssertTrue(infos.contains("removed 1 temporary file(s) left by an interrupted save in \(dir.path)/checkpoints: .tmp-step-8-99999"), "\(infos)")
        for url in leftovers { XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), url.path) }
        XCTAssertTrue(infos.contains("resumed from step 6 of 8"), "\(infos)")
        let train = try F.lines(metrics).filter { $0["type"] as? String == "train" }
        XCTAssertEqual(train.compactMap { $0["step"] as? Int }, Array(1...8), "one curve, steps 7 and 8 once")
        XCTAssertEqual(resumed.history.count, 8)
    }
}
