import XCTest
@testable import ITuneTensor

final class NormTests: XCTestCase {
    /// The row reductions the CPU norms use (cpuChunkSum, cpuDot with and without a third factor
    /// and a centre) against Double, at lengths that end in every
    /// kind of tail (32-lane blocks, 8-lane steps, single values).
    func testRowReductionsMatchDouble() {
        for n in [0, 1, 7, 8, 9, 31, 32, 33, 63, 100, 576, 897] {
            let a = randomValues(n, seed: 41), b = randomValues(n, seed: 42), c = randomValues(n, seed: 43).map { $0 + 3 }
            let m: Float = 2.75
            var want = (sum: 0.0, squares: 0.0, dot: 0.0, dot3: 0.0, centred: 0.0)
            for i in 0..<n {
                let (x, y, z) = (Double(a[i]), Double(b[i]), Double(c[i]))
                want.sum += x; want.squares += x * x; want.dot += x * y; want.dot3 += x * y * z
                want.centred += x * y * (z - Double(m))
            }
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeBufferPointer { cp in
                let (pa, pb, pc) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
                let got: [(String, Float, Double)] = [
                    ("sum", cpuChunkSum(pa, n, squared: false), want.sum),
                    ("sum of squares", cpuChunkSum(pa, n, squared: true), want.squares),
                    ("dot", cpuDot(pa, pb, n), want.dot),
                    ("dot times c", cpuDot(pa, pb, n, times: pc), want.dot3),
                    ("dot times c − m", cpuDot(pa, pb, n, times: pc, centre: m), want.centred),
                ]
                for (name, value, reference) in got {
                    XCTAssertEqual(Double(value), reference, accuracy: 1e-5 * max(1, Double(n)), "\(name), n \(n)")
                }
            } } }
        }
    }

    func testRMSNormMatchesHandComputedValues() throws {
        // mean(x²) = (1 + 4 + 9 + 16) / 4 = 7.5
        let x = try Tensor([1, 2, 3, 4], shape: [1, 4])
        let w = try Tensor([1, 0.5, 2, -1], shape: [4])
        let y = try x.rmsNorm(weight: w, eps: 1e-6).toArray()
        let r = 1 / (7.5 + 1e-6).squareRoot()
        let expected = [1 * r * 1, 2 * r * 0.5, 3 * r * 2, 4 * r * -1].map { Float($0) }
        assertClose(y, expected, rtol: 1e-6, "rmsNorm")
    }

    func testLayerNormMatchesHandComputedValues() throws {
        // Row 0: mean 2.5, biased variance 1.25. Row 1 is constant: x̂ = 0, so y = bias.
        let x = try Tensor([1, 2, 3, 4, 10, 10, 10, 10], shape: [2, 4])
        let w = try Tensor([1, 2, 1, 1], shape: [4])
        let b = try Tensor([0, 0, 1, -3], shape: [4])
        let y = try x.layerNorm(weight: w, bias: b, eps: 1e-5).toArray()
        let r = 1 / (1.25 + 1e-5).squareRoot()
        let expected = [-1.5 * r, -0.5 * r * 2, 0.5 * r + 1, 1.5 * r - 3, 0, 0, 1, -3].map { Float($0) }
        assertClose(y, expected, rtol: 1e-6, "layerNorm")
    }

    func testLayerNormIsAccurateWhenTheMeanIsLarge() throws {
        // std ≈ 0.023 around a mean of 1000: a one-pass E[x²] − E[x]² in f32 (ulp of 1e6 is 0.06)
        // would lose every digit of the variance. The two-pass result is off only by the f32
        // rounding of the mean (ulp of the 64000 sum / 64), ≈ 0.003 in x̂.
        let vals: [Float] = (0..<64).map { 1000 + Float($0 % 8) * 0.01 }
        let y = try Tensor(vals, shape: [1, 64]).layerNorm(weight: .full([64], 1), bias: .zeros([64]), eps: 1e-5).toArray()
        let mean = vals.reduce(0.0) { $0 + Double($1) } / 64
        let variance = vals.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / 64
        let expected = vals.map { Float((Double($0) - mean) / (variance + 1e-5).squareRoot()) }
        assertClose(y, expected, rtol: 1e-2, atol: 1e-2, "layerNorm with mean 1000")
    }

    func testNormsRejectWeightsOfTheWrongShape() throws {
        let x = try Tensor.zeros([2, 4])
        XCTAssertThrowsError(try x.rmsNorm(weight: .zeros([3]), eps: 1e-5))
        XCTAssertThrowsError(try x.layerNorm(weight: .zeros([4]), bias: .zeros([2, 4]), eps: 1e-5))
    }

    func testRMSNormBackwardMatchesFiniteDifferences() throws {
        try checkGradients([[3, 7], [7]]) { try $0[0].rmsNorm(weight: $0[1], eps: 1e-5) }
        try checkGradients([[2, 3, 5], [5]], seed: 3) { try $0[0].rmsNorm(weight: $0[1], eps: 1e-5) }
        // Only the input requires a gradient (a frozen norm weight under LoRA).
        try checkGradients([[3, 6], [6]], requires: [true, false]) { try $0[0].rmsNorm(weight: $0[1], eps: 1e-5) }
    }

    func testLayerNormBackwardMatchesFiniteDifferences() throws {
        try checkGradients([[3, 7], [7], [7]]) { try $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-5) }
        try checkGradients([[2, 2, 6], [6], [6]], seed: 5) { try $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-5) }
        try checkGradients([[3, 5], [5], [5]], requires: [false, true, true]) {
            try $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-5)
        }
    }

    func testRMSNormOpenCLMatchesCPU() throws {
        for c in oddSizes + [1024] {
            for n in [1, 7, 33] {
                try compareBackends([[n, c], [c]], rtol: 1e-4, atol: 1e-5) { try $0[0].rmsNorm(weight: $0[1], eps: 1e-5) }
            }
        }
        // More rows than one block of the weight-gradient column sum (64 rows), last block partial.
        for c in [7, 257] {
            try compareBackends([[2, 100, c], [c]], rtol: 1e-4, atol: 1e-5) { try $0[0].rmsNorm(weight: $0[1], eps: 1e-5) }
        }
    }

    func testLayerNormOpenCLMatchesCPU() throws {
        for c in oddSizes + [1024] {
            for n in [1, 7, 33] {
                try compareBackends([[n, c], [c], [c]], rtol: 1e-4, atol: 1e-5) {
                    try $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-5)
                }
            }
        }
        for c in [7, 257] {
            try compareBackends([[2, 100, c], [c], [c]], rtol: 1e-4, atol: 1e-5) {
                try $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-5)
            }
        }
    }

    func testNormWeightGradientsAreDeterministicOnOpenCL() throws {
        let cl = try TestDevices.requireOpenCL()
        func gradients() throws -> [[Float]] {
            let x = try Tensor.randn([300, 33], seed: 11, on: cl, requiresGrad: true)
            let w = try Tensor.randn([33], seed: 12, on: cl, requiresGrad: true)
            let b = try Tensor.randn([33], seed: 13, on: cl, requiresGrad: true)
            let dy = try Tensor.randn([300, 33], seed: 14, on: cl)
            try (x.rmsNorm(weight: w, eps: 1e-5) + x.layerNorm(weight: w, bias: b, eps: 1e-5)).backward(seed: dy)
            return try [x.grad!.toArray(), w.grad!.toArray(), b.grad!.toArray()]
        }
        let first = try gradients(), second = try gradients()
        for (a, b) in zip(first, second) {
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern))
        }
    }
}
