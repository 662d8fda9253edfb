import Foundation
import XCTest
@testable import ITuneTensor

/// x·Wᵀ + s·(x·Aᵀ)·Bᵀ as one op (the GEMMs accumulate both sums) against finite differences
/// and against the same sum made of separate products and an add.
final class LoRALinearTests: XCTestCase {
    /// (out, grads of x, A, B) of `op` on x (xs), the frozen w, A (r, in), B (out, r).
    func run(_ x: [Float], _ xs: [Int], _ w: Tensor, _ a: [Float], _ b: [Float], r: Int, on device: Device,
             _ op: (Tensor, Tensor, Tensor) throws -> Tensor) throws -> ([Float], [[Float]]) {
        let (inF, outF) = (w.shape[1], w.shape[0])
        let X = try Tensor(x, shape: xs, on: device, requiresGrad: true)
        let A = try Tensor(a, shape: [r, inF], on: device, requiresGrad: true)
        let B = try Tensor(b, shape: [outF, r], on: device, requiresGrad: true)
        let y = try op(X, A, B)
        XCTAssertEqual(y.shape, Array(xs.dropLast()) + [outF])
        let g = try Tensor(randomValues(y.count, seed: 99), shape: y.shape, on: device)
        try (y * g).sum().backward()
        return (try y.toArray(), try [X, A, B].map { try $0.grad!.toArray() })
    }

    /// The separate ops: the base product, the two low-rank products and an add.
    func composed(_ x: [Float], _ xs: [Int], _ w: Tensor, _ a: [Float], _ b: [Float], r: Int, scale: Float,
                  on device: Device) throws -> ([Float], [[Float]]) {
        try run(x, xs, w, a, b, r: r, on: device) { X, A, B in try X.matmul(w, transposeB: true) + X.linear(A).linear(B, scale: scale) }
    }

    func fused(_ x: [Float], _ xs: [Int], _ w: Tensor, _ a: [Float], _ b: [Float], r: Int, scale: Float,
               on device: Device) throws -> ([Float], [[Float]]) {
        try run(x, xs, w, a, b, r: r, on: device) { X, A, B in try X.linearWithLowRank(w, a: A, b: B, scale: scale) }
    }

    func testGradientsMatchFiniteDifferences() throws {
        // x (2, 3, 5), W (4, 5) frozen, A (2, 5), B (4, 2): B non-zero so that A's gradient is.
        try checkGradients([[2, 3, 5], [4, 5], [2, 5], [4, 2]], requires: [true, false, true, true]) {
            try $0[0].linearWithLowRank($0[1], a: $0[2], b: $0[3], scale: 1.5)
        }
    }

    func testMatchesTheSeparateProductsAndAddOnCPU() throws {
        // Over 32 rows, and outputs or inputs (the CPU's K + r product in the forward, the input
        // gradient too at the second shape), and fewer (the two products apart).
        for (M, inF, outF, r) in [(37, 29, 41, 8), (45, 70, 83, 4), (20, 40, 50, 8)] {
            try matchesTheSeparateProducts(M: M, inF: inF, outF: outF, r: r)
        }
    }

    func matchesTheSeparateProducts(M: Int, inF: Int, outF: Int, r: Int) throws {
        let x = randomValues(M * inF, seed: 1), a = randomValues(r * inF, seed: 2), b = randomValues(outF * r, seed: 3)
        let w = try Tensor(randomValues(outF * inF, seed: 4), shape: [outF, inF])
        for xs in [[M, inF], [1, M, inF]] {
            let ref = try composed(x, xs, w, a, b, r: r, scale: 2, on: .cpu)
            let got = try fused(x, xs, w, a, b, r: r, scale: 2, on: .cpu)
            assertClose(got.0, ref.0, rtol: 1e-5, atol: 1e-5, "forward \(xs)")
            for i in 0..<3 { assertClose(got.1[i], ref.1[i], rtol: 1e-5, atol: 1e-5, "gradient \(i) \(xs)") }
        }
        // A 16-bit stored base: the same as the composed ops on that weight.
        let w16 = try w.converted(to: .bf16)
        let ref = try composed(x, [M, inF], w16, a, b, r: r, scale: 0.5, on: .cpu)
        let got = try fused(x, [M, inF], w16, a, b, r: r, scale: 0.5, on: .cpu)
        assertClose(got.0, ref.0, rtol: 1e-5, atol: 1e-5, "bf16 base forward")
        for i in 0..<3 { assertClose(got.1[i], ref.1[i], rtol: 1e-5, atol: 1e-5, "bf16 base gradient \(i)") }
    }

