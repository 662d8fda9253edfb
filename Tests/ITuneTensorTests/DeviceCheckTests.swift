import Foundation
import XCTest
@testable import ITuneTensor

/// `devices --check` in the library, and the work-group limits every launch must respect.
final class DeviceCheckTests: XCTestCase {
    func testDeviceCheckRunsEveryOpAndEveryOpMatchesTheCPUPath() throws {
        let device = try TestDevices.requireOpenCL()
        let check = try DeviceCheck.run(on: device)
        XCTAssertEqual(check.results.map(\.op), DeviceCheck.opNames)
        for r in check.results {
            XCTAssertNotEqual(r.outcome, .fail, r.line)
            if r.outcome == .pass {
                XCTAssertLessThanOrEqual(r.maxAbsoluteError, r.tolerance == .exact ? 0 : 1e-3, r.line)
                XCTAssertTrue(r.line.hasPrefix("PASS  \(r.op)"), r.line)
            }
        }
        XCTAssertTrue(check.passed, check.text)
        // Both GEMMs are checked (CLBlast skips only where it does not load), and the
        // backward of the ops that have one.
        let names = Set(check.results.map(\.op))
        XCTAssertTrue(names.contains("matmul gemm.cl") && names.contains("matmul CLBlast"))
        if CLBlast.isAvailable { XCTAssertEqual(check.results.first { $0.op == "matmul CLBlast" }?.outcome, .pass) }
        XCTAssertTrue(check.results.first { $0.op == "attention (causal, GQA)" }?.backward ?? false)
        // A quantised base's projection, forward and input gradient, read from its blocks.
        for op in ["linear nf4 double-quant 67×130·(70×130)ᵀ", "linear int8 67×130·(70×130)ᵀ"] {
            let r = check.results.first { $0.op == op }
            XCTAssertEqual(r?.outcome, .pass, op)
            XCTAssertTrue(r?.backward ?? false, op)
        }
        XCTAssertTrue(check.text.contains("work-groups   device maximum"), check.text)
        XCTAssertTrue(check.text.contains("fp16 "), check.text)
        XCTAssertTrue(check.text.contains("all \(check.results.filter { $0.outcome == .pass }.count) ops match"), check.text)
    }

    func testOnlySelectsOpsByName() throws {
        let device = try TestDevices.requireOpenCL()
        let check = try DeviceCheck.run(on: device, only: ["softmax"])
        XCTAssertEqual(check.results.map(\.op), ["softmax (short rows)", "softmax (long rows)"])
    }

    func testTheCPUDeviceIsRefusedNamingWhatToPick() {
        XCTAssertThrowsError(try DeviceCheck.run(on: .cpu)) { error in
            XCTAssertTrue("\(error)".contains("--device opencl:P:D"), "\(error)")
        }
    }

    func testComparisonReportsTheWorstElementAndTheLargestErrors() {
        // 2.0001 vs 2 is 5e-5 relative: outside the elementwise tolerance, inside the reduction one.
        let a: [Float] = [1, 2.0001, 0.5], b: [Float] = [1, 2, 0.5]
        let elementwise = DeviceCheck.compare(a, b, .elementwise)
        XCTAssertEqual(elementwise.maxAbs, 1e-4, accuracy: 2e-6)
        XCTAssertEqual(elementwise.maxRel, 5e-5, accuracy: 1e-6)
        XCTAssertEqual(elementwise.problem, "element 1 is 2.0001, the CPU gives 2.0")
        XCTAssertNil(DeviceCheck.compare(a, b, .reduction).problem)
        // A nan where the CPU has a number fails; nan on both sides (the same maths) does not.
        XCTAssertNotNil(DeviceCheck.compare([.nan], [1], .reduction).problem)
        XCTAssertNil(DeviceCheck.compare([.nan, .infinity], [.nan, .infinity], .exact).problem)
        XCTAssertNotNil(DeviceCheck.compare([1], [1, 2], .reduction).problem)
        // Where atol > rtol·|cpu| the absolute tolerance decides: no relative error is reported.
        XCTAssertEqual(DeviceCheck.compare([1e-7], [0], .elementwise).maxRel, 0)
        XCTAssertNil(DeviceCheck.compare([1e-7], [0], .elementwise).problem)
    }

    func testKernelLimitsComeFromTheDeviceAndTheGemmTileFitsThem() throws {
        let device = try TestDevices.requireOpenCL()
        guard let cl = try device.backend() as? OpenCLBackend else { return XCTFail("not an OpenCL backend") }
        let limits = try cl.kernelLimits("gemm", "gemm_tiled", constants: ["TS": 4])
        XCTAssertGreaterThan(limits.workGroupSize, 0)
        XCTAssertLessThanOrEqual(limits.workGroupSize, cl.info.maxWorkGroupSize)
        XCTAssertLessThanOrEqual(limits.localMemory, cl.info.localMemory)
        let ts = try cl.gemmTile()
        let tsLimits = try cl.kernelLimits("gemm", "gemm_tiled", constants: ["TS": ts])
        XCTAssertLessThanOrEqual(ts * ts, min(cl.info.maxWorkGroupSize, tsLimits.workGroupSize))
        XCTAssertEqual(cl.info.maxWorkItemSizes.count, 3, "\(cl.info.maxWorkItemSizes)")
    }

    func testALaunchOverTheLimitsIsAnErrorNamingDeviceKernelAndLimit() throws {
        let device = try TestDevices.requireOpenCL()
        guard let cl = try device.backend() as? OpenCLBackend else { return XCTFail("not an OpenCL backend") }
        let side = 256  // 65,536 work-items: over every device's maximum
        let a = try Tensor.zeros([4, 4], on: device), c = try Tensor.zeros([4, 4], on: device)
        XCTAssertThrowsError(try cl.gemmTiled(KernelGrid(global: [4, 4, 1], local: [side, side, 1], constants: ["TS": 4]),
                                              M: 4, N: 4, K: 4, alpha: 1, beta: 0, A: a, lda: 4, strideA: 16, transA: false,
                                              B: a, ldb: 4, strideB: 16, transB: false, C: c, ldc: 4, strideC: 16)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("gemm_tiled") && text.contains(cl.name) && text.contains("device maximum \(cl.info.maxWorkGroupSize)"), text)
        }
    }
}
