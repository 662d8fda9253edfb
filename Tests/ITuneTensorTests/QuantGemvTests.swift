import Foundation
import XCTest
@testable import ITuneTensor

/// The fused quantised GEMV (quantgemv.c: decoding from an nf4 or int8 base) against f64
/// arithmetic on the dequantised weight: 1–4 rows, every format (nf4 with and without double
/// quantisation, int8, whose x is rounded to 16 bits: within that rounding's bound), one block a
/// row and several, a split over both threads, alpha; a depth that is no multiple of 64 (the
/// block path) giving the same, and one past the 16-bit path's.
final class QuantGemvTests: XCTestCase {
    func check(M: Int, N: Int, K: Int, _ format: QuantFormat, doubleQuant: Bool, alpha: Float = 1, gemvRows: Int = 4,
               kernel: QuantKernel = .chosen) throws {
        let q = try quantizedMatrix(rows: N, cols: K, format, doubleQuant: doubleQuant, seed: UInt64(N * 7 + K), scale: 0.1)
        let x = randomValues(M * K + 5, seed: 3)  // lda K + 5: rows not packed
        let lda = K + 5
        var xPadded = [Float](repeating: 0, count: M * lda)
        for r in 0..<M { for k in 0..<K { xPadded[r * lda + k] = x[r * K + k] } }
        let d = q.dequantized()
        let ldc = N + 3
        var y = [Float](repeating: .nan, count: M * ldc)
        xPadded.withUnsafeBufferPointer { a in
            y.withUnsafeMutableBufferPointer { c in
                cpuSgemmQuantized(transA: false, transB: true, M: M, N: N, K: K, alpha: alpha, A: a.baseAddress!, lda: lda,
                                  B: q, beta: 0, C: c.baseAddress!, ldc: ldc, gemvRows: gemvRows, gemvKernel: kernel)
            }
        }
        let what = "\(format)\(doubleQuant ? "+dq" : "") M \(M) N \(N) K \(K) alpha \(alpha) GEMV rows \(gemvRows) \(kernel)"
        // int8 multiplies x rounded to 16 bits per block of 64 (step absmax / 32767) where K allows
        // (≤ 16384, a multiple of 64) and x is finite: each value is off by at most half a step.
        let roundsX = format == .int8 && K % 64 == 0 && K <= 16384 && x.allSatisfy(\.isFinite)
        for r in 0..<M {
            for n in 0..<N {
                let (dot, magnitude) = exactDot(K, { x[r * K + $0] }, { d[n * K + $0] })
                let xRounding = roundsX ? Self.xRoundingBound(x, row: r * K, d, row: n * K, blocks: 0..<(K / 64)) : 0
                let exact = dot * Double(alpha)
                XCTAssertEqual(Double(y[r * ldc + n]), exact,
                               accuracy: (1e-6 * magnitude + xRounding) * Double(abs(alpha)) + 1e-7, "\(what) y[\(r), \(n)]")
            }
        }
    }

    /// What rounding x to 16 bits per block of 64 can add to one dot product of x (from xRow)
    /// with the dequantised weight row (from dRow): half a step (the block's absmax / 32767) per
    /// value, times |w|, over the given blocks.
    static func xRoundingBound(_ x: [Float], row xRow: Int, _ d: [Float], row dRow: Int, blocks: some Sequence<Int>) -> Double {
        var bound = 0.0
        for b in blocks {
            let step = Double((0..<64).map { abs(x[xRow + b * 64 + $0]) }.max()!) / 32767
            for k in (b * 64)..<(b * 64 + 64) { bound += abs(Double(d[dRow + k])) * step / 2 }
        }
        return bound
    }

