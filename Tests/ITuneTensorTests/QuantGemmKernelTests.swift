import Foundation
import XCTest
@testable import ITuneTensor

/// The quantised linear on OpenCL (the own GEMM kernels' `_quant` entry points, which read the
/// nf4/int8 blocks on the device and dequantise in registers) against the CPU path's quantised
/// product (cpuSgemmQuantized), forward x·Wᵀ and input gradient g·W, for every own kernel.
final class QuantGemmKernelTests: XCTestCase {
    func quantized(rows: Int, cols: Int, _ format: QuantFormat, doubleQuant: Bool, seed: UInt64) throws -> BlockQuantizedMatrix {
        try quantizedMatrix(rows: rows, cols: cols, format, doubleQuant: doubleQuant, seed: seed, scale: 0.1)
    }

    /// y = x·Wᵀ (M, rows) and dx = ∂Σ(y·r)/∂x = r·W (M, cols) on `device`.
    func forwardAndInputGradient(_ q: BlockQuantizedMatrix, M: Int, on device: Device) throws -> (y: [Float], dx: [Float]) {
        let x = try Tensor(randomValues(M * q.cols, seed: 11), shape: [M, q.cols], on: device, requiresGrad: true)
        let r = try Tensor(randomValues(M * q.rows, seed: 12), shape: [M, q.rows], on: device)
        let y = try x.linear(quantized: q)
        try (y * r).sum().backward()
        return (try y.toArray(), try XCTUnwrap(x.grad).toArray())
    }

    func testEveryOwnKernelReadsQuantisedBlocksAsTheCPUPathDoes() throws {
        let device = try TestDevices.requireOpenCL()
        let cl = try device.backend() as! OpenCLBackend
        let cases: [(kernel: String, tuning: [String: Int], shapes: [(M: Int, rows: Int, cols: Int)])] = [
            // (M, out, in): both products' sides past 64 (not skinny); blocks straddle rows (in
            // no multiple of 64), an odd count of nf4 values, more than 256 blocks (two
            // second-level blocks under double quantisation).
            ("gemm_blocked", ["GEMM_DIRECT": 0, "GEMM_TSM": 32, "GEMM_TSN": 64, "GEMM_TSK": 8, "GEMM_WPTM": 8, "GEMM_WPTN": 2],
             [(67, 257, 77)]),
            // Full blocks (the vector loads of B in both layouts), edges, K past 8.
            ("gemm_direct", ["GEMM_DIRECT": 1, "GEMM_DWM": 3, "GEMM_DWN": 32], [(67, 257, 77), (96, 128, 96)]),
            ("gemm_direct", ["GEMM_DIRECT": 1, "GEMM_DWM": 2, "GEMM_DWN": 8], [(67, 129, 77)]),
            // gemm.cl, where the blocked tile does not divide (WPTM 5 into TSM 64).
            ("gemm_tiled", ["GEMM_DIRECT": 0, "GEMM_TSM": 64, "GEMM_WPTM": 5], [(67, 257, 77)]),
            // Thin outputs both ways: one decode row; a LoRA-sized projection.
            ("gemm_skinny", [:], [(1, 300, 65), (131, 8, 60)]),
        ]
        let formats: [(QuantFormat, Bool)] = [(.nf4, false), (.nf4, true), (.int8, false)]
        for c in cases {
            let (savedTuning, savedGemm) = (cl.tuning, cl.gemmImplementation)
            defer { cl.tuning = savedTuning; cl.gemmImplementation = savedGemm }
            cl.gemmImplementation = .own
            var t = savedTuning
            for (k, v) in c.tuning { t.values[k] = v }
            cl.tuning = t
            cl.resetCounters()
            for (format, dq) in formats { for s in c.shapes {
                let q = try quantized(rows: s.rows, cols: s.cols, format, doubleQuant: dq, seed: UInt64(s.rows * 31 + s.cols))
                let got = try forwardAndInputGradient(q, M: s.M, on: device)
                let want = try forwardAndInputGradient(q, M: s.M, on: .cpu)
                let what = "\(c.kernel) \(c.tuning) \(format)\(dq ? "+dq" : "") M \(s.M) W \(s.rows)×\(s.cols)"
                assertClose(got.y, want.y, rtol: 1e-4, atol: 1e-5, what + " y")
                assertClose(got.dx, want.dx, rtol: 1e-4, atol: 1e-5, what + " dx")
            } }
            let launches = cl.counters.launches
            XCTAssertGreaterThan(launches[c.kernel + "_quant"] ?? 0, 0, "\(c.kernel) \(c.tuning): \(launches)")
            for other in ["gemm_blocked", "gemm_direct", "gemm_tiled", "gemm_skinny"] where other != c.kernel {
                XCTAssertNil(launches[other + "_quant"], "\(c.kernel) \(c.tuning): \(launches)")
            }
            let family = c.kernel == "gemm_direct" ? "gemm_blocked" : c.kernel == "gemm_tiled" ? "gemm" : c.kernel
            let options = cl.compiledOptions(family: family)
            for d in ["-DGEMM_BQ=1", "-DGEMM_BQ=2", "-DGEMM_BQ_DQ=1"] {
                XCTAssertTrue(options.contains { $0.contains(d) }, "\(c.kernel): \(options)")
            }
        }
    }

