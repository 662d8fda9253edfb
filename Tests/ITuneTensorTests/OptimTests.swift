import XCTest
@testable import ITuneTensor

final class OptimTests: XCTestCase {
    static let start: [Float] = [0.5, -1.25, 2.0, 0.0, 3.5]
    static let grads: [[Float]] = [[0.1, -0.2, 0.3, 0.0, -1.5], [-0.05, 0.4, 0.3, 1e-4, 2.0], [0.2, 0.2, -0.6, 0.0, 0.5]]
    static let config = AdamWConfig(learningRate: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1)

    func runAdamW(on device: Device) throws -> [Float] {
        let p = try Tensor(Self.start, shape: [5], on: device)
        let m = try Tensor.zeros([5], on: device), v = try Tensor.zeros([5], on: device)
        for (t, g) in Self.grads.enumerated() {
            try p.adamWUpdate(grad: Tensor(g, shape: [5], on: device), m: m, v: v, step: t + 1, config: Self.config)
        }
        return try p.toArray()
    }

    func testAdamWMatchesPyTorch() throws {
        // scripts/make_adamw_golden.py: torch.optim.AdamW(lr=0.01, betas=(0.9, 0.95), weight_decay=0.1), 3 steps.
        let golden: [Float] = [0.47935304, -1.24509752, 1.97478318, -0.0130949495, 3.49482203]
        assertClose(try runAdamW(on: .cpu), golden, rtol: 1e-6, atol: 1e-7, "AdamW vs PyTorch")
    }

    func testAdamWOpenCLMatchesCPU() throws {
        let cl = try TestDevices.requireOpenCL()
        assertClose(try runAdamW(on: cl), try runAdamW(on: .cpu), rtol: 1e-6, atol: 1e-7)
        for n in oddSizes + [100_003] {
            func run(_ d: Device) throws -> [Float] {
                let p = try Tensor(randomValues(n, seed: 1), shape: [n], on: d)
                let m = try Tensor(randomValues(n, seed: 2, scale: 0.1), shape: [n], on: d)
                let v = try Tensor(randomValues(n, seed: 3, scale: 0.01).map(abs), shape: [n], on: d)
                try p.adamWUpdate(grad: Tensor(randomValues(n, seed: 4), shape: [n], on: d), m: m, v: v, step: 7,
                                  config: AdamWConfig(learningRate: 3e-3), learningRate: 1e-3)
                return try p.toArray() + m.toArray() + v.toArray()
            }
            assertClose(try run(cl), try run(.cpu), rtol: 1e-6, atol: 1e-7, "n \(n)")
        }
    }

    /// AdamW in PyTorch's order, written out in Double with the textbook bias corrections
    /// (m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ)); the kernels use the algebraically equal form
    /// PyTorch uses, so the two agree to float rounding.
    static func referenceAdamW(_ p0: [Float], grads: [[Float]], config c: AdamWConfig, lrs: [Float]) -> [Double] {
        var p = p0.map(Double.init)
        var m = [Double](repeating: 0, count: p.count), v = m
        let (b1, b2, eps, wd) = (Double(c.beta1), Double(c.beta2), Double(c.eps), Double(c.weightDecay))
        for (k, g) in grads.enumerated() {
            let t = Double(k + 1), lr = Double(lrs[k])
            for i in p.indices {
                let gi = Double(g[i])
                p[i] -= lr * wd * p[i]
                m[i] = b1 * m[i] + (1 - b1) * gi
                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                let mhat = m[i] / (1 - pow(b1, t)), vhat = v[i] / (1 - pow(b2, t))
                p[i] -= lr * mhat / (vhat.squareRoot() + eps)
            }
        }
        return p
    }

    func testAdamWMatchesADoubleReferenceOverSeveralStepsWithAScheduledLearningRate() throws {
        let n = 257, steps = 6
        let start = randomValues(n, seed: 11)
        let grads = (0..<steps).map { randomValues(n, seed: 20 + UInt64($0), scale: 0.5) }
        let lrs: [Float] = [1e-3, 2e-3, 3e-3, 2.5e-3, 1e-3, 5e-4]  // a warm-up then decay, passed per step
        let config = AdamWConfig(learningRate: 99, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05)
        let want = Self.referenceAdamW(start, grads: grads, config: config, lrs: lrs).map(Float.init)
        for device in [Device.cpu] + [try? TestDevices.requireOpenCL()].compactMap({ $0 }) {
            let p = try Tensor(start, shape: [n], on: device)
            let m = try Tensor.zeros([n], on: device), v = try Tensor.zeros([n], on: device)
            for k in 0..<steps {
                try p.adamWUpdate(grad: Tensor(grads[k], shape: [n], on: device), m: m, v: v, step: k + 1,
                                  config: config, learningRate: lrs[k])
            }
            assertClose(try p.toArray(), want, rtol: 1e-6, atol: 1e-7, "AdamW vs Double reference on \(device)")
        }
    }

