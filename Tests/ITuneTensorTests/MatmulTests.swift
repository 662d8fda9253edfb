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
        OpenCLGemm.forceOwnKernel = true
        defer { OpenCLGemm.forceOwnKernel = false }
        try compareBackends([[33, 127], [127, 7]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1]) }
        try compareBackends([[2, 17, 5], [2, 9, 5]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1], transposeB: true) }
    }
}