    /// The blocks go up once (when placed, or at the first product) and stay: a product and its
    /// backward upload nothing, and the device holds the blocks' bytes, not an f32 matrix.
    func testProductsUploadNothingOnceTheBlocksArePlaced() throws {
        let device = try TestDevices.requireOpenCL()
        let cl = try device.backend() as! OpenCLBackend
        for (format, dq) in [(QuantFormat.nf4, false), (.nf4, true), (.int8, false)] {
            let (rows, cols, M) = (300, 130, 70)
            let q = try quantized(rows: rows, cols: cols, format, doubleQuant: dq, seed: 3)
            let before = cl.counters
            try q.place(on: device)
            let placed = cl.counters.since(before)
            let constants = dq ? (q.scaleCodes?.count ?? 0) + 4 * (q.scaleAbsmax?.count ?? 0) : 4 * q.absmax.count
            XCTAssertEqual(placed.bytesUploaded, q.codes.count + constants, "\(format) dq \(dq): the blocks' own bytes")
            XCTAssertLessThan(placed.bytesUploaded, rows * cols * 4 / 3, "less than an f32 matrix")
            let x = try Tensor(randomValues(M * cols, seed: 1), shape: [M, cols], on: device, requiresGrad: true)
            let r = try Tensor(randomValues(M * rows, seed: 2), shape: [M, rows], on: device)
            for _ in 0..<2 {
                let start = cl.counters
                let y = try x.linear(quantized: q)
                try (y * r).sum().backward()
                XCTAssertEqual(cl.counters.since(start).bytesUploaded, 0, "\(format) dq \(dq): a product uploads nothing")
                x.zeroGrad()
            }
            try q.place(on: device)
            XCTAssertEqual(q.deviceCopies.devices, [device.resolved])
        }
    }

    /// Placed on an OpenCL device, the blocks leave the host (a 7B nf4 base is not held twice in
    /// host RAM); the products there are those of the host copy, and the host copy read back
    /// from the device equals the one quantised (codes, absmax, values; the CPU product too).
    func testPlacedBlocksReleaseTheHostCopyAndReadItBackEqual() throws {
        let device = try TestDevices.requireOpenCL()
        for (format, dq) in [(QuantFormat.nf4, false), (.nf4, true), (.int8, false)] {
            let what = "\(format) dq \(dq)"
            let (rows, cols, M) = (300, 130, 7)
            let q = try quantized(rows: rows, cols: cols, format, doubleQuant: dq, seed: 5)
            let reference = try quantized(rows: rows, cols: cols, format, doubleQuant: dq, seed: 5)
            try q.place(on: device)
            XCTAssertFalse(q.holdsHostCopy, "\(what): the host copy stays after the upload")
            XCTAssertEqual(q.byteCount, reference.byteCount, what)
            let x = randomValues(M * cols, seed: 6)
            let onDevice = try Tensor(x, shape: [M, cols], on: device).linear(quantized: q).toArray()
            let onHost = try reference.linear(x, rows: M)
            assertClose(onDevice, onHost, rtol: 1e-4, atol: 1e-4, "\(what): the device's product")
            XCTAssertFalse(q.holdsHostCopy, "\(what): a device product needs no host copy")
            XCTAssertEqual(q.codes, reference.codes, what)
            XCTAssertEqual(q.absmax, reference.absmax, what)
            XCTAssertTrue(q.holdsHostCopy, "\(what): read back once, kept")
            XCTAssertEqual(q.dequantized(), reference.dequantized(), what)
            XCTAssertEqual(try Tensor(x, shape: [M, cols]).linear(quantized: q).toArray(), try Tensor(x, shape: [M, cols]).linear(quantized: reference).toArray(), "\(what): the CPU product")
        }
    }
}
