import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// `--base-dtype` (a LoRA run's frozen base kept in 16 bits) and `--precision bf16` (full
/// fine-tuning with bf16 matmuls and f32 master weights) track the f32 loss curve.
final class HalfPrecisionTrainingTests: XCTestCase {
    /// The loss curve of 50 steps of the tiny run with `edit` applied, and the run's log.
    func curve(_ work: URL, _ name: String, device: Device = .cpu,
               _ edit: (inout FineTuneConfig) -> Void) throws -> (losses: [Double], log: [String]) {
        var config = try FineTuneConfigTests.tinyRun(in: work)
        config.output = work.appendingPathComponent(name).path
        config.trainer.maxSteps = 50
        edit(&config)
        var log: [String] = []
        let result = try FineTuneJob(config: config, device: device).run(log: { log.append($0) })
        XCTAssertEqual(result.summary.history.count, 50, name)
        return (result.summary.history.map(\.1), log)
    }

    func maxDifference(_ a: [Double], _ b: [Double]) -> Double {
        zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
    }

    func testBF16BaseLoRACurveTracksF32Within1e2() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-halfbase-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        let f32 = try curve(work, "f32") { $0.baseDType = .f32 }
        let bf16 = try curve(work, "bf16") { $0.baseDType = .bf16 }
        XCTAssertTrue(bf16.log.contains { $0.contains("matrices stored as bf16") }, "\(bf16.log.prefix(3))")
        XCTAssertTrue(f32.log.contains { $0.contains("matrices stored as f32") })
        let d = maxDifference(bf16.losses, f32.losses)
        print("[half-precision] LoRA bf16 base vs f32 over 50 steps on cpu: max |Δloss| = \(d) (losses \(f32.losses.first!) → \(f32.losses.last!))")
        XCTAssertLessThan(d, 1e-2)
        // The curve moved: the comparison is between two trainings, not two copies of step 0.
        XCTAssertLessThan(f32.losses.suffix(5).reduce(0, +) / 5, f32.losses.prefix(5).reduce(0, +) / 5 - 0.05)
        // The same run on OpenCL, the base read by the 16-bit GEMM kernel.
        if let cl = openCLDevice() {
            let onCL = try curve(work, "bf16-cl", device: cl) { $0.baseDType = .bf16 }
            let dcl = maxDifference(onCL.losses, f32.losses)
            print("[half-precision] LoRA bf16 base on \(cl) vs f32 on cpu: max |Δloss| = \(dcl)")
            XCTAssertLessThan(dcl, 1e-2)
        }
    }

    func testBF16PrecisionFullFineTuningTracksF32Within2e2() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-bf16full-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        let f32 = try curve(work, "f32") { $0.mode = .full; $0.trainer.optimizer.learningRate = 2e-4 }
        let bf16 = try curve(work, "bf16") { $0.mode = .full; $0.trainer.optimizer.learningRate = 2e-4; $0.precision = .bf16 }
        XCTAssertTrue(bf16.log.contains { $0.contains("precision: bf16") })
        let d = maxDifference(bf16.losses, f32.losses)
        print("[half-precision] full FT --precision bf16 vs f32 over 50 steps on cpu: max |Δloss| = \(d) (losses \(f32.losses.first!) → \(f32.losses.last!))")
        XCTAssertLessThan(d, 2e-2)
        // bf16 rounding did change the numbers (the option is not a no-op).
        XCTAssertGreaterThan(d, 0)
        XCTAssertLessThan(f32.losses.suffix(5).reduce(0, +) / 5, f32.losses.prefix(5).reduce(0, +) / 5 - 0.05)
    }

    func testHalfPrecisionOptionsAreRefusedWhereTheyDoNotApply() throws {
        var full = FineTuneConfig(model: "m", data: ["d.jsonl"])
        full.mode = .full
        full.baseDType = .bf16
        XCTAssertThrowsError(try full.validate()) { XCTAssertTrue("\($0)".contains("base-dtype"), "\($0)") }
        var lora = FineTuneConfig(model: "m", data: ["d.jsonl"])
        lora.precision = .bf16
        XCTAssertThrowsError(try lora.validate()) { XCTAssertTrue("\($0)".contains("precision"), "\($0)") }
        // The keys are the long option names, and a bad value names the choices.
        let c = try FineTuneConfig(options: ["model": "m", "data": ["d.jsonl"], "base-dtype": "f16"], source: "test")
        XCTAssertEqual(c.baseDType, .f16)
        XCTAssertThrowsError(try FineTuneConfig(options: ["model": "m", "base-dtype": "int8"], source: "test")) {
            XCTAssertTrue("\($0)".contains("f32, bf16, f16"), "\($0)")
        }
    }

    /// The first OpenCL device; nil when there is none (a failure under ITUNE_REQUIRE_OPENCL=1).
    func openCLDevice() -> Device? {
        if let p = OpenCLRuntime.listDevices().platforms.first(where: { !$0.devices.isEmpty }) {
            return .opencl(platform: p.index, device: 0)
        }
        if ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" { XCTFail("ITUNE_REQUIRE_OPENCL=1 but no OpenCL device") }
        return nil
    }
}