    /// Every GEMV this CPU runs (AVX2, and AVX-512's 16-lane nf4).
    func testEveryFormatAndRowCountEqualsTheDequantisedProduct() throws {
        for kernel in [QuantKernel.avx2, .avx512] where kernel.isSupported {
            for (format, dq) in [(QuantFormat.nf4, false), (.nf4, true), (.int8, false)] {
                for M in 1...4 {
                    try check(M: M, N: 37, K: 192, format, doubleQuant: dq, kernel: kernel)
                }
                try check(M: 1, N: 5, K: 64, format, doubleQuant: dq, kernel: kernel)
                try check(M: 2, N: 600, K: 256, format, doubleQuant: dq, alpha: 0.5, kernel: kernel)  // two threads' rows
                try check(M: 1, N: 9, K: 100, format, doubleQuant: dq, kernel: kernel)  // K % 64 ≠ 0: the block path
            }
            try check(M: 2, N: 3, K: 16448, .int8, doubleQuant: false, kernel: kernel)  // past the 16-bit path's K: f32 x
        }
    }

    /// A prompt's rows (gemvRows up to GemmBlocking.fewRows: what QuantizedLinear passes when no
    /// tape records) take the GEMV 4 at a time: within the same bounds, and every row bit for bit
    /// what it gives alone, as the token decoded at that position would. A training product
    /// (gemvRows 4) of as many rows keeps the exact dequantised product, which int8's rounding of x
    /// makes differ from the rows alone.
    func testPromptRowsTakeTheGEMVFourAtATime() throws {
        for (format, dq) in [(QuantFormat.nf4, false), (.nf4, true), (.int8, false)] {
            for M in [5, 13, GemmBlocking.fewRows] {
                try check(M: M, N: 37, K: 192, format, doubleQuant: dq, gemvRows: GemmBlocking.fewRows)
            }
        }
        let (M, N, K) = (13, 40, 256)
        let q = try quantizedMatrix(rows: N, cols: K, .int8, doubleQuant: false, seed: 21, scale: 0.1)
        let x = randomValues(M * K, seed: 22)
        func product(rows: Int, from r0: Int, gemvRows: Int) -> [Float] {
            var y = [Float](repeating: .nan, count: rows * N)
            x.withUnsafeBufferPointer { a in
                y.withUnsafeMutableBufferPointer { c in
                    cpuSgemmQuantized(transA: false, transB: true, M: rows, N: N, K: K, alpha: 1, A: a.baseAddress! + r0 * K,
                                      lda: K, B: q, beta: 0, C: c.baseAddress!, ldc: N, gemvRows: gemvRows)
                }
            }
            return y
        }
        let alone = (0..<M).flatMap { product(rows: 1, from: $0, gemvRows: 4) }
        func differing(_ a: [Float], _ b: [Float]) -> Int { zip(a, b).filter { $0.0 != $0.1 }.count + abs(a.count - b.count) }
        XCTAssertEqual(differing(product(rows: M, from: 0, gemvRows: GemmBlocking.fewRows), alone), 0)
        if useQuantGEMV {
            XCTAssertGreaterThan(differing(product(rows: M, from: 0, gemvRows: 4), alone), 0, "13 training rows took the GEMV")
        }
        // Through the linear layer: a prompt under noGrad takes the GEMV, a recorded product does not.
        let xt = try Tensor(x, shape: [M, K], on: .cpu)
        XCTAssertEqual(differing(try noGrad { try xt.linear(quantized: q) }.toArray(), alone), 0)
        if useQuantGEMV {
            XCTAssertGreaterThan(differing(try xt.linear(quantized: q).toArray(), alone), 0, "a recorded product of 13 rows took the GEMV")
        }
    }

