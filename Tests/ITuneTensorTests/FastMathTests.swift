import XCTest
@testable import ITuneTensor

final class FastMathTests: XCTestCase {
    func testSimdExpIsWithinThreeTenthsOfAMillionthOfExp() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88.3 {
            let v = SIMD8<Float>((0..<8).map { x + Float($0) * 0.0137 })
            let e = simdExp(v)
            for k in 0..<8 {
                let want = Foundation.exp(Double(v[k]))
                worst = max(worst, Float(abs(Double(e[k]) - want) / want))
            }
            x += 0.11
        }
        XCTAssertLessThan(worst, 3e-7)
    }

    func testSimdExpEdges() {
        let e = simdExp(SIMD8<Float>(-.infinity, -100, -87.5, 0, 88.3, 89, .infinity, -1e-30))
        XCTAssertEqual(e[0], 0)
        XCTAssertEqual(e[1], 0)
        XCTAssertEqual(e[2], 0)
        XCTAssertEqual(e[3], 1)
        XCTAssertEqual(e[4], expf(88.3), accuracy: expf(88.3) * 3e-7)
        XCTAssertGreaterThan(e[5], 2e38, "saturates")
        XCTAssertGreaterThan(e[6], 2e38, "saturates")
        XCTAssertEqual(e[7], 1)
        // NaN reaches the result through the shift.
        var y = [Float](repeating: 0, count: 9)
        let x: [Float] = [1, 2, .nan, 4, 5, 6, 7, 8, 9]
        let m = x.withUnsafeBufferPointer { maxOf($0.baseAddress!, 9) }
        XCTAssertTrue(m.isNaN)
        let s = x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { expShifted(xp.baseAddress!, $0.baseAddress!, 9, shift: m) } }
        XCTAssertTrue(s.isNaN && y.allSatisfy(\.isNaN))
        XCTAssertEqual([Float.infinity, -.infinity, 3].withUnsafeBufferPointer { maxOf($0.baseAddress!, 3) }, .infinity)
    }

    func testExpShiftedAndSumMatchTheScalarLoop() {
        for n in [0, 1, 7, 8, 9, 33, 257] {
            let x = (0..<n).map { Float($0 % 13) * 0.7 - 4 }
            var y = [Float](repeating: 0, count: n)
            let s = x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { expShifted(xp.baseAddress!, $0.baseAddress!, n, shift: 1.5) } }
            let want = x.map { expf($0 - 1.5) }
            for i in 0..<n { XCTAssertEqual(y[i], want[i], accuracy: want[i] * 3e-7) }
            XCTAssertEqual(s, want.reduce(0, +), accuracy: max(1e-6, want.reduce(0, +) * 1e-6))
            let s2 = x.withUnsafeBufferPointer { sumExpShifted($0.baseAddress!, n, shift: 1.5) }
            XCTAssertEqual(s2, s, accuracy: max(1e-6, s * 1e-6))
            XCTAssertEqual(x.withUnsafeBufferPointer { maxOf($0.baseAddress!, n) }, x.max() ?? -.infinity)
        }
    }
}
