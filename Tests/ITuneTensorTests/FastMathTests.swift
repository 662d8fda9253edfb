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

    /// The versions of the row functions this CPU runs: the Swift one always, the C AVX2 + FMA
    /// one (rowmath.c) where the CPU has it.
    var versions: [Bool] { rowMathAVX2 ? [false, true] : [false] }

    /// The versions of the softmax and SwiGLU row functions (max, exp, sum of exp, scale, the
    /// softmax backward, SwiGLU) this CPU runs, as (avx2, avx512): Swift, AVX2 + FMA, and AVX-512
    /// where the CPU has it.
    var softmaxVersions: [(Bool, Bool)] {
        versions.map { ($0, false) } + (rowMathAVX2 && GemmKernelKind.avx512.isSupported ? [(true, true)] : [])
    }

    /// Every row function, both versions, against Double on odd lengths (tails of 1…15 lanes),
    /// with values over the whole range of exp, and the edge values.
    func testRowFunctionsOfBothVersionsMatchDouble() {
        var rng = SystemRandomNumberGenerator()
        for (avx2, avx512) in softmaxVersions {
            for n in [1, 3, 8, 15, 16, 17, 31, 64, 129, 1000] {
                var x = (0..<n).map { _ in Float.random(in: -30...30, using: &rng) }
                if n > 3 { x[1] = -.infinity; x[2] = -100 }
                let version = "avx2 \(avx2) avx512 \(avx512)"
                let m = x.withUnsafeBufferPointer { maxOf($0.baseAddress!, n, avx2: avx2, avx512: avx512) }
                XCTAssertEqual(m, x.max()!, "max n \(n) \(version)")
                var y = [Float](repeating: -1, count: n + 1)  // one past n: must stay untouched
                let s = x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer {
                        expShifted(xp.baseAddress!, $0.baseAddress!, n, shift: m, avx2: avx2, avx512: avx512)
                    }
                }
                // The argument is x − m rounded to Float, as the functions compute it.
                let want = x.map { Foundation.exp(Double($0 - m)) }
                for i in 0..<n { XCTAssertEqual(Double(y[i]), want[i], accuracy: max(want[i] * 3e-7, 1e-38), "exp[\(i)] n \(n) \(version)") }
                XCTAssertEqual(y[n], -1, "wrote past n (\(version))")
                let total = want.reduce(0, +)
                XCTAssertEqual(Double(s), total, accuracy: total * 1e-6)
                let s2 = x.withUnsafeBufferPointer { sumExpShifted($0.baseAddress!, n, shift: m, avx2: avx2, avx512: avx512) }
                XCTAssertEqual(Double(s2), total, accuracy: total * 1e-6)
                // Softmax: scale, then the backward row.
                y.withUnsafeMutableBufferPointer { scaleRow($0.baseAddress!, n, 1 / s, avx2: avx2, avx512: avx512) }
                XCTAssertEqual(y[n], -1)
                let p = want.map { $0 / total }
                for i in 0..<n { XCTAssertEqual(Double(y[i]), p[i], accuracy: p[i] * 2e-6 + 1e-30) }
                let dy = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
                var dx = [Float](repeating: 7, count: n + 1)
                y.withUnsafeBufferPointer { yp in dy.withUnsafeBufferPointer { dp in dx.withUnsafeMutableBufferPointer {
                    softmaxBackwardRow(yp.baseAddress!, dp.baseAddress!, $0.baseAddress!, n, avx2: avx2, avx512: avx512)
                } } }
                let dot = (0..<n).reduce(0.0) { $0 + Double(y[$1]) * Double(dy[$1]) }
                for i in 0..<n {
                    XCTAssertEqual(Double(dx[i]), Double(y[i]) * (Double(dy[i]) - dot), accuracy: 1e-6, "softmax dx[\(i)]")
                }
                XCTAssertEqual(dx[n], 7)
            }
        }
    }

    /// exp of both versions (Swift and rowmath.c's) over its whole range, within 3·10⁻⁷ of Double,
    /// and at its edges: 0 at and below −87.34 (−inf too), 1 at 0, NaN kept, saturation above 88.37.
    func testRowExpOfBothVersionsOverTheWholeRangeAndEdges() {
        let x = stride(from: Float(-87), to: 88.3, by: 0.00731).map { $0 }
        for (avx2, avx512) in softmaxVersions {
            var y = [Float](repeating: 0, count: x.count)
            _ = x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer {
                    expShifted(xp.baseAddress!, $0.baseAddress!, x.count, shift: 0, avx2: avx2, avx512: avx512)
                }
            }
            var worst = 0.0
            for i in x.indices {
                let want = Foundation.exp(Double(x[i]))
                worst = max(worst, abs(Double(y[i]) - want) / want)
            }
            XCTAssertLessThan(worst, 3e-7, "avx2 \(avx2) avx512 \(avx512)")
            let edges: [Float] = [-.infinity, -100, -87.5, 0, -1e-30, .nan, 89, .infinity, 1e-30]
            var e = [Float](repeating: 5, count: edges.count)
            _ = edges.withUnsafeBufferPointer { xp in
                e.withUnsafeMutableBufferPointer {
                    expShifted(xp.baseAddress!, $0.baseAddress!, edges.count, shift: 0, avx2: avx2, avx512: avx512)
                }
            }
            XCTAssertEqual(Array(e[0..<3]), [0, 0, 0], "avx2 \(avx2) avx512 \(avx512)")
            XCTAssertEqual([e[3], e[4], e[8]], [1, 1, 1], "exp(0) is 1 exactly (avx2 \(avx2))")
            XCTAssertTrue(e[5].isNaN, "avx2 \(avx2) avx512 \(avx512)")
            XCTAssertGreaterThan(e[6], 2e38, "saturates (avx2 \(avx2))")
            XCTAssertGreaterThan(e[7], 2e38, "saturates (avx2 \(avx2))")
        }
    }

    /// The AVX-512 exp is the AVX2 one lane for lane: the same values, bit for bit, over the whole
    /// range and its edges (one macro body for both widths in rowmath.c; this fails if they part).
    func testAVX512ExpEqualsTheAVX2ExpBitForBit() throws {
        guard softmaxVersions.contains(where: { $0.1 }) else { throw XCTSkip("no AVX-512 on this CPU") }
        var x = stride(from: Float(-90), to: 90, by: 0.0037).map { $0 }
        x += [.nan, -.infinity, .infinity, 0, -0.0, 1e-30]
        func exp(avx512: Bool) -> [UInt32] {
            var y = [Float](repeating: 0, count: x.count)
            _ = x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer {
                    expShifted(xp.baseAddress!, $0.baseAddress!, x.count, shift: 0, avx2: true, avx512: avx512)
                }
            }
            return y.map(\.bitPattern)
        }
        let wide = exp(avx512: true), narrow = exp(avx512: false)
        let differing = x.indices.filter { wide[$0] != narrow[$0] }
        XCTAssertTrue(differing.isEmpty, "\(differing.count) values differ, first at x = \(differing.first.map { x[$0] } ?? 0)")
    }

    /// The AVX-512 softmax backward row and SwiGLU give the AVX2 functions' bits: lengths with
    /// every tail, values over the sigmoid's whole range (saturated at both ends) and its edges.
    func testAVX512SoftmaxBackwardAndSwigluEqualTheAVX2BitForBit() throws {
        guard softmaxVersions.contains(where: { $0.1 }) else { throw XCTSkip("no AVX-512 on this CPU") }
        var rng = SystemRandomNumberGenerator()
        for n in [1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 257, 1000] {
            var g = (0..<n).map { _ in Float.random(in: -100...100, using: &rng) }
            if n >= 4 { g[0] = .infinity; g[1] = -.infinity; g[2] = 0; g[3] = .nan }
            let u = (0..<n).map { _ in Float.random(in: -3...3, using: &rng) }
            let dy = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let y = (0..<n).map { _ in Float.random(in: 0...1, using: &rng) }
            func run(avx512: Bool) -> [[UInt32]] {
                var out = [Float](repeating: 0, count: n), dg = out, du = out, dx = out
                g.withUnsafeBufferPointer { gp in u.withUnsafeBufferPointer { up in dy.withUnsafeBufferPointer { dp in
                    out.withUnsafeMutableBufferPointer {
                        swigluForwardCPU(gp.baseAddress!, up.baseAddress!, $0.baseAddress!, n, avx2: true, avx512: avx512)
                    }
                    dg.withUnsafeMutableBufferPointer { dgp in du.withUnsafeMutableBufferPointer {
                        swigluBackwardCPU(gp.baseAddress!, up.baseAddress!, dp.baseAddress!, dgp.baseAddress!, $0.baseAddress!, n,
                                          avx2: true, avx512: avx512)
                    } }
                    y.withUnsafeBufferPointer { yp in dx.withUnsafeMutableBufferPointer {
                        softmaxBackwardRow(yp.baseAddress!, dp.baseAddress!, $0.baseAddress!, n, avx2: true, avx512: avx512)
                    } }
                } } }
                return [out, dg, du, dx].map { $0.map(\.bitPattern) }
            }
            let wide = run(avx512: true), narrow = run(avx512: false)
            for (name, (w, a)) in zip(["swiglu", "swiglu dg", "swiglu du", "softmax dx"], zip(wide, narrow)) {
                let differing = w.indices.filter { w[$0] != a[$0] }
                XCTAssertTrue(differing.isEmpty, "\(name), n \(n): \(differing.count) values differ, first at \(differing.first ?? -1)")
            }
        }
    }

    func testMaxOfBothVersionsSeesNaNAndInfinities() {
        for (avx2, avx512) in softmaxVersions {
            for n in [1, 5, 8, 16, 23] {
                for at in [0, n / 2, n - 1] {
                    var x = (0..<n).map { Float($0) }
                    x[at] = .nan
                    XCTAssertTrue(x.withUnsafeBufferPointer { maxOf($0.baseAddress!, n, avx2: avx2, avx512: avx512) }.isNaN, "n \(n) at \(at)")
                }
            }
            let x: [Float] = [.infinity, -.infinity, 3, 1, 1, 1, 1, 1, 1]
            XCTAssertEqual(x.withUnsafeBufferPointer { maxOf($0.baseAddress!, 9, avx2: avx2, avx512: avx512) }, .infinity)
            XCTAssertEqual([Float]().withUnsafeBufferPointer { maxOf($0.baseAddress!, 0, avx2: avx2, avx512: avx512) }, -.infinity)
            // exp of −inf is 0, and a NaN element stays NaN.
            var y = [Float](repeating: 0, count: 3)
            _ = [Float](arrayLiteral: -.infinity, .nan, 0).withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { expShifted(xp.baseAddress!, $0.baseAddress!, 3, shift: 0, avx2: avx2, avx512: avx512) }
            }
            XCTAssertEqual(y[0], 0)
            XCTAssertTrue(y[1].isNaN)
            XCTAssertEqual(y[2], 1)
        }
    }

    /// SwiGLU forward and backward, both versions, against Double (the derivative also against a
    /// central finite difference of the Double forward).
    func testSwigluBothVersionsMatchDouble() {
        var rng = SystemRandomNumberGenerator()
        func silu(_ v: Double) -> Double { v / (1 + Foundation.exp(-v)) }
        for (avx2, avx512) in softmaxVersions {
            for n in [1, 7, 8, 9, 15, 16, 17, 100] {
                var g = (0..<n).map { _ in Float.random(in: -12...12, using: &rng) }
                if n > 2 { g[0] = -95; g[1] = 95 }
                let u = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
                let dy = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
                var out = [Float](repeating: 5, count: n + 1), dg = out, du = out
                g.withUnsafeBufferPointer { gp in u.withUnsafeBufferPointer { up in
                    out.withUnsafeMutableBufferPointer { swigluForwardCPU(gp.baseAddress!, up.baseAddress!, $0.baseAddress!, n, avx2: avx2, avx512: avx512)
                    }
                    dy.withUnsafeBufferPointer { dp in dg.withUnsafeMutableBufferPointer { dgp in du.withUnsafeMutableBufferPointer {
                        swigluBackwardCPU(gp.baseAddress!, up.baseAddress!, dp.baseAddress!, dgp.baseAddress!, $0.baseAddress!, n,
                                          avx2: avx2, avx512: avx512)
                    } } }
                } }
                for i in 0..<n {
                    let v = Double(g[i]), w = Double(u[i]), d = Double(dy[i])
                    XCTAssertEqual(Double(out[i]), silu(v) * w, accuracy: 1e-6 * max(1, abs(silu(v) * w)), "out[\(i)] avx2 \(avx2) avx512 \(avx512)")
                    let h = 1e-4
                    let dgFD = d * w * (silu(v + h) - silu(v - h)) / (2 * h)
                    XCTAssertEqual(Double(dg[i]), dgFD, accuracy: 1e-5 * max(1, abs(dgFD)), "dg[\(i)] g \(v) avx2 \(avx2) avx512 \(avx512)")
                    XCTAssertEqual(Double(du[i]), d * silu(v), accuracy: 1e-6 * max(1, abs(d * silu(v))), "du[\(i)] avx2 \(avx2) avx512 \(avx512)")
                }
                XCTAssertEqual([out[n], dg[n], du[n]], [5, 5, 5], "wrote past n")
            }
        }
    }
}