    /// A quantised base (QLoRA): the one op (on the CPU the K + r product with the base's blocks
    /// dequantised as they are packed, forward and input gradient; below 33 rows the quantised
    /// product and an accumulating low-rank one) against the quantised linear, the two low-rank
    /// products and an add, for nf4, nf4 with double quantisation and int8.
    func testAQuantisedBaseMatchesTheSeparateProducts() throws {
        for (M, inF, outF, r) in [(37, 96, 45, 8), (45, 200, 83, 4), (20, 64, 50, 8)] {
            let x = randomValues(M * inF, seed: 11), a = randomValues(r * inF, seed: 12), b = randomValues(outF * r, seed: 13)
            let wv = randomValues(outF * inF, seed: 14)
            for (format, dq) in [(QuantFormat.nf4, false), (.nf4, true), (.int8, false)] {
                let q = try wv.withUnsafeBufferPointer {
                    try BlockQuantizedMatrix(quantizing: $0, rows: outF, cols: inF, format: format, doubleQuant: dq)
                }
                let shapeOf = try Tensor(wv, shape: [outF, inF])  // the shapes only
                let ref = try run(x, [1, M, inF], shapeOf, a, b, r: r, on: .cpu) { X, A, B in
                    try X.linear(quantized: q) + X.linear(A).linear(B, scale: 2)
                }
                let got = try run(x, [1, M, inF], shapeOf, a, b, r: r, on: .cpu) { X, A, B in
                    try X.linearWithLowRank(quantized: q, a: A, b: B, scale: 2)
                }
                let what = "\(format)\(dq ? "+dq" : "") M \(M) in \(inF) out \(outF) r \(r)"
                assertClose(got.0, ref.0, rtol: 1e-5, atol: 1e-5, "forward \(what)")
                for i in 0..<3 { assertClose(got.1[i], ref.1[i], rtol: 1e-5, atol: 1e-5, "gradient \(i) \(what)") }
                if let cl = try? TestDevices.requireOpenCL() {  // a failure under ITUNE_REQUIRE_OPENCL=1 when missing
                    let dev = try run(x, [1, M, inF], shapeOf, a, b, r: r, on: cl) { X, A, B in
                        try X.linearWithLowRank(quantized: q, a: A, b: B, scale: 2)
                    }
                    assertClose(dev.0, got.0, rtol: 1e-4, atol: 1e-5, "OpenCL forward \(what)")
                    for i in 0..<3 { assertClose(dev.1[i], got.1[i], rtol: 1e-4, atol: 1e-4, "OpenCL gradient \(i) \(what)") }
                }
            }
        }
    }

    func testOpenCLMatchesCPU() throws {
        let cl = try TestDevices.requireOpenCL()
        // 127 tokens over 96 → 160 features, r 8: the thin products take gemm_skinny, the base
        // and the accumulating low-rank product the device's GEMM.
        let (M, inF, outF, r) = (127, 96, 160, 8)
        let x = randomValues(M * inF, seed: 5), a = randomValues(r * inF, seed: 6), b = randomValues(outF * r, seed: 7)
        let wv = randomValues(outF * inF, seed: 8)
        let ref = try fused(x, [M, inF], try Tensor(wv, shape: [outF, inF]), a, b, r: r, scale: 2, on: .cpu)
        let got = try fused(x, [M, inF], try Tensor(wv, shape: [outF, inF], on: cl), a, b, r: r, scale: 2, on: cl)
        assertClose(got.0, ref.0, rtol: 1e-4, atol: 1e-5, "OpenCL forward vs CPU")
        // A's gradient sums 127 tokens of products of sums over 160 features: f32 rounding in
        // another order moves its small entries by ~1e-5.
        for i in 0..<3 { assertClose(got.1[i], ref.1[i], rtol: 1e-4, atol: 1e-4, "OpenCL gradient \(i) vs CPU") }
    }

    func testATrainedWeightOrMismatchedShapesAreRefusedByName() throws {
        let x = try Tensor(randomValues(12, seed: 1), shape: [3, 4])
        let a = try Tensor(randomValues(8, seed: 2), shape: [2, 4]), b = try Tensor(randomValues(10, seed: 3), shape: [5, 2])
        let trained = try Tensor(randomValues(20, seed: 4), shape: [5, 4], requiresGrad: true)
        XCTAssertThrowsError(try x.linearWithLowRank(trained, a: a, b: b, scale: 1)) {
            XCTAssertTrue("\($0)".contains("frozen"), "\($0)")
        }
        let w = try Tensor(randomValues(24, seed: 5), shape: [6, 4])
        XCTAssertThrowsError(try x.linearWithLowRank(w, a: a, b: b, scale: 1)) {
            XCTAssertTrue("\($0)".contains("linearWithLowRank"), "\($0)")
        }
    }
}