    /// Each CPU AdamW kernel this CPU runs (CGemmKernels/optim.c: 4-wide baseline, AVX2, AVX-512)
    /// against the update written out one Float at a time in the same order, bit for bit: over
    /// lengths that leave every vector width a tail, with zero and huge second moments, a
    /// clipping scale and a gradient of zero among the values.
    func testAdamWKernelsMatchAScalarLoopBitForBit() throws {
        let a = AdamWArguments(scale: 0.37, oneMinusBeta1: 1 - 0.9, beta2: 0.999, oneMinusBeta2: 1 - 0.999,
                               bc2Sqrt: 0.0447, eps: 1e-8, decay: 1 - 3e-3 * 0.01, stepSize: 3e-3 / 0.271)
        let kernels = AdamWKernel.allCases.filter(\.isSupported)
        XCTAssertTrue(kernels.contains(.portable))
        for n in [1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 100, 257] {
            var p0 = randomValues(n, seed: 50), g = randomValues(n, seed: 51, scale: 3)
            var m0 = randomValues(n, seed: 52, scale: 0.2), v0 = randomValues(n, seed: 53, scale: 0.05).map(abs)
            g[0] = 0; v0[n / 2] = 0; v0[n - 1] = 1e30; p0[n / 3] = -7.5; m0[(n * 2) / 3] = 1e-20
            // The reference: Optim.swift's formula, one element at a time.
            var wantP = p0, wantM = m0, wantV = v0
            for i in 0..<n {
                let gi = g[i] * a.scale
                let mi = wantM[i] + (gi - wantM[i]) * a.oneMinusBeta1
                let vi = wantV[i] * a.beta2 + a.oneMinusBeta2 * gi * gi
                let denom = vi.squareRoot() / a.bc2Sqrt + a.eps
                wantP[i] = wantP[i] * a.decay - a.stepSize * (mi / denom)
                wantM[i] = mi
                wantV[i] = vi
            }
            for kernel in kernels {
                var p = p0, m = m0, v = v0
                p.withUnsafeMutableBufferPointer { pb in
                    m.withUnsafeMutableBufferPointer { mb in
                        v.withUnsafeMutableBufferPointer { vb in
                            g.withUnsafeBufferPointer { gb in
                                kernel.update(pb.baseAddress!, gb.baseAddress!, mb.baseAddress!, vb.baseAddress!, n, a)
                            }
                        }
                    }
                }
                XCTAssertEqual(p.map(\.bitPattern), wantP.map(\.bitPattern), "\(kernel) p, n \(n)")
                XCTAssertEqual(m.map(\.bitPattern), wantM.map(\.bitPattern), "\(kernel) m, n \(n)")
                XCTAssertEqual(v.map(\.bitPattern), wantV.map(\.bitPattern), "\(kernel) v, n \(n)")
            }
        }
    }

    func testAdamWRejectsMismatchedShapesAndStepZero() throws {
        let p = try Tensor.zeros([4]), m = try Tensor.zeros([4]), v = try Tensor.zeros([4])
        XCTAssertThrowsError(try p.adamWUpdate(grad: Tensor.zeros([5]), m: m, v: v, step: 1, config: AdamWConfig()))
        XCTAssertThrowsError(try p.adamWUpdate(grad: Tensor.zeros([4]), m: m, v: v, step: 0, config: AdamWConfig()))
    }

    func testClipGradientsNormMatchesADoubleReferenceAndScalesOnlyAboveMaxNorm() throws {
        let shapes = [[7], [33, 5], [127], [1], [257, 3]]
        let values = shapes.enumerated().map { randomValues($0.element.reduce(1, *), seed: 40 + UInt64($0.offset), scale: 2) }
        let want = values.joined().reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        for device in [Device.cpu] + [try? TestDevices.requireOpenCL()].compactMap({ $0 }) {
            for maxNorm in [Float(want) * 0.25, Float(want) * 4] {
                let params = try shapes.map { try Tensor.zeros($0, on: device, requiresGrad: true) }
                // grad(p) = values, through Σ p·values.
                for (p, vs) in zip(params, values) { try (p * Tensor(vs, shape: p.shape, on: device)).sum().backward() }
                let noGradParam = try Tensor.zeros([9], on: device, requiresGrad: true)
                let total = try clipGradients(params + [noGradParam], maxNorm: maxNorm)
                XCTAssertEqual(Double(total), want, accuracy: 1e-5 * want, "\(device)")
                XCTAssertNil(noGradParam.grad)
                let factor = Double(maxNorm) < want ? Double(maxNorm) / (Double(total) + 1e-6) : 1
                for (p, vs) in zip(params, values) {
                    assertClose(try p.grad!.toArray(), vs.map { Float(Double($0) * factor) }, rtol: 1e-5, atol: 1e-7,
                                "\(device) maxNorm \(maxNorm)")
                }
                if Double(maxNorm) < want {
                    let after = try params.reduce(0.0) { try $0 + Double($1.grad!.sumOfSquares()) }.squareRoot()
                    XCTAssertEqual(after, Double(maxNorm), accuracy: 1e-4 * Double(maxNorm), "\(device): clipped norm")
                }
            }
        }
    }

