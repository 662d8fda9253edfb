import Foundation
import XCTest
@testable import ITuneTensor

/// The own GEMM kernels against the CPU path: gemm_blocked.cl's register-blocked and direct
/// kernels at several tunings, and gemm_skinny.cl on LoRA's thin products. Each case also checks, by the launch
/// counters, that the kernel under test is the one that ran.
final class GemmKernelTests: XCTestCase {
    func ownGemm() throws -> OpenCLBackend {
        let cl = try TestDevices.requireOpenCL().backend() as! OpenCLBackend
        return cl
    }

    /// Runs `body` with the device on the own GEMM and `values` as its tuning, and returns
    /// how many times each kernel launched.
    func withOwnGemm(_ cl: OpenCLBackend, tuning values: [String: Int], _ body: () throws -> Void) throws -> [String: Int] {
        let (savedTuning, savedGemm) = (cl.tuning, cl.gemmImplementation)
        defer { cl.tuning = savedTuning; cl.gemmImplementation = savedGemm }
        cl.gemmImplementation = .own
        var t = savedTuning
        for (k, v) in values { t.values[k] = v }
        cl.tuning = t
        cl.resetCounters()
        try body()
        return cl.counters.launches
    }

    func testBlockedGemmMatchesCPUForEveryTransposeAtSeveralTilings() throws {
        let cl = try ownGemm()
        let tilings: [[String: Int]] = [
            // The register-blocked kernel: the .cl defaults (64×64 tiles, 4×4 per work-item), others.
            ["GEMM_DIRECT": 0, "GEMM_TSM": 64, "GEMM_TSN": 64, "GEMM_TSK": 16, "GEMM_WPTM": 4, "GEMM_WPTN": 4],
            ["GEMM_DIRECT": 0, "GEMM_TSM": 32, "GEMM_TSN": 64, "GEMM_TSK": 8, "GEMM_WPTM": 8, "GEMM_WPTN": 2],
            ["GEMM_DIRECT": 0, "GEMM_TSM": 16, "GEMM_TSN": 16, "GEMM_TSK": 32, "GEMM_WPTM": 2, "GEMM_WPTN": 4],
            // gemm_direct: full blocks and edges, K past and short of 8 (the dot products' tail).
            ["GEMM_DIRECT": 1, "GEMM_DWM": 3, "GEMM_DWN": 32],
            ["GEMM_DIRECT": 1, "GEMM_DWM": 2, "GEMM_DWN": 8],
        ]
        for tiling in tilings {
            let launches = try withOwnGemm(cl, tuning: tiling) {
                // Sizes that are no multiple of any tile, over several tiles each way; K past TSK.
                for tA in [false, true] { for tB in [false, true] {
                    try compareBackends([tA ? [77, 67] : [67, 77], tB ? [129, 77] : [77, 129]], rtol: 1e-4, atol: 1e-5) {
                        try $0[0].matmul($0[1], transposeA: tA, transposeB: tB)
                    }
                } }
                // Batched, with K shorter than one TSK step.
                try compareBackends([[3, 70, 5], [3, 5, 66]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1]) }
            }
            let kernel = tiling["GEMM_DIRECT"] == 1 ? "gemm_direct" : "gemm_blocked"
            XCTAssertGreaterThan(launches[kernel] ?? 0, 0, "\(tiling): \(launches)")
            XCTAssertNil(launches[kernel == "gemm_direct" ? "gemm_blocked" : "gemm_direct"], "\(tiling): \(launches)")
            XCTAssertNil(launches["gemm_tiled"], "\(tiling): \(launches)")
        }
    }

    func testSkinnyGemmRunsLoRAsThinProductsAndMatchesCPU() throws {
        let cl = try ownGemm()
        for group in [64, 16] {
            let launches = try withOwnGemm(cl, tuning: ["SKINNY_GROUP": group]) {
                let (T, r, d) = (131, 8, 100)
                // x·Aᵀ: tokens × r (N = r),
                try compareBackends([[T, d], [r, d]], rtol: 1e-4, atol: 1e-5) { try $0[0].linear($0[1]) }
                // the gradient of A, r × features (M = r), with K = tokens,
                try compareBackends([[T, r], [T, d]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1], transposeA: true) }
                // one row (a decode step's logits), K = 1 and N = 1, batched with transposes.
                try compareBackends([[1, 65], [65, 300]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1]) }
                try compareBackends([[70, 1], [1, 64]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1]) }
                try compareBackends([[2, 9, 70], [2, 1, 9]], rtol: 1e-4, atol: 1e-5) {
                    try $0[0].matmul($0[1], transposeA: true, transposeB: true)
                }
            }
            XCTAssertGreaterThan(launches["gemm_skinny"] ?? 0, 0, "\(launches)")
        }
    }

    func testThinOutputsTakeTheSkinnyKernelEvenWhereCLBlastIsTheGemm() throws {
        let cl = try ownGemm()
        let saved = cl.gemmImplementation
        defer { cl.gemmImplementation = saved }
        cl.gemmImplementation = .clblast
        let a = try Tensor.uniform([200, 64], -1, 1, seed: 1, on: cl.device)
        let b = try Tensor.uniform([64, 200], -1, 1, seed: 2, on: cl.device)
        cl.resetCounters()
        _ = try noGrad { try a.matmul(b, transposeA: true, transposeB: true) }  // 64 × 64: thin
        XCTAssertEqual(cl.counters.launches["gemm_skinny"], 1, "\(cl.counters.launches)")
        _ = try noGrad { try a.matmul(b) }  // 200 × 200 × 64: not thin (K may be short)
        XCTAssertEqual(cl.counters.launches["gemm_skinny"], 1, "\(cl.counters.launches)")
    }

    /// Every own kernel with B stored bf16 or f16 (GEMM_B16, Kernels/storage.cl): the product
    /// equals the CPU path's f32 product of the exactly converted B, for every transpose, at odd
    /// sizes, and the program that ran was built with GEMM_B16 set to the format.
    func testEveryOwnKernelReadsA16BitBAsTheCPUPathReadsItsF32Values() throws {
        let cl = try ownGemm()
        let cases: [(kernel: String, tuning: [String: Int], shapes: [(Int, Int, Int)])] = [
            ("gemm_blocked", ["GEMM_DIRECT": 0, "GEMM_TSM": 32, "GEMM_TSN": 64, "GEMM_TSK": 8, "GEMM_WPTM": 8, "GEMM_WPTN": 2],
             [(67, 129, 77), (70, 66, 5)]),
            // Full blocks (vector loads of B, both layouts), edges, K short of and past 8.
            ("gemm_direct", ["GEMM_DIRECT": 1, "GEMM_DWM": 3, "GEMM_DWN": 32], [(67, 129, 77), (96, 72, 16), (70, 66, 5)]),
            ("gemm_direct", ["GEMM_DIRECT": 1, "GEMM_DWM": 2, "GEMM_DWN": 8], [(67, 129, 77)]),
            // gemm.cl, where the blocked tile does not divide (WPTM 5 into TSM 64).
            ("gemm_tiled", ["GEMM_DIRECT": 0, "GEMM_TSM": 64, "GEMM_WPTM": 5], [(67, 129, 77)]),
            // A thin output: one decode row against a weight, a LoRA-like rank.
            ("gemm_skinny", [:], [(1, 300, 65), (131, 8, 100)]),
        ]
        for c in cases {
            let launches = try withOwnGemm(cl, tuning: c.tuning) {
                for format in [DType.bf16, .f16] { for (M, N, K) in c.shapes { for tA in [false, true] { for tB in [false, true] {
                    let bits = randomValues(N * K, seed: 5).map { format == .bf16 ? floatToBFloat16($0) : floatToHalf($0) }
                    let aValues = randomValues(M * K, seed: 4)
                    let shapeA = tA ? [K, M] : [M, K], shapeB = tB ? [N, K] : [K, N]
                    let a = try Tensor(aValues, shape: shapeA, on: cl.device)
                    let b = try Tensor(storing: bits, dtype: format, shape: shapeB, on: cl.device)
                    let y = try noGrad { try a.matmul(b, transposeA: tA, transposeB: tB) }.toArray()
                    let aCPU = try Tensor(aValues, shape: shapeA, on: .cpu)
                    let bCPU = try Tensor(storing: bits, dtype: format, shape: shapeB, on: .cpu).converted(to: .f32)
                    let want = try noGrad { try aCPU.matmul(bCPU, transposeA: tA, transposeB: tB) }.toArray()
                    assertClose(y, want, rtol: 1e-4, atol: 1e-5, "\(c.kernel) \(c.tuning) \(format) \(M)x\(N)x\(K) tA=\(tA) tB=\(tB)")
                } } } }
            }
            XCTAssertGreaterThan(launches[c.kernel] ?? 0, 0, "\(c.kernel) \(c.tuning): \(launches)")
            let family = c.kernel == "gemm_direct" ? "gemm_blocked" : c.kernel == "gemm_tiled" ? "gemm" : c.kernel
            let options = cl.compiledOptions(family: family)
            for format in [1, 2] {
                XCTAssertTrue(options.contains { $0.contains("-DGEMM_B16=\(format)") }, "\(c.kernel): \(options)")
            }
        }
    }
}
