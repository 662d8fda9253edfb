import Foundation
import XCTest
@testable import ITuneTensor

final class MatmulTests: XCTestCase {
    /// Naive reference: C = op(A)·op(B) in Double.
    func reference(_ a: [Float], _ b: [Float], M: Int, N: Int, K: Int, tA: Bool, tB: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: M * N)
        for i in 0..<M { for j in 0..<N {
            var acc = 0.0
            for k in 0..<K {
                let x = tA ? a[k * M + i] : a[i * K + k]
                let y = tB ? b[j * K + k] : b[k * N + j]
                acc += Double(x) * Double(y)
            }
            c[i * N + j] = Float(acc)
        } }
        return c
    }

    func testCPUMatmulMatchesNaiveReferenceForAllTransposes() throws {
        for (M, N, K) in [(1, 1, 1), (7, 33, 5), (33, 7, 127), (64, 48, 32), (5, 257, 3)] {
            for tA in [false, true] { for tB in [false, true] {
                let a = randomValues(M * K, seed: 1), b = randomValues(K * N, seed: 2)
                let A = try Tensor(a, shape: tA ? [K, M] : [M, K]), B = try Tensor(b, shape: tB ? [N, K] : [K, N])
                let c = try A.matmul(B, transposeA: tA, transposeB: tB)
                XCTAssertEqual(c.shape, [M, N])
                assertClose(try c.toArray(), reference(a, b, M: M, N: N, K: K, tA: tA, tB: tB), rtol: 1e-5, atol: 1e-5, "\(M)x\(N)x\(K) tA=\(tA) tB=\(tB)")
            } }
        }
    }

    /// A scaled product (LoRA's scaling as the GEMM's alpha) equals the plain product times
    /// the scale, and its gradients match finite differences; on OpenCL it matches the CPU.
    func testScaledMatmulIsTheGEMMsAlpha() throws {
        let a = randomValues(37 * 19, seed: 11), b = randomValues(23 * 19, seed: 12)
        let A = try Tensor(a, shape: [37, 19]), B = try Tensor(b, shape: [23, 19])
        let scaled = try A.linear(B, scale: 2.5).toArray()
        let plain = reference(a, b, M: 37, N: 23, K: 19, tA: false, tB: true).map { $0 * 2.5 }
        assertClose(scaled, plain, rtol: 1e-5, atol: 1e-5)
        try checkGradients([[3, 4], [5, 4]]) { try $0[0].linear($0[1], scale: 2.5) }
        try checkGradients([[2, 3, 4], [4, 5]]) { try $0[0].matmul($0[1], alpha: -0.5) }
        try checkGradients([[4, 3], [5, 4]]) { try $0[0].matmul($0[1], transposeA: true, transposeB: true, alpha: 3) }
        if TestDevices.opencl != nil || ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" {
            try compareBackends([[33, 16], [7, 16]], rtol: 1e-4, atol: 1e-5) { try $0[0].linear($0[1], scale: 2) }
        }
    }

    func testMatmulBackwardMatchesFiniteDifferences() throws {
        try checkGradients([[3, 4], [4, 5]]) { try $0[0].matmul($0[1]) }
        try checkGradients([[4, 3], [4, 5]]) { try $0[0].matmul($0[1], transposeA: true) }
        try checkGradients([[3, 4], [5, 4]]) { try $0[0].matmul($0[1], transposeB: true) }
        try checkGradients([[4, 3], [5, 4]]) { try $0[0].matmul($0[1], transposeA: true, transposeB: true) }
        try checkGradients([[2, 3, 4], [2, 4, 5]]) { try $0[0].matmul($0[1]) }
        try checkGradients([[2, 3, 4], [5, 4], [5]]) { try $0[0].linear($0[1], bias: $0[2]) }
    }

    func testMatmulOpenCLMatchesCPU() throws {
        for n in oddSizes {
            try compareBackends([[n, 33], [33, 7]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1]) }
            try compareBackends([[33, n], [7, 33]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1], transposeA: true, transposeB: true) }
            try compareBackends([[3, n, 16], [3, 16, 9]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1]) }
        }
        try compareBackends([[128, 256], [64, 256]], rtol: 1e-4, atol: 1e-5) { try $0[0].linear($0[1]) }
    }

    func testOwnOpenCLGemmKernelMatchesCPU() throws {
        let backend = try TestDevices.requireOpenCL().backend() as! OpenCLBackend
        let saved = backend.gemmImplementation
        backend.gemmImplementation = .own
        defer { backend.gemmImplementation = saved }
        try compareBackends([[33, 127], [127, 7]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1]) }
        try compareBackends([[2, 17, 5], [2, 9, 5]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1], transposeB: true) }
    }

    // MARK: cpuSgemm directly: blocking edges, strides, alpha/beta

    /// C = alpha·op(A)·op(B) + beta·C in Double over padded (lda, ldb, ldc) storage; the
    /// padding of C is left as it was.
    func referenceSgemm(tA: Bool, tB: Bool, M: Int, N: Int, K: Int, alpha: Float, a: [Float], lda: Int,
                        b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int) -> [Float] {
        var out = c
        a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in
            for i in 0..<M { for j in 0..<N {
                var acc = 0.0
                for k in 0..<K {
                    acc += Double(tA ? a[k * lda + i] : a[i * lda + k]) * Double(tB ? b[j * ldb + k] : b[k * ldb + j])
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                out[i * ldc + j] = Float(Double(alpha) * acc + old)
            } }
        } }
        return out
    }

    /// Runs cpuSgemm on random operands stored with `pad` extra floats per row and checks it
    /// against the reference, padding of C included.
    func checkSgemm(M: Int, N: Int, K: Int, tA: Bool, tB: Bool, alpha: Float = 1, beta: Float = 0, pad: Int = 0,
                    cFill: Float? = nil, file: StaticString = #filePath, line: UInt = #line) {
        let lda = (tA ? M : K) + pad, ldb = (tB ? K : N) + pad, ldc = N + pad
        let a = randomValues((tA ? K : M) * lda, seed: UInt64(M * 31 + K))
        let b = randomValues((tB ? N : K) * ldb, seed: UInt64(N * 17 + K + 5))
        let c = cFill.map { [Float](repeating: $0, count: M * ldc) } ?? randomValues(M * ldc, seed: 99)
        let expected = referenceSgemm(tA: tA, tB: tB, M: M, N: N, K: K, alpha: alpha, a: a, lda: lda,
                                      b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        var got = c
        got.withUnsafeMutableBufferPointer { cp in
            cpuSgemm(transA: tA, transB: tB, M: M, N: N, K: K, alpha: alpha, A: a, lda: lda, B: b, ldb: ldb,
                     beta: beta, C: cp.baseAddress!, ldc: ldc)
        }
        // Padding columns must be untouched, bit for bit (NaN included).
        for i in 0..<M { for j in N..<ldc where got[i * ldc + j].bitPattern != c[i * ldc + j].bitPattern {
            XCTFail("\(M)x\(N)x\(K) tA=\(tA) tB=\(tB): padding C[\(i), \(j)] was written", file: file, line: line)
            return
        } }
        // Tolerance grows like √K: rounding of fp32 sums of K terms of size ~1.
        let atol = 2e-6 * Float(K).squareRoot() * 4
        func valid(_ c: [Float]) -> [Float] { (0..<M).flatMap { i in c[i * ldc ..< i * ldc + N] } }
        assertClose(valid(got), valid(expected), rtol: 1e-5, atol: atol,
                    "\(M)x\(N)x\(K) tA=\(tA) tB=\(tB) alpha=\(alpha) beta=\(beta) pad=\(pad)", file: file, line: line)
    }

    func testCPUSgemmMatchesReferenceAcrossBlockingEdgesForAllTransposes() {
        // Sizes around the micro-tile (MR 6, NR 8/16/32), the K block (256), the M block, the
        // few-row paths (M ≤ 32), and one N past the B block (4096 columns).
        let shapes = [(1, 999, 513), (4, 17, 300), (5, 1, 513), (31, 999, 1), (32, 7, 257), (33, 17, 300),
                      (97, 999, 37), (301, 67, 513), (301, 1, 300), (40, 4133, 5), (6, 32, 256), (481, 33, 2)]
        for (M, N, K) in shapes {
            for tA in [false, true] { for tB in [false, true] {
                checkSgemm(M: M, N: N, K: K, tA: tA, tB: tB)
            } }
        }
    }

    func testCPUSgemmAccumulatesWithBetaAndAlphaOverPaddedStrides() {
        for (M, N, K) in [(1, 33, 300), (7, 17, 513), (97, 45, 300), (64, 64, 64)] {
            for tA in [false, true] { for tB in [false, true] {
                checkSgemm(M: M, N: N, K: K, tA: tA, tB: tB, alpha: 1, beta: 1, pad: 3)
                checkSgemm(M: M, N: N, K: K, tA: tA, tB: tB, alpha: -0.5, beta: 0.25, pad: 5)
            } }
        }
    }

    func testCPUSgemmDoesNotReadCWhenBetaIsZero() {
        for (M, N, K) in [(1, 40, 9), (3, 50, 300), (20, 33, 20), (70, 70, 300)] {
            for tA in [false, true] { for tB in [false, true] {
                checkSgemm(M: M, N: N, K: K, tA: tA, tB: tB, alpha: 2, beta: 0, pad: 2, cFill: .nan)
            } }
        }
    }

    func testCPUSgemmWithEmptyKOrZeroAlphaOnlyScalesC() {
        checkSgemm(M: 5, N: 7, K: 0, tA: false, tB: false, alpha: 1, beta: 0.5, pad: 1)
        checkSgemm(M: 5, N: 7, K: 0, tA: true, tB: true, alpha: 1, beta: 0, pad: 1, cFill: .nan)
        checkSgemm(M: 50, N: 70, K: 30, tA: false, tB: true, alpha: 0, beta: 2, pad: 1)
    }

    func testCPUSgemmIsDeterministicAndSafeToCallConcurrently() {
        // Concurrent calls each take their own packing workspace; all must give the result of
        // a single call, bit for bit.
        let M = 123, N = 77, K = 300
        let a = randomValues(M * K, seed: 3), b = randomValues(K * N, seed: 4)
        func product() -> [Float] {
            var c = [Float](repeating: 0, count: M * N)
            c.withUnsafeMutableBufferPointer { cp in
                cpuSgemm(transA: false, transB: false, M: M, N: N, K: K, alpha: 1, A: a, lda: K, B: b, ldb: N,
                         beta: 0, C: cp.baseAddress!, ldc: N)
            }
            return c
        }
        let expected = product()
        let results = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: 8)
        results.initialize(repeating: [])
        defer { results.deinitialize(); results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { i in results[i] = product() }
        for r in results { XCTAssertEqual(r, expected) }
    }
}
