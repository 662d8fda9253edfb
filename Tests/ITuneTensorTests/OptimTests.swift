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
            assertClose(try run(cl), try run(.cpu), rtol: 1e-5, atol: 1e-7, "n \(n)")
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
}
