// A product with r extra columns of A and rows of B kept apart from the main operands:
//   C (M,N) = A (M,K) · op(B) (K,N) + A2 (M,r) · op(B2) (r,N) + beta · C,
// the K + r product [A | A2] · [op(B) ; op(B2)] without making either concatenation. LoRA's
// adapted linear is one (Ops/LoRALinear.swift): forward x·Wᵀ + (s·x·Aᵀ)·Bᵀ, input gradient
// dY·W + (s·dY·B)·A. As two GEMMs the low-rank term is a second pass over C (beta 1) that reads
// and writes all of it for r = 8 multiply-adds an element: at SmolLM2-135M's gate projection,
// 1024 × 1536 floats, 0.8 ms on a 2-vCPU Zen 3 against 12 ms for the main product. Here A2 and
// op(B2), r deep, are packed once as whole micro-panels, and the micro-kernel of the main
// product's last K block runs on past them before it stores its tile: C is loaded and stored
// no more often than by the main product alone.

/// The packed extra operands of a product: A2's micro-panels (r, MR) and op(B2)'s panels (r, NR),
/// in order, from the micro-panel or panel where this block starts.
struct GemmExtraPanels {
    let a: UnsafePointer<Float>
    let b: UnsafePointer<Float>
    let r: Int

    /// The same panels from A micro-panel `rowPanel` and B panel `colPanel` on.
    func at(rowPanel: Int, colPanel: Int, mr: Int, nr: Int) -> GemmExtraPanels {
        GemmExtraPanels(a: a + rowPanel * r * mr, b: b + colPanel * r * nr, r: r)
    }
}

/// Whether cpuSgemmPlusLowRank takes a product of this shape (the packed path: more than
/// GemmBlocking.fewRows rows and columns, K and r positive). Smaller products (decoding's few
/// rows) are better as the two products apart.
func cpuSgemmPlusLowRankApplies(M: Int, N: Int, K: Int, r: Int) -> Bool {
    M > GemmBlocking.fewRows && N > GemmBlocking.fewRows && K > 0 && r > 0
}

/// C (M,N) = A (M,K) · op(B) + A2 (M,r) · op(B2) + beta · C, for the shapes
/// cpuSgemmPlusLowRankApplies takes (false, C untouched, for the others). A and A2 are
/// row-major, not transposed (row strides lda, lda2); op(B) is read only through `packB` (f32 or
/// a 16-bit storage, as sgemmPacked); op(B2) is B2 (r,N), or B2ᵀ for B2 stored (N,r) when
/// `transB2`, row stride ldb2.
func cpuSgemmPlusLowRank(M: Int, N: Int, K: Int, A: UnsafePointer<Float>, lda: Int, packB: GemmBPacker,
                         r: Int, A2: UnsafePointer<Float>, lda2: Int, B2: UnsafePointer<Float>, ldb2: Int,
                         transB2: Bool, beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int,
                         workers maxWorkers: Int? = nil, config cfg: GemmConfig = GemmConfig.current) -> Bool {
    guard cpuSgemmPlusLowRankApplies(M: M, N: N, K: K, r: r) else { return false }
    let (mr, nr) = (cfg.mr, cfg.nr)
    let aPanels = (M + mr - 1) / mr, bPanels = (N + nr - 1) / nr
    let aFloats = gemmRoundUp(aPanels * mr * r, 16)
    let ws = GemmWorkspace.take(sharedFloats: aFloats + bPanels * nr * r, perWorkerFloats: 0, workers: 1)
    defer { GemmWorkspace.give(ws) }
    let packedA2 = ws.shared, packedB2 = ws.shared + aFloats
    packABlock(transA: false, A: A2, lda: lda2, i0: 0, rows: M, k0: 0, kc: r, mr: mr, dst: packedA2,
               avx2: cfg.packsWithAVX2)
    packBPanels(transB: transB2, B: B2, ldb: ldb2, k0: 0, kc: r, j0: 0, cols: N, panels: 0..<bPanels, nr: nr,
                dst: packedB2, avx2: cfg.packsWithAVX2)
    let workers = maxWorkers ?? (M * N * (K + r) < GemmBlocking.parallelThreshold ? 1 : CPUParallel.threadCount)
    sgemmPacked(transA: false, M: M, N: N, K: K, alpha: 1, A: A, lda: lda, beta: beta, C: C, ldc: ldc,
                workers: workers, config: cfg, extra: GemmExtraPanels(a: packedA2, b: packedB2, r: r), packB: packB)
    return true
}

/// The f32 packer of op(B) for sgemmPacked, as cpuSgemm uses.
func f32BPacker(transB: Bool, B: UnsafePointer<Float>, ldb: Int, config cfg: GemmConfig = GemmConfig.current) -> GemmBPacker {
    { k0, kc, j0, cols, panels, nr, dst in
        packBPanels(transB: transB, B: B, ldb: ldb, k0: k0, kc: kc, j0: j0, cols: cols, panels: panels, nr: nr, dst: dst,
                    avx2: cfg.packsWithAVX2)
    }
}
