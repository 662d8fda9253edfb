import Foundation
import XCTest

/// CI proves that itune-bench runs: every benchmark in its smoke mode, on the CPU path and every
/// OpenCL device, one JSON line per result.
final class BenchSmokeTests: XCTestCase {
    func testItuneBenchSmokeRunsEveryBenchmark() throws {
        let r = try runBuiltExecutable("itune-bench", ["all", "--smoke", "--device", "all", "--json"], from: self)
        XCTAssertEqual(r.status, 0, r.err)
        let rows = r.out.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let benches = Set(rows.compactMap { $0["bench"] as? String })
        XCTAssertEqual(benches, ["peak", "matmul", "softmax", "attention", "step", "tokenize", "load"])
        XCTAssertTrue(rows.allSatisfy { (($0["rate"] as? Double) ?? 0) > 0 }, "every result has a positive rate")
        XCTAssertTrue(rows.contains { ($0["device"] as? String) == "cpu" })
        // CPU rows are put against the machine's measured peak: a fraction in (0, ∞) — above 1
        // only if the peak measurement were wrong, which the smoke run's tiny timings allow.
        let cpuSteps = rows.filter { ($0["bench"] as? String) == "step" && ($0["device"] as? String) == "cpu" }
        XCTAssertFalse(cpuSteps.isEmpty)
        // PaLM's count for the smoke model (vocab 512, hidden 64, 2 layers of 4 heads of 16 and 2
        // kv heads, MLP 128, T 32): N = 2·(64·64·2 + 64·32·2 + 3·64·128) + 512·64 = 106,496
        // matmul weights; LoRA r 8 on all seven projections adds 16,384; attention 12·2·4·16·32.
        let perLayer: Double = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128
        let n: Double = 2 * perLayer + 512 * 64, adapters: Double = 16_384
        let attention: Double = 12 * 2 * 4 * 16 * 32
        for r in cpuSteps {
            XCTAssertGreaterThan((r["mfu"] as? Double) ?? 0, 0, "step rows carry MFU")
            let want = (r["mode"] as? String) == "lora" ? 4 * n + 6 * adapters + attention : 6 * n + attention
            XCTAssertEqual((r["flops_per_token"] as? Double) ?? 0, want, "\(r["mode"] ?? "")")
        }
        // Step rows carry the device's counters per optimizer step; a step waits for its device
        // at most once (the read of the gradient norm and the loss).
        for r in rows where (r["bench"] as? String) == "step" {
            for key in ["syncs_per_step", "bytes_up_per_step", "bytes_down_per_step", "launches_per_step"] {
                XCTAssertNotNil(r[key] as? NSNumber, "step row without \(key)")
            }
            XCTAssertNotNil(r["new_buffers_after_warmup"] as? NSNumber)
            XCTAssertLessThanOrEqual((r["syncs_per_step"] as? NSNumber)?.doubleValue ?? 99, 1, "\(r["device"] ?? "") \(r["mode"] ?? "")")
            XCTAssertGreaterThan((r["bytes_up_per_step"] as? NSNumber)?.doubleValue ?? 0, 0, "the step uploads its targets")
        }
        XCTAssertTrue(rows.filter { ($0["bench"] as? String) == "matmul" && ($0["device"] as? String) == "cpu" }
            .allSatisfy { (($0["peak_fraction"] as? Double) ?? 0) > 0 }, "matmul rows carry their fraction of the peak")
    }
    /// The GPU kit ships one binary: itune-gpu run under the name itune-bench (a link) is the
    /// benchmark command, with its subcommands and JSON rows; under its own name it is not.
    func testItuneGpuRunUnderTheNameItuneBenchIsTheBenchmarkCommand() throws {
        let exe = try builtExecutablePath("itune-gpu", from: self)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-multicall-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let link = dir.appendingPathComponent("itune-bench")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: exe)
        let r = try runExecutable(at: link.path, ["matmul", "--smoke", "--device", "cpu", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let rows = r.out.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        XCTAssertEqual(Set(rows.compactMap { $0["bench"] as? String }), ["matmul"])
        XCTAssertEqual(Set(rows.compactMap { $0["label"] as? String }), ["square 64", "square 128"])
        let own = try runExecutable(at: exe, ["matmul", "--smoke"])
        XCTAssertNotEqual(own.status, 0, "itune-gpu has no matmul subcommand")
    }
    /// --device gpu: the OpenCL GPUs and accelerators, else every OpenCL device (PoCL alone, as in
    /// CI), never the CPU path; a subset of --device opencl's devices, empty only where that is.
    func testDeviceGpuPicksOpenCLGPUsElseEveryOpenCLDevice() throws {
        let exe = try builtExecutablePath("itune-bench", from: self)
        func devices(_ d: String) throws -> Set<String> {
            let r = try runExecutable(at: exe, ["matmul", "--smoke", "--sizes", "64", "--device", d, "--json"])
            XCTAssertEqual(r.status, 0, r.err)
            return Set(r.out.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["device"] as? String
            })
        }
        let all = try devices("opencl"), gpus = try devices("gpu")
        XCTAssertTrue(gpus.isSubset(of: all), "\(gpus) ⊄ \(all)")
        XCTAssertEqual(gpus.isEmpty, all.isEmpty)
        XCTAssertFalse(gpus.contains("cpu"))
        if ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" { XCTAssertFalse(gpus.isEmpty) }
    }
    /// step --answer-fraction: the row says what share of the tokens was scored, and a share
    /// outside (0, 1] is refused by name.
    func testStepWithAnAnswerOnlyLossNamesItsFraction() throws {
        let exe = try builtExecutablePath("itune-bench", from: self)
        let r = try runExecutable(at: exe, ["step", "--smoke", "--configs", "tiny", "--modes", "lora", "--answer-fraction", "0.5", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let rows = r.out.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { ($0["bench"] as? String) == "step" }
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(rows.first?["name"] as? String, "lora answers 0.5")
        XCTAssertEqual(rows.first?["answer_fraction"] as? Double, 0.5)
        XCTAssertGreaterThan(rows.first?["rate"] as? Double ?? 0, 0)
        let bad = try runExecutable(at: exe, ["step", "--smoke", "--answer-fraction", "0"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("--answer-fraction"), bad.err)
    }
}