    func testClipGradientsScalesAGradientSharedByTwoParametersOnce() throws {
        // The backward of a + b hands the same gradient tensor to both inputs; clipping must
        // count it once per parameter in the norm but scale the shared buffer only once.
        for device in [Device.cpu] + [try? TestDevices.requireOpenCL()].compactMap({ $0 }) {
            let a = try Tensor.zeros([2], on: device, requiresGrad: true)
            let b = try Tensor.zeros([2], on: device, requiresGrad: true)
            try ((a + b) * Tensor([3, 4], shape: [2], on: device)).sum().backward()
            let total = try clipGradients([a, b], maxNorm: 1)
            XCTAssertEqual(total, Float(50.0.squareRoot()), accuracy: 1e-5)
            let f = 1 / (Float(50.0.squareRoot()) + 1e-6)
            assertClose(try a.grad!.toArray(), [3 * f, 4 * f], rtol: 1e-6, "\(device) a")
            assertClose(try b.grad!.toArray(), [3 * f, 4 * f], rtol: 1e-6, "\(device) b")
        }
    }

    func testClipGradientsMatchesPyTorch() throws {
        for device in [Device.cpu] + [try? TestDevices.requireOpenCL()].compactMap({ $0 }) {
            let a = try Tensor.zeros([3], on: device, requiresGrad: true)
            let b = try Tensor.zeros([2, 2], on: device, requiresGrad: true)
            let frozen = try Tensor.zeros([4], on: device)
            try (a * Tensor([3, 0, -4], shape: [3], on: device)).sum().backward()
            try (b * Tensor([1, 2, -2, 10], shape: [2, 2], on: device)).sum().backward()
            // scripts/make_adamw_golden.py: clip_grad_norm_(max_norm=5) → 11.5758371.
            let total = try clipGradients([a, b, frozen], maxNorm: 5)
            XCTAssertEqual(total, 11.5758371, accuracy: 1e-5, "\(device)")
            assertClose(try a.grad!.toArray(), [1.29580259, 0, -1.72773671], rtol: 1e-6, "\(device)")
            assertClose(try b.grad!.toArray(), [0.431934178, 0.863868356, -0.863868356, 4.31934166], rtol: 1e-6, "\(device)")
            // Below the threshold nothing changes.
            XCTAssertEqual(try clipGradients([a, b], maxNorm: 100), 5, accuracy: 1e-4)
            assertClose(try a.grad!.toArray(), [1.29580259, 0, -1.72773671], rtol: 1e-6, "\(device)")
        }
    }

    func testSumOfSquaresOpenCLMatchesCPU() throws {
        let cl = try TestDevices.requireOpenCL()
        for n in oddSizes + [4096, 4097, 1_000_001] {
            let values = randomValues(n, seed: UInt64(n))
            let want = values.reduce(0.0) { $0 + Double($1) * Double($1) }
            let cpu = try Tensor(values, shape: [n]).sumOfSquares()
            let got = try Tensor(values, shape: [n], on: cl).sumOfSquares()
            XCTAssertEqual(Double(cpu), want, accuracy: 1e-5 * want)
            XCTAssertEqual(got, cpu, accuracy: 1e-4 * cpu)
        }
    }
    /// The CPU's chunked sums (32 lanes per chunk, then the chunks) against a Double loop, at
    /// lengths around the lanes and the 4096-element chunk.
    func testCPUSumAndSumOfSquaresMatchADoubleLoop() throws {
        for n in [1, 7, 31, 32, 33, 95, 4095, 4096, 4097, 70_001] {
            let values = randomValues(n, seed: UInt64(n) + 7)
            let sum = values.reduce(0.0) { $0 + Double($1) }, squares = values.reduce(0.0) { $0 + Double($1) * Double($1) }
            let t = try Tensor(values, shape: [n])
            XCTAssertEqual(Double(try t.sum().item()), sum, accuracy: 1e-5 * max(1, squares.squareRoot()), "sum n \(n)")
            XCTAssertEqual(Double(try t.sumOfSquares()), squares, accuracy: 1e-5 * squares, "squares n \(n)")
        }
    }
}
