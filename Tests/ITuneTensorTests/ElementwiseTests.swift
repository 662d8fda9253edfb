import XCTest
@testable import ITuneTensor

final class ElementwiseTests: XCTestCase {
    func testAddBroadcastMatchesHandComputedValues() throws {
        let a = try Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let b = try Tensor([10, 20, 30], shape: [3])
        XCTAssertEqual(try (a + b).toArray(), [11, 22, 33, 14, 25, 36])
        XCTAssertEqual(try (a * b).toArray(), [10, 40, 90, 40, 100, 180])
        XCTAssertThrowsError(try a + Tensor([1, 2], shape: [2]))
    }

    func testElementwiseBackwardMatchesFiniteDifferences() throws {
        try checkGradients([[3, 5], [5]]) { try $0[0] + $0[1] }
        try checkGradients([[3, 5], [5]]) { try $0[0] * $0[1] }
        try checkGradients([[4, 6], [4, 6]]) { try $0[0] * $0[1] }
        // b with the same count but fewer dims than a: its gradient keeps b's shape.
        try checkGradients([[1, 3, 4], [3, 4]]) { try $0[0] + $0[1] }
        try checkGradients([[1, 3, 4], [3, 4]]) { try $0[0] * $0[1] }
        try checkGradients([[2, 7]]) { try $0[0].scaled(by: -2.5) }
        try checkGradients([[3, 7]]) { try $0[0].silu() }
        try checkGradients([[3, 7]]) { try $0[0].gelu() }
        try checkGradients([[3, 7]]) { try $0[0].geluExact() }
        try checkGradients([[3, 7], [3, 7]]) { try Tensor.swiglu(gate: $0[0], up: $0[1]) }
        try checkGradients([[3, 7]]) { try $0[0].sum() }
        try checkGradients([[3, 7]]) { try $0[0].mean() }
        try checkGradients([[2, 6]]) { try $0[0].reshaped([3, 4]).silu() }
    }

    func testGeluMatchesTanhFormula() throws {
        let x: [Float] = [-3, -1, -0.5, 0, 0.5, 1, 3]
        let y = try Tensor(x, shape: [7]).gelu().toArray()
        for (xi, yi) in zip(x, y) {
            let d = Double(xi)
            let ref = 0.5 * d * (1 + tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
            XCTAssertEqual(Double(yi), ref, accuracy: 1e-6)
        }
    }

    func testExactGeluMatchesTheErfFormula() throws {
        // x·Φ(x) in Double. (torch's float gelu gives -0.004050225 at -3, 1.3e-4 off the exact
        // -0.0040496944; elsewhere it agrees to 1e-7.)
        let x: [Float] = [-5, -3, -1, -0.5, 0, 0.5, 1, 3]
        let exact = x.map { Float(0.5 * Double($0) * erfc(-Double($0) / 2.0.squareRoot())) }
        XCTAssertEqual(exact[1], -0.0040496944, accuracy: 1e-9)
        assertClose(try Tensor(x, shape: [8]).geluExact().toArray(), exact, rtol: 2e-6, atol: 1e-9)
    }

    func testElementwiseOpenCLMatchesCPU() throws {
        for n in oddSizes {
            try compareBackends([[3, n], [n]], rtol: 1e-5) { try $0[0] + $0[1] }
            try compareBackends([[3, n], [n]], rtol: 1e-5) { try $0[0] * $0[1] }
            try compareBackends([[2, n]], rtol: 1e-5) { try $0[0].scaled(by: 0.37) }
            try compareBackends([[2, n]], rtol: 1e-5) { try $0[0].silu() }
            try compareBackends([[2, n]], rtol: 1e-5) { try $0[0].gelu() }
            try compareBackends([[2, n]], rtol: 1e-5, atol: 1e-6) { try $0[0].geluExact() }
            try compareBackends([[2, n], [2, n]], rtol: 1e-5) { try Tensor.swiglu(gate: $0[0], up: $0[1]) }
        }
    }

    /// The gradient of a sum or mean is the constant everywhere, also where the fill is split
    /// among threads (100,003 elements: chunks that do not divide it).
    func testLargeSumAndMeanGradientsAreConstant() throws {
        let n = 100_003
        for mean in [false, true] {
            let x = try Tensor(randomValues(n, seed: 9), shape: [n], requiresGrad: true)
            try (mean ? x.mean() : x.sum()).scaled(by: 3).backward()
            let want: Float = mean ? 3 / Float(n) : 3
            let g = try x.grad!.toArray()
            XCTAssertEqual(g.count, n)
            XCTAssertEqual(g[0], want, accuracy: want * 1e-6, "mean \(mean)")
            XCTAssertEqual(g.filter { $0 != g[0] }.count, 0, "mean \(mean): entries that differ from the first")
        }
    }

    func testReductionsOpenCLMatchCPU() throws {
        for n in oddSizes + [4096, 10_000] {
            try compareBackends([[n]], rtol: 1e-4) { try $0[0].sum() }
            try compareBackends([[n, 3]], rtol: 1e-4) { try $0[0].mean() }
        }
    }
}

final class SliceTests: XCTestCase {
    func testColumnsPicksTheRightValues() throws {
        let x = try Tensor([1, 2, 3, 4, 5, 6, 7, 8], shape: [2, 4])
        let parts = try x.split(lastDim: [1, 3])
        XCTAssertEqual(try parts[0].toArray(), [1, 5])
        XCTAssertEqual(try parts[1].toArray(), [2, 3, 4, 6, 7, 8])
        XCTAssertThrowsError(try x.split(lastDim: [1, 2]))
    }

    func testColumnsBackwardMatchesFiniteDifferences() throws {
        try checkGradients([[3, 7]]) { try $0[0].columns(2, 4) }
        try checkGradients([[2, 9]]) { x in
            let p = try x[0].split(lastDim: [3, 3, 3])
            return try p[0] * p[1] + p[2]
        }
    }

    func testColumnsOpenCLMatchesCPU() throws {
        for n in oddSizes {
            try compareBackends([[3, n + 2]], rtol: 1e-6) { try $0[0].columns(1, n) }
        }
    }
}
