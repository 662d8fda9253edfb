import COpenCL
import Foundation

/// CLBlast, loaded at run time. When it is missing, GEMM falls back to our own tiled kernel
/// (Kernels/gemm.cl) and `itune-gpu devices` says so.
public enum CLBlast {
    public static let loadError: String? = {
        if ProcessInfo.processInfo.environment["ITUNE_NO_CLBLAST"] == "1" { return "disabled by ITUNE_NO_CLBLAST=1" }
        do { try OpenCLRuntime.load() } catch { return "\(error)" }
        var buf = [CChar](repeating: 0, count: 512)
        return itune_clblast_load(&buf, buf.count) == 0 ? String(cString: buf) : nil
    }()

    public static var isAvailable: Bool { loadError == nil }

    /// Row-major strided-batched SGEMM on the backend's queue.
    static func sgemm(_ cl: OpenCLBackend, transA: Bool, transB: Bool, M: Int, N: Int, K: Int,
                      alpha: Float, a: cl_mem, lda: Int, strideA: Int, b: cl_mem, ldb: Int, strideB: Int,
                      beta: Float, c: cl_mem, ldc: Int, strideC: Int, batch: Int) throws {
        let ta = transA ? CLBlastTransposeYes : CLBlastTransposeNo
        let tb = transB ? CLBlastTransposeYes : CLBlastTransposeNo
        var queue = cl.queue
        let status: CLBlastStatusCode
        // With profiling on, CLBlast's event: that of its last kernel (for an indirect GEMM,
        // the padding kernels before it fall in the profile's gap column).
        let profiling = cl.activeRecorder
        var event: cl_event?
        status = withUnsafeMutablePointer(to: &event) { ev in
            let wanted = profiling == nil ? nil : ev
            if batch == 1 {
                return itune_CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, M, N, K, alpha, a, 0, lda, b, 0, ldb,
                                          beta, c, 0, ldc, &queue, wanted)
            }
            return itune_CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, M, N, K, alpha,
                                                    a, 0, lda, strideA, b, 0, ldb, strideB, beta,
                                                    c, 0, ldc, strideC, batch, &queue, wanted)
        }
        let launched = batch == 1 ? "clblast_sgemm" : "clblast_sgemm_strided_batched"
        cl.tally.launched(launched)
        profiling?.enqueued(launched, event: status == CLBlastSuccess ? event : nil)
        if status != CLBlastSuccess {
            throw TensorError.clblast(call: batch == 1 ? "CLBlastSgemm(\(M)x\(N)x\(K))" : "CLBlastSgemmStridedBatched(\(batch)x\(M)x\(N)x\(K))",
                                      code: status.rawValue)
        }
    }
}
