import Foundation
import XCTest
@testable import ITuneTensor

/// The fused quantised GEMV (quantgemv.c: decoding from an nf4 or int8 base) against f64
/// arithmetic on the dequantised weight: 1–4 rows, every format (nf4 with and without double
/// quantisation, int8), one block a row and several, a split over both threads, alpha; and a
/// depth that is no multiple of 64 (the block path) giving the same.
final class QuantGemvTests: XCTestCase {
    func check(M: Int, N: Int, K: Int, _ format: QuantFormat, doubleQuant: Bool, alpha: Float = 1) throws {
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
                                  B: q, beta: 0, C: c.baseAddress!, ldc: ldc)
            }
        }
        let what = "\(format)\(doubleQuant ? "+dq" : "") M \(M) N \(N) K \(K) alpha \(alpha)"
        for r in 0..<M {
            for n in 0..<N {
                let (dot, magnitude) = exactDot(K, { x[r * K + $0] }, { d[n * K + $0] })
                let exact = dot * Double(alpha)
                XCTAssertEqual(Double(y[r * ldc + n]), exact, accuracy: 1e-6 * magnitude * Double(abs(alpha)) + 1e-7,
                               "\(what) y[\(r), \(n)]")
            }
        }
    }

    func testEveryFormatAndRowCountEqualsTheDequantisedProduct() throws {
        for (format, dq) in [(QuantFormat.nf4, false), (.nf4, true), (.int8, false)] {
            for M in 1...4 {
                try check(M: M, N: 37, K: 192, format, doubleQuant: dq)
            }
            try check(M: 1, N: 5, K: 64, format, doubleQuant: dq)
            try check(M: 2, N: 600, K: 256, format, doubleQuant: dq, alpha: 0.5)  // two threads' rows
            try check(M: 1, N: 9, K: 100, format, doubleQuant: dq)  // K % 64 ≠ 0: the block path
        }
    }
}
