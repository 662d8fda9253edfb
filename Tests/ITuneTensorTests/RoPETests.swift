import Foundation
import XCTest
@testable import ITuneTensor

final class RoPETests: XCTestCase {
    /// out in double precision from the formula: for i < D/2, angle = p / θ^(2i/D),
    /// out[i] = x1·cos − x2·sin, out[i + D/2] = x2·cos + x1·sin. x is (B,T,H,D), pos (B,T).
    func referenceRoPE(_ x: [Float], shape: [Int], positions: [Int32], theta: Double) -> [Float] {
        let (B, T, H, D) = (shape[0], shape[1], shape[2], shape[3])
        let half = D / 2
        var out = [Float](repeating: 0, count: x.count)
        for bt in 0..<(B * T) {
            let p = Double(positions[bt])
            for h in 0..<H {
                let base = (bt * H + h) * D
                for i in 0..<half {
                    let angle = p / pow(theta, Double(2 * i) / Double(D))
                    let x1 = Double(x[base + i]), x2 = Double(x[base + i + half])
                    out[base + i] = Float(x1 * cos(angle) - x2 * sin(angle))
                    out[base + i + half] = Float(x2 * cos(angle) + x1 * sin(angle))
                }
            }
        }
        return out
    }

    func testRoPETableHoldsHandComputedAngles() throws {
        // D = 4, θ = 10000: inv_freq = [1, 1/100].
        let table = try RoPETable(headDim: 4, maxPositions: 4, theta: 10_000, on: .cpu)
        XCTAssertEqual(table.cos.shape, [4, 2])
        let c = try table.cos.toArray(), s = try table.sin.toArray()
        XCTAssertEqual(c[0], 1)
        XCTAssertEqual(s[1], 0)
        XCTAssertEqual(c[6], -0.9899925, accuracy: 1e-6)   // cos(3)
        XCTAssertEqual(s[6], 0.14112, accuracy: 1e-6)      // sin(3)
        XCTAssertEqual(c[7], 0.99955003, accuracy: 1e-7)   // cos(0.03)
        XCTAssertEqual(s[7], 0.0299955, accuracy: 1e-7)    // sin(0.03)
    }

    func testRoPETableFromInverseFrequenciesMatchesTheThetaForm() throws {
        let inv = (0..<8).map { i in 1 / powf(500_000, Float(2 * i) / 16) }
        let a = try RoPETable(headDim: 16, maxPositions: 50, theta: 500_000, on: .cpu)
        let b = try RoPETable(inverseFrequencies: inv, maxPositions: 50, on: .cpu)
        XCTAssertEqual(b.headDim, 16)
        XCTAssertEqual(try a.cos.toArray(), try b.cos.toArray())
        XCTAssertEqual(try a.sin.toArray(), try b.sin.toArray())
    }

    func testRoPEAtPositionZeroIsIdentity() throws {
        let table = try RoPETable(headDim: 8, maxPositions: 16, theta: 10_000, on: .cpu)
        let vals = randomValues(2 * 3 * 2 * 8, seed: 4)
        let x = try Tensor(vals, shape: [2, 3, 2, 8])
        let y = try x.rope(table, positions: Tensor(indices: [0, 0, 0], shape: [3])).toArray()
        XCTAssertEqual(y, vals)
    }

    func testRoPEMatchesDoublePrecisionFormula() throws {
        let shape = [2, 3, 2, 8]
        let positions: [Int32] = [0, 1, 5, 7, 100, 2]
        let table = try RoPETable(headDim: 8, maxPositions: 128, theta: 10_000, on: .cpu)
        let vals = randomValues(shape.reduce(1, *), seed: 9)
        let y = try Tensor(vals, shape: shape).rope(table, positions: Tensor(indices: positions, shape: [2, 3])).toArray()
        assertClose(y, referenceRoPE(vals, shape: shape, positions: positions, theta: 10_000), rtol: 1e-5, atol: 2e-6, "rope")
    }

    func testRoPEWithSharedPositionsEqualsTheSamePositionsPerBatchRow() throws {
        let table = try RoPETable(headDim: 6, maxPositions: 10, theta: 10_000, on: .cpu)
        let x = try Tensor.randn([2, 4, 3, 6], seed: 2)
        let shared = try x.rope(table, positions: Tensor(indices: [3, 1, 4, 9], shape: [4])).toArray()
        let batched = try x.rope(table, positions: Tensor(indices: [3, 1, 4, 9, 3, 1, 4, 9], shape: [2, 4])).toArray()
        XCTAssertEqual(shared, batched)
    }

    func testRoPERejectsPositionsOutsideTheTable() throws {
        var devices: [Device] = [.cpu]
        if let cl = TestDevices.opencl { devices.append(cl) }
        for device in devices {
            let table = try RoPETable(headDim: 4, maxPositions: 8, theta: 10_000, on: device)
            let x = try Tensor.zeros([1, 2, 1, 4], on: device)
            for bad: Int32 in [8, -1] {
                XCTAssertThrowsError(try x.rope(table, positions: Tensor(indices: [0, bad], shape: [2], on: device))) { error in
                    let text = "\(error)"
                    XCTAssertTrue(text.contains("position id \(bad)") && text.contains("8 positions"), text)
                }
            }
            XCTAssertThrowsError(try x.rope(table, positions: Tensor(indices: [0, 1, 2], shape: [3], on: device)))
        }
    }

    func testRoPEBackwardMatchesFiniteDifferences() throws {
        let table = try RoPETable(headDim: 8, maxPositions: 32, theta: 10_000, on: .cpu)
        let batched = try Tensor(indices: [0, 3, 31, 5, 1, 17], shape: [2, 3])
        try checkGradients([[2, 3, 2, 8]]) { try $0[0].rope(table, positions: batched) }
        let small = try RoPETable(headDim: 4, maxPositions: 16, theta: 10_000, on: .cpu)
        let shared = try Tensor(indices: [2, 9], shape: [2])
        try checkGradients([[1, 2, 3, 4]], seed: 6) { try $0[0].rope(small, positions: shared) }
    }

    func testRoPEOpenCLMatchesCPU() throws {
        for d in [2, 8, 34, 128, 258] {
            for t in [1, 7, 33] {
                let maxPositions = 64
                var g = SplitMix64(seed: UInt64(d * 100 + t))
                let positions = (0..<(2 * t)).map { _ in Int32(g.next() % UInt64(maxPositions)) }
                try compareBackends([[2, t, 3, d]], rtol: 1e-5) { inputs in
                    let device = inputs[0].device
                    let table = try RoPETable(headDim: d, maxPositions: maxPositions, theta: 10_000, on: device)
                    return try inputs[0].rope(table, positions: Tensor(indices: positions, shape: [2, t], on: device))
                }
            }
        }
    }
}
