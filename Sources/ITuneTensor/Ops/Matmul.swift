import COpenCL
import Foundation

// Matrix multiplication, 2-D and batched, with transposed operands. CPU: CPU/Gemm.swift;
// OpenCL: CLBlast, or Kernels/gemm.cl when CLBlast is missing.

extension Tensor {
    /// op(self) · op(other), where op transposes the last two dims when asked.
    ///
    /// Shapes: (M,K)·(K,N) → (M,N); (B…,M,K)·(B…,K,N) → (B…,M,N) with equal batch dims;
    /// (B…,M,K)·(K,N) → (B…,M,N) (a linear layer over any leading dims).
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        let a = self, b = other
        guard a.rank >= 2, b.rank >= 2 else {
            throw TensorError.shapeMismatch(op: "matmul", "operands need rank ≥ 2, got \(a.shape) and \(b.shape)")
        }
        // Leading dims against a matrix: fold them into M.
        if a.rank > 2, b.rank == 2, !transposeA {
            let lead = Array(a.shape.dropLast())
            let out = try a.reshaped([-1, a.shape.last!]).matmul(b, transposeB: transposeB)
            return try out.reshaped(lead + [out.shape[1]])
        }
        guard a.rank == b.rank, a.shape.dropLast(2) == b.shape.dropLast(2) else {
            throw TensorError.shapeMismatch(op: "matmul", "batch dims differ: \(a.shape) and \(b.shape)")
        }
        let batchDims = Array(a.shape.dropLast(2))
        let batch = batchDims.reduce(1, *)
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (M, K) = transposeA ? (ac, ar) : (ar, ac)
        let (K2, N) = transposeB ? (bc, br) : (br, bc)
        guard K == K2 else {
            throw TensorError.shapeMismatch(op: "matmul", "inner dims differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        }
        let out = try Tensor.empty(batchDims + [M, N], on: a.device)
        try gemm(a, b, into: out, transA: transposeA, transB: transposeB, M: M, N: N, K: K, batch: batch)

        GradientTape.record("matmul", inputs: [a, b], output: out) { dC in
            var dA: Tensor? = nil, dB: Tensor? = nil
            if a.requiresGrad {
                dA = transposeA ? try b.matmul(dC, transposeA: transposeB, transposeB: true)
                                : try dC.matmul(b, transposeB: !transposeB)
            }
            if b.requiresGrad {
                dB = transposeB ? try dC.matmul(a, transposeA: true, transposeB: transposeA)
                                : try a.matmul(dC, transposeA: !transposeA)
            }
            return [dA, dB]
        }
        return out
    }

    /// A linear layer: self (…, in) · weightᵀ (out, in) [+ bias (out)] → (…, out).
    public func linear(_ weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        let y = try matmul(weight, transposeB: true)
        guard let bias else { return y }
        return try y + bias
    }
}

/// out = alpha · op(a) · op(b) + beta · out over `batch` matrices, on a's device.
func gemm(_ a: Tensor, _ b: Tensor, into out: Tensor, transA: Bool, transB: Bool, M: Int, N: Int, K: Int,
          batch: Int, alpha: Float = 1, beta: Float = 0) throws {
    let lda = transA ? M : K, ldb = transB ? K : N, ldc = N
    let sA = M * K, sB = K * N, sC = M * N
    switch try execution("matmul", a, b, out) {
    case .cpu:
        let pa = a.floats, pb = b.floats, pc = out.floats
        for i in 0..<batch {
            cpuSgemm(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha,
                     A: pa + i * sA, lda: lda, B: pb + i * sB, ldb: ldb, beta: beta, C: pc + i * sC, ldc: ldc)
        }
    case let .opencl(cl):
        if M == 0 || N == 0 { return }
        if K == 0 || !CLBlast.isAvailable || OpenCLGemm.forceOwnKernel {
            try OpenCLGemm.tiled(cl, transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha,
                                 a: a.storage.mem, lda: lda, strideA: sA, b: b.storage.mem, ldb: ldb, strideB: sB,
                                 beta: beta, c: out.storage.mem, ldc: ldc, strideC: sC, batch: batch)
        } else {
            try CLBlast.sgemm(cl, transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha,
                              a: a.storage.mem, lda: lda, strideA: sA, b: b.storage.mem, ldb: ldb, strideB: sB,
                              beta: beta, c: out.storage.mem, ldc: ldc, strideC: sC, batch: batch)
        }
    }
}

/// Our own OpenCL GEMM (Kernels/gemm.cl).
public enum OpenCLGemm {
    /// `ITUNE_OWN_GEMM=1` uses our kernel even when CLBlast is there (for comparisons).
    nonisolated(unsafe) public static var forceOwnKernel = ProcessInfo.processInfo.environment["ITUNE_OWN_GEMM"] == "1"
    static let tile = 16

    static func tiled(_ cl: OpenCLBackend, transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                      a: cl_mem, lda: Int, strideA: Int, b: cl_mem, ldb: Int, strideB: Int,
                      beta: Float, c: cl_mem, ldc: Int, strideC: Int, batch: Int) throws {
        try cl.launch("gemm", "gemm_tiled", global: [N, M, batch], local: [tile, tile, 1], defines: ["TS": tile],
                      [.int(M), .int(N), .int(K), .float(alpha), .float(beta),
                       .mem(a), .int(lda), .int(strideA), .int(transA ? 1 : 0),
                       .mem(b), .int(ldb), .int(strideB), .int(transB ? 1 : 0),
                       .mem(c), .int(ldc), .int(strideC)])
    }
}