    /// int8's 16-bit rounding of x is really taken, and within its bound: the product differs from
    /// f64 arithmetic on the dequantised weight by more than f32 rounding would, and by no more
    /// than half a step of x (the block's absmax / 32767) a value.
    func testInt8RoundsXTo16BitsWithinItsBound() throws {
        let (M, N, K) = (1, 64, 896)
        let q = try quantizedMatrix(rows: N, cols: K, .int8, doubleQuant: false, seed: 11, scale: 0.1)
        var x = randomValues(K, seed: 12)
        for b in 0..<(K / 64) { x[b * 64] = 40 }  // an outlier per block, as activations have: coarse steps
        let d = q.dequantized()
        var y = [Float](repeating: .nan, count: N)
        x.withUnsafeBufferPointer { a in
            y.withUnsafeMutableBufferPointer { c in
                cpuSgemmQuantized(transA: false, transB: true, M: M, N: N, K: K, alpha: 1, A: a.baseAddress!, lda: K,
                                  B: q, beta: 0, C: c.baseAddress!, ldc: N)
            }
        }
        var worst = 0.0
        for n in 0..<N {
            let (exact, magnitude) = exactDot(K, { x[$0] }, { d[n * K + $0] })
            let error = abs(Double(y[n]) - exact)
            worst = max(worst, error / magnitude)
            // Each block's step is 40 / 32767 (its outlier); half a step a value at most.
            let bound = (0..<K).reduce(0.0) { $0 + abs(Double(d[n * K + $1])) } * 40 / 32767 / 2
            XCTAssertLessThanOrEqual(error, bound + 1e-6 * magnitude, "y[\(n)]: more than half a step of x a value")
        }
        if useQuantGEMV {
            XCTAssertGreaterThan(worst, 1e-6, "x was not rounded to 16 bits (f32 arithmetic is within 1e-6)")
        }
    }

    /// A block of x whose absmax is below 1e-30 counts as zero in the 16-bit path (its scale would
    /// overflow): the product stays finite and within its bound.
    func testTinyBlocksOfXCountAsZero() throws {
        let (N, K) = (7, 192)
        let q = try quantizedMatrix(rows: N, cols: K, .int8, doubleQuant: false, seed: 15, scale: 0.1)
        var x = randomValues(K, seed: 16)
        for k in 64..<128 { x[k] = k % 2 == 0 ? 1e-36 : -3e-38 }
        let d = q.dequantized()
        var y = [Float](repeating: .nan, count: N)
        x.withUnsafeBufferPointer { a in
            y.withUnsafeMutableBufferPointer { c in
                cpuSgemmQuantized(transA: false, transB: true, M: 1, N: N, K: K, alpha: 1, A: a.baseAddress!, lda: K,
                                  B: q, beta: 0, C: c.baseAddress!, ldc: N)
            }
        }
        for n in 0..<N {
            let (exact, magnitude) = exactDot(K, { x[$0] }, { d[n * K + $0] })
            let bound = 1e-6 * magnitude + 1e-30 + Self.xRoundingBound(x, row: 0, d, row: n * K, blocks: [0, 2])
            XCTAssertTrue(y[n].isFinite, "y[\(n)]")
            XCTAssertEqual(Double(y[n]), exact, accuracy: bound, "y[\(n)]")
        }
    }

    /// A NaN or infinity in x takes the f32 path, so that it reaches the product as it would
    /// through the GEMM (a 16-bit copy cannot hold it).
    func testNonFiniteXReachesTheInt8Product() throws {
        let (N, K) = (5, 128)
        let q = try quantizedMatrix(rows: N, cols: K, .int8, doubleQuant: false, seed: 13, scale: 0.1)
        for bad in [Float.nan, .infinity] {
            var x = randomValues(K, seed: 14)
            x[70] = bad
            var y = [Float](repeating: 0, count: N)
            x.withUnsafeBufferPointer { a in
                y.withUnsafeMutableBufferPointer { c in
                    cpuSgemmQuantized(transA: false, transB: true, M: 1, N: N, K: K, alpha: 1, A: a.baseAddress!, lda: K,
                                      B: q, beta: 0, C: c.baseAddress!, ldc: N)
                }
            }
            XCTAssertTrue(y.allSatisfy { !$0.isFinite }, "\(bad): \(y)")
        }
    }
}
