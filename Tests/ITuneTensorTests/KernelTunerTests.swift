import Foundation
import XCTest
@testable import ITuneTensor

/// `itune-gpu tune`'s search on the OpenCL test device (PoCL in CI), with a tiny budget.
final class KernelTunerTests: XCTestCase {
    /// Small shapes so that a search runs in seconds on PoCL.
    let tiny = TuneShapes(label: "tiny", batch: 2, sequence: 24, hidden: 40, intermediate: 72, heads: 2, kvHeads: 1,
                          headDim: 20, vocab: 50, loraRank: 4)

    func backend() throws -> OpenCLBackend { try TestDevices.requireOpenCL().backend() as! OpenCLBackend }

    func testATinyBudgetTimesTheValuesInForceOfEveryFamilyAndStoresThemForTheDevice() throws {
        let cl = try backend()
        let saved = cl.tuning
        defer { cl.tuning = saved }
        var logged: [String] = []
        let results = try KernelTuner(cl: cl, shapes: tiny, budget: 0) { logged.append($0) }.run()
        let kernels = results.map(\.kernel)
        for k in ["gemm_blocked", "gemm_skinny", "attention", "reduce", "elementwise"] {
            XCTAssertTrue(kernels.contains(k), "\(kernels)")
        }
        XCTAssertEqual(logged.count, results.count)
        for r in results {
            // Budget 0: only the values in force ran, passed the check and were timed.
            XCTAssertEqual(r.tried, 1, "\(r.kernel): \(r.notes)")
            XCTAssertEqual(r.best, r.before, r.kernel)
            XCTAssertNotNil(r.bestSeconds, r.kernel)
        }
        XCTAssertEqual(results.first { $0.kernel == "gemm_blocked" }?.best["GEMM_TSM"], try cl.tunedDefines("gemm_blocked")["GEMM_TSM"])

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("itune-tune-\(UUID().uuidString)/tuning.json")
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        // An entry of another device is kept; this device's is written (twice: replaced, not added).
        let other = KernelTuning.Entry(platform: "Other", device: "GPU", driver: "1", values: ["TS": 8])
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try JSONEncoder().encode(KernelTuning.Table(entries: [other])).write(to: file)
        try KernelTuner.store(["GEMM_TSM": 32, "TS": 4], for: cl, note: "first", file: file)
        try KernelTuner.store(["GEMM_TSM": 32, "TS": 8], for: cl, note: "second", file: file)
        let table = try JSONDecoder().decode(KernelTuning.Table.self, from: Data(contentsOf: file))
        XCTAssertEqual(table.entries.count, 2)
        XCTAssertEqual(table.entries[0], other)
        let mine = try XCTUnwrap(KernelTuning.bestEntry(in: table.entries, for: .init(platform: cl.platformName, device: cl.info.name, driver: cl.info.driverVersion)))
        XCTAssertEqual(mine.values, ["GEMM_TSM": 32, "TS": 8])
        XCTAssertEqual(mine.note, "second")
    }

    func testCandidatesThatFailOrDifferFromTheCPUAreSkippedAndTheFastestIsLeftInForce() throws {
        let cl = try backend()
        let saved = cl.tuning
        defer { cl.tuning = saved }
        let tuner = KernelTuner(cl: cl, shapes: tiny, budget: 30)
        let inForce = try cl.tunedDefines("gemm_skinny")["SKINNY_GROUP"]!
        struct Refused: Error {}
        // A stand-in for a miscompiling driver: with SKINNY_GROUP 128 the device's answer is off
        // by 1e-3 relative, which the check against the CPU path must catch.
        var thin = CheckedOp.matmuls.first { $0.gemm == .own }!
        let body = thin.body
        thin.body = { inputs in
            let out = try body(inputs)
            guard inputs[0].device != .cpu, (try? cl.tunedDefines("gemm_skinny")["SKINNY_GROUP"]) == 128 else { return out }
            return try out.scaled(by: 1.001)
        }
        let x = try Tensor.uniform([300, 40], -1, 1, seed: 1, on: cl.device)
        let a = try Tensor.uniform([4, 40], -1, 1, seed: 2, on: cl.device)
        let search = KernelTuner.Search(
            kernel: "gemm_skinny", share: 1,
            candidates: [["SKINNY_GROUP": inForce], ["SKINNY_GROUP": 32], ["SKINNY_GROUP": 128], ["SKINNY_GROUP": 16]],
            checks: [thin], flops: 0, workload: { _ = try noGrad { try x.matmul(a, transposeB: true) } },
            // A stand-in for a build the driver refuses.
            apply: { values in if values["SKINNY_GROUP"] == 32 { throw Refused() } })
        let r = try tuner.tune(search, seconds: 30)
        XCTAssertEqual(r.tried, 2, "\(r.notes)")
        XCTAssertEqual(r.skipped, 2, "\(r.notes)")
        XCTAssertTrue(r.notes.contains { $0.hasPrefix("SKINNY_GROUP=32") && $0.contains("Refused") }, "\(r.notes)")
        XCTAssertTrue(r.notes.contains { $0.hasPrefix("SKINNY_GROUP=128") && $0.contains("element") }, "\(r.notes)")
        XCTAssertTrue(r.best == ["SKINNY_GROUP": inForce] || r.best == ["SKINNY_GROUP": 16], "\(r.best)")
        XCTAssertLessThanOrEqual(r.bestSeconds!, r.beforeSeconds!)
        XCTAssertEqual(try cl.tunedDefines("gemm_skinny")["SKINNY_GROUP"], r.best["SKINNY_GROUP"])
    }

    func testCLBlastCandidatesObeyXgemmsDivisibilityRules() {
        let grid = CLBlastTuning.xgemmCandidates(maxWorkGroupSize: 64)
        XCTAssertFalse(grid.isEmpty)
        for c in grid {
            XCTAssertNotNil(CLBlastTuning.parameters(in: c))
            XCTAssertLessThanOrEqual(c["CLBLAST_XGEMM_MDIMC"]! * c["CLBLAST_XGEMM_NDIMC"]!, 64)
        }
        var bad = grid[0]
        bad["CLBLAST_XGEMM_MWG"] = 24  // not a multiple of MDIMC·VWM
        XCTAssertFalse(CLBlastTuning.isValid(bad, maxWorkGroupSize: 1024))
        bad = grid[0]
        bad.removeValue(forKey: "CLBLAST_XGEMM_SA")
        XCTAssertNil(CLBlastTuning.parameters(in: bad))
    }
}
