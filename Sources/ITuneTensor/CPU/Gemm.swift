import CGemmKernels
import Foundation

// Pure-Swift SGEMM, blocked the GotoBLAS/BLIS way for row-major operands. The workers split C
// into regions (M or N, whichever makes less packing twice) and each runs, alone:
//
//   for jc in N by NC:                 B block (KC,NC) packed by the worker (L3)
//     for pc in K by KC:
//       pack the B block
//       for ic in M by MC:
//         pack the A block (MC,KC)     into the worker's own buffer (L2)
//         for each B micro-panel (KC,NR)         stays in L1 while ...
//           for each A micro-panel (MR,KC)       ... these stream from L2
//             micro-kernel: C tile (MR,NR) += A panel · B panel, accumulators in registers
//
// A few rows (generation, small batches) take the paths in
// GemmFewRows.swift, which read B once and pack nothing. Packing buffers live in a reusable
// workspace (GemmWorkspace.swift), so calls in the steady state allocate nothing.
//
// Swift cannot test CPU features in `#if`, so the build says what the target has (the
// Makefile derives these from the host; Package.swift stays free of unsafe flags):
//   -DITUNE_AVX512  32 registers of 16 floats (with -target-cpu of an AVX-512 CPU)
//   -DITUNE_FMA     fused multiply-add and 16 registers of 8 floats (AVX2 + FMA)
// arm64 always has FMA and 32 NEON registers. Without either flag an x86-64 build targets
// plain SSE2: 4-wide vectors (16 registers) and separate multiply and add, because
// `addingProduct` without hardware FMA becomes a libm call per element.
#if ITUNE_AVX512
typealias GemmVector = SIMD16<Float>
#elseif ITUNE_FMA || arch(arm64)
typealias GemmVector = SIMD8<Float>
#else
typealias GemmVector = SIMD4<Float>
#endif

/// acc + a · b, fused where the target has FMA.
@inline(__always)
func gemmMultiplyAdd(_ acc: GemmVector, _ a: GemmVector, _ b: GemmVector) -> GemmVector {
#if ITUNE_AVX512 || ITUNE_FMA || arch(arm64)
    return acc.addingProduct(a, b)
#else
    return acc + a * b
#endif
}

/// Sizes that do not depend on the micro-kernel. The micro-tile (MR × NR) and the cache
/// blocking (KC, MC, NC) are chosen when the process starts (GemmDispatch.swift).
enum GemmBlocking {
    /// Up to this many rows, C is computed without packing (GemmFewRows.swift): each element
    /// of B would be used too few times to pay for copying it.
    static let fewRows = 32
    /// Below this many multiply-adds a call runs on the calling thread: dispatch would cost
    /// more than it saves.
    static let parallelThreshold = 1 << 21
    /// The largest micro-tile of any kernel (MR × NR floats), for edge-tile scratch.
    static let maxTile = 12 * 32
    /// The tile and blocking of the kernel in use (GemmConfig.current), for code that sizes
    /// its blocks to the GEMM's (e.g. converting 16-bit weights block by block).
    static var mr: Int { GemmConfig.current.mr }
    static var nr: Int { GemmConfig.current.nr }
    static var kc: Int { GemmConfig.current.kc }
    static var mcMax: Int { GemmConfig.current.mcMax }
    static var nc: Int { GemmConfig.current.nc }
}

/// Row-major SGEMM on the CPU: C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C.
///
/// op(A) is A (M,K) with row stride lda, or Aᵀ for A stored (K,M) when `transA`; likewise B.
/// beta = 0 means C is not read (NaNs there do not leak). Blocked and packed for the caches,
/// a register-tiled SIMD micro-kernel, and split over all cores on both M and N.
/// `workers` caps the threads (1 inside a loop that is already parallel); default all cores
/// for products big enough to split.
public func cpuSgemm(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                     A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                     beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int, workers maxWorkers: Int? = nil) {
    cpuSgemm(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb,
             beta: beta, C: C, ldc: ldc, workers: maxWorkers, config: GemmConfig.current)
}

/// cpuSgemm with a given micro-kernel and blocking (tests run every kernel the CPU supports).
/// `fewRows: false` sends small M through the packed path too. `packedB`: op(B) already in
/// panels (gemmPrepackB, with this configuration's NR), read there by the packed path instead
/// of packing B again; the few-row and few-column paths read B itself.
func cpuSgemm(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
              A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
              beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int, workers maxWorkers: Int?,
              config cfg: GemmConfig, fewRows: Bool = true, packedB: GemmPackedB? = nil) {
    if M <= 0 || N <= 0 { return }
    if K <= 0 || alpha == 0 {
        scaleC(M: M, N: N, beta: beta, C: C, ldc: ldc)
        return
    }
    let workers = M * N * K < GemmBlocking.parallelThreshold ? 1 : min(maxWorkers ?? CPUParallel.threadCount, CPUParallel.threadCount)
    let packs = !fewRows || cpuSgemmTakesPackedPath(M: M, N: N)
    if !packs && M > GemmBlocking.fewRows {
        // A few columns (LoRA's rank-r products: X·Aᵀ, the adapter gradient dB = dYᵀ·XA): the
        // packed path would pack all of op(A) for N ≤ 32 columns of work and pad the B panel
        // (measured 3 GFLOP/s for dB at 1536×8×1024 on a Zen 3). Cᵀ = op(B)ᵀ·op(A)ᵀ is a
        // few-row product that streams op(A) once; it is computed into scratch, then
        // transposed into C.
        sgemmFewColumns(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb,
                        beta: beta, C: C, ldc: ldc, workers: workers)
        return
    }
    if !packs {
        if transB {
            sgemmFewRowsDotB(transA: transA, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb,
                             beta: beta, C: C, ldc: ldc, workers: workers)
        } else {
            sgemmFewRowsAxpyB(transA: transA, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb,
                              beta: beta, C: C, ldc: ldc, workers: workers)
        }
        return
    }
    sgemmPacked(transA: transA, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, beta: beta, C: C, ldc: ldc,
                workers: workers, config: cfg, packedB: packedB,
                packB: f32BPacker(transB: transB, B: B, ldb: ldb, config: cfg))
}

/// Whether cpuSgemm runs an M × N product on its packed path (the one that reads a prepacked
/// B): more rows than the few-row path and more columns than the few-column path take.
@inline(__always) func cpuSgemmTakesPackedPath(M: Int, N: Int) -> Bool {
    M > GemmBlocking.fewRows && N > GemmBlocking.fewRows
}

/// op(B) (K,N) packed once for several products that read it (attention reads each KV head's
/// keys and values for every block of queries and every query head of its group): panel p
/// (columns p·NR ..< p·NR + NR, zero past N) is (K,NR) row-major at base + p·panelStride, so a
/// product over columns j0 ..< (j0 a multiple of NR) starts at panel j0/NR and one over rows
/// k0 ..< at base + k0·NR.
struct GemmPackedB {
    let base: UnsafePointer<Float>
    let panelStride: Int

    /// The same panels from column j0 (a multiple of `nr`) and row k0 on.
    func from(column j0: Int, row k0: Int, nr: Int) -> GemmPackedB {
        GemmPackedB(base: base + (j0 / nr) * panelStride + k0 * nr, panelStride: panelStride)
    }
}

/// Floats that gemmPrepackB writes for op(B) (K,N).
func gemmPrepackedFloats(K: Int, N: Int, config cfg: GemmConfig) -> Int {
    (N + cfg.nr - 1) / cfg.nr * cfg.nr * K
}

/// Packs all of op(B) (K,N) into dst (gemmPrepackedFloats of them) with the packers of the
/// packed path, and says where it lies.
func gemmPrepackB(transB: Bool, B: UnsafePointer<Float>, ldb: Int, K: Int, N: Int,
                  into dst: UnsafeMutablePointer<Float>, config cfg: GemmConfig) -> GemmPackedB {
    let nr = cfg.nr
    packBPanels(transB: transB, B: B, ldb: ldb, k0: 0, kc: K, j0: 0, cols: N, panels: 0..<((N + nr - 1) / nr), nr: nr,
                dst: dst, avx2: cfg.packsWithAVX2)
    return GemmPackedB(base: dst, panelStride: K * nr)
}

/// C (M,N) = alpha · op(A) · op(B) + beta · C for N ≤ GemmBlocking.fewRows < M, as the few-row
/// product Cᵀ (N,M) = op(B)ᵀ · op(A)ᵀ (op(B)ᵀ is B with the opposite transpose flag, likewise
/// op(A)ᵀ): as dot products written in place when A is not transposed, else into scratch, then
/// transposed into C with beta applied.
func sgemmFewColumns(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float, A: UnsafePointer<Float>, lda: Int,
                     B: UnsafePointer<Float>, ldb: Int, beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int,
                     workers: Int) {
    if !transA {
        // op(A)ᵀ with A stored (M,K): dot products of A's rows with op(B)ᵀ's rows, each written
        // to its place in C.
        sgemmFewRowsDotB(transA: !transB, M: N, N: M, K: K, alpha: alpha, A: B, lda: ldb, B: A, ldb: lda,
                         beta: beta, C: C, ldc: ldc, workers: workers, transC: true)
        return
    }
    // Cᵀ in a workspace from the free list: steady-state calls allocate nothing.
    let ws = GemmWorkspace.take(sharedFloats: N * M, perWorkerFloats: 0, workers: 1)
    defer { GemmWorkspace.give(ws) }
    let ct = ws.shared
    // op(A)ᵀ = A stored (K,M): the rows of A are the few-row path's B rows, read in place.
    sgemmFewRowsAxpyB(transA: !transB, M: N, N: M, K: K, alpha: alpha, A: B, lda: ldb, B: A, ldb: lda,
                      beta: 0, C: ct, ldc: M, workers: workers)
    for i in 0..<M {
        let row = C + i * ldc
        if beta == 0 {
            for j in 0..<N { row[j] = ct[j * M + i] }
        } else {
            for j in 0..<N { row[j] = ct[j * M + i] + beta * row[j] }
        }
    }
}

/// Writes the panels `panels` of the block op(B)[k0..<k0+kc, j0..<j0+cols] into dst as
/// packBPanels does (panel p (kc,NR) at p·kc·NR, zero past `cols`). Called from several threads
/// at once, for disjoint panels.
typealias GemmBPacker = (_ k0: Int, _ kc: Int, _ j0: Int, _ cols: Int, _ panels: Range<Int>, _ nr: Int,
                         _ dst: UnsafeMutablePointer<Float>) -> Void

/// The packed path of cpuSgemm (M > 0, N > 0, K > 0, alpha ≠ 0), with op(B) read only through
/// `packB`: f32 B is copied into panels, a B kept in another storage format (16-bit, quantised:
/// GemmHalf.swift) is converted while it is packed, in one pass.
///
/// The workers split C into a grid of regions (gemmWorkerGrid) and each computes its region
/// alone, with its own packed A and B blocks: no worker waits for another until the end, and no
/// worker reads what another packed. (Until 2026-11-30 the workers packed one shared B block
/// per K pass and split its A blocks, two barriers per pass; on a 2-vCPU Zen 3 the product ran at
/// 1.2× one thread's speed.) The price is that a region's A rows (or B columns) are packed once
/// per region that shares them; the grid is chosen to make that the smaller operand.
func sgemmPacked(transA: Bool, M: Int, N: Int, K: Int, alpha: Float, A: UnsafePointer<Float>, lda: Int,
                 beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int, workers: Int, config cfg: GemmConfig,
                 extra: GemmExtraPanels? = nil, packedB: GemmPackedB? = nil, packB: GemmBPacker) {
    let grid = gemmWorkerGrid(M: M, N: N, workers: workers, mr: cfg.mr, nr: cfg.nr)
    let regions = grid.rows * grid.cols
    @inline(__always) func region(_ r: Int) {
        let rowRange = gemmSplit(M, parts: grid.rows, part: r / grid.cols, unit: cfg.mr)
        let colRange = gemmSplit(N, parts: grid.cols, part: r % grid.cols, unit: cfg.nr)
        if rowRange.isEmpty || colRange.isEmpty { return }
        sgemmPackedRegion(transA: transA, rows: rowRange, cols: colRange, K: K, alpha: alpha, A: A, lda: lda,
                          beta: beta, C: C, ldc: ldc, regions: regions, config: cfg, extra: extra, packedB: packedB,
                          packB: packB)
    }
    if regions <= 1 { region(0); return }
    CPUParallel.run(regions) { region($0) }
}

/// How `workers` threads split C (M,N): `rows` × `cols` regions (rows · cols = workers, fewer
/// when C has fewer tiles). Every region of a row of regions packs the same rows of op(A), every
/// region of a column the same columns of op(B), so the grid minimises what is packed twice:
/// cols · M·K + rows · K·N, i.e. split along N when M < N and along M otherwise.
func gemmWorkerGrid(M: Int, N: Int, workers: Int, mr: Int, nr: Int) -> (rows: Int, cols: Int) {
    let mTiles = (M + mr - 1) / mr, nTiles = (N + nr - 1) / nr
    var best = (rows: 1, cols: 1), bestCost = Double.infinity
    var w = max(1, min(workers, mTiles * nTiles))
    while w >= 1 {
        for r in 1...w where w % r == 0 {
            let c = w / r
            if r > mTiles || c > nTiles { continue }
            let cost = Double(c) * Double(M) + Double(r) * Double(N)
            if cost < bestCost { best = (r, c); bestCost = cost }
        }
        if bestCost.isFinite { break }
        w -= 1
    }
    return best
}

/// Part `part` of `parts` near-equal ranges covering 0..<n, with boundaries at multiples of
/// `unit` (the last range takes the remainder).
@inline(__always) func gemmSplit(_ n: Int, parts: Int, part: Int, unit: Int) -> Range<Int> {
    let units = (n + unit - 1) / unit
    let lo = min(n, part * units / parts * unit), hi = min(n, (part + 1) * units / parts * unit)
    return lo..<hi
}

/// Near-equal blocks of at most `max` (M and N): as many as full blocks would take, each of the
/// same size rather than full ones and a thin remainder.
@inline(__always) func gemmBalancedBlock(_ n: Int, max limit: Int) -> Int {
    if n <= limit { return max(1, n) }
    let blocks = (n + limit - 1) / limit
    return (n + blocks - 1) / blocks
}

/// The depth of a K block: K split into the number of KC-deep blocks nearest to K / KC (at least
/// one), of equal depth, so at most 1.5 · KC deep. Every K block reads and writes all of its C
/// tiles once, so a thin last block pays that for few multiply-adds, and fewer blocks pay it
/// fewer times: with KC 512, K = 576 is one block (not 256 + 256 + 64), K = 896 two of 448,
/// K = 4864 ten of 487.
@inline(__always) func gemmKBlock(_ k: Int, kc: Int) -> Int {
    if k <= kc { return max(1, k) }
    let blocks = max(1, (k + kc / 2) / kc)
    return (k + blocks - 1) / blocks
}

/// The most rows of a packed A block for a K block `kcBlock` deep: MC is set for the nominal KC
/// (the block in half of L2), and a deeper K block (gemmKBlock allows 1.5 · KC) takes
/// proportionally fewer rows, so the block's bytes stay within what MC × KC holds. (At the 0.5B
/// model's K = 896, one block of 896 rows with KC 640, MC 252 packed 903 KB: 72% of an Ice Lake's
/// 1.25 MB L2, next to the streaming B panels.)
func gemmMCLimit(kcBlock: Int, config cfg: GemmConfig) -> Int {
    guard kcBlock > cfg.kc else { return cfg.mcMax }
    return max(cfg.mr, cfg.mcMax * cfg.kc / kcBlock / cfg.mr * cfg.mr)
}

/// The widest N block for a region of `rows` × `cols` of C over a depth K cut into blocks of
/// `kc`. Every A block of the region reads the whole packed B block (kc × NC): that block is kept
/// within the region's share of a quarter of L3. With several K blocks, every K block also
/// revisits the region's C strip (rows × NC): strip and B block are then kept within the
/// region's share of half of L3, so that the strip does not go back to memory between K blocks
/// (the LM head's logits, C 1024 × 49152 over K blocks of 192, ran 3–6% faster so when KC was
/// 256). But every N block past the first packs the region's A rows (rows × K) again, so the
/// strip sets NC only where it fits and the repacking moves less than the strip would, and never
/// below the B block's bound for one K block, where C is written once (Qwen2.5-0.5B's head
/// gradient, dW = dLogitsᵀ · hidden, 151,936 × 896 over K 510, packed its 75,968 rows of A seven
/// times, once per N block of 128), nor for a strip too tall for 4 panels of it to fit. Never
/// above the configuration's NC, nor below 4 panels unless NC is.
func gemmNCLimit(rows: Int, cols: Int, K: Int, kc: Int, regions: Int, config cfg: GemmConfig) -> Int {
    let share = cfg.l3Bytes / 2 / max(1, regions)
    func limit(_ fit: Int) -> Int { min(cfg.nc, max(4 * cfg.nr, fit / cfg.nr * cfg.nr)) }
    let bBlockOnly = limit(share / 2 / max(1, kc * 4))
    let stripFit = share / max(1, (rows + kc) * 4)
    // 0 where not even 4 panels of the strip fit.
    let withStrip = stripFit >= 4 * cfg.nr ? limit(stripFit) : 0
    let kBlocks = (K + max(1, kc) - 1) / max(1, kc)
    // One K block: the strip's bound where it is the larger (few rows: as before), else the B block's.
    guard kBlocks > 1 else { return max(bBlockOnly, withStrip) }
    if withStrip == 0 { return bBlockOnly }
    if withStrip >= min(cols, bBlockOnly) { return withStrip }
    // A packed once more per extra N block (rows × K each) against C read and written once less
    // per K block after the first (rows × cols each way); rows cancel.
    let extraBlocks = (cols + withStrip - 1) / withStrip - (cols + bBlockOnly - 1) / bBlockOnly
    return extraBlocks * K < (kBlocks - 1) * 2 * cols ? withStrip : bBlockOnly
}

/// One region of C, rows × cols, computed by the calling thread alone: the BLIS loops around the
/// micro-kernel, with packing buffers from a workspace of its own.
private func sgemmPackedRegion(transA: Bool, rows rowRange: Range<Int>, cols colRange: Range<Int>, K: Int,
                               alpha: Float, A: UnsafePointer<Float>, lda: Int, beta: Float,
                               C: UnsafeMutablePointer<Float>, ldc: Int, regions: Int, config cfg: GemmConfig,
                               extra: GemmExtraPanels?, packedB prepacked: GemmPackedB?, packB: GemmBPacker) {
    let mr = cfg.mr, nr = cfg.nr
    let M = rowRange.count, N = colRange.count
    // Blocks of K, M and N of equal size rather than full ones and a thin remainder.
    let kcBlock = gemmKBlock(K, kc: cfg.kc)
    let mc = gemmRoundUp(gemmBalancedBlock(M, max: gemmMCLimit(kcBlock: kcBlock, config: cfg)), mr)
    let ncBlock = gemmRoundUp(gemmBalancedBlock(N, max: gemmNCLimit(rows: M, cols: N, K: K, kc: kcBlock, regions: regions,
                                                                  config: cfg)), nr)
    let ws = GemmWorkspace.take(sharedFloats: prepacked == nil ? kcBlock * ncBlock : 0, perWorkerFloats: mc * kcBlock, workers: 1)
    defer { GemmWorkspace.give(ws) }
    let scratch = ws.scratch(0)

    var jc = 0
    while jc < N {
        let nc = min(ncBlock, N - jc), j0 = colRange.lowerBound + jc
        let panels = (nc + nr - 1) / nr
        var pc = 0
        while pc < K {
            let kc = min(kcBlock, K - pc)
            // C is scaled by beta once, with the first K block; later blocks accumulate.
            let betaBlock: Float = pc == 0 ? beta : 1
            let packedB: UnsafePointer<Float>, panelStride: Int
            if let prepacked {
                let block = prepacked.from(column: j0, row: pc, nr: nr)
                (packedB, panelStride) = (block.base, block.panelStride)
            } else {
                packB(pc, kc, j0, nc, 0..<panels, nr, ws.shared)
                (packedB, panelStride) = (UnsafePointer(ws.shared), kc * nr)
            }
            var ic = 0
            while ic < M {
                let i0 = rowRange.lowerBound + ic, rows = min(mc, M - ic)
                packABlock(transA: transA, A: A, lda: lda, i0: i0, rows: rows, k0: pc, kc: kc, mr: mr,
                           dst: scratch.buffer, avx2: cfg.packsWithAVX2)
                // The extra panels join the last K block, in the same pass over C.
                macroKernel(kc: kc, packedA: scratch.buffer, rows: rows, packedB: packedB, bPanelStride: panelStride, panels: 0..<panels,
                            cols: nc, C: C + i0 * ldc + j0, ldc: ldc, alpha: alpha, beta: betaBlock,
                            tile: scratch.tile, config: cfg,
                            extra: pc + kc == K ? extra?.at(rowPanel: i0 / mr, colPanel: j0 / nr, mr: mr, nr: nr) : nil)
                ic += rows
            }
            pc += kc
        }
        jc += nc
    }
}

@inline(__always) func gemmRoundUp(_ x: Int, _ m: Int) -> Int { (x + m - 1) / m * m }

/// Calls `body(worker, range)` once per worker on contiguous ranges covering 0..<count
/// (inline with one worker). The split depends only on count and workers, so results are
/// reproducible.
@inline(__always)
func parallelRanges(_ count: Int, workers: Int, _ body: (Int, Range<Int>) -> Void) {
    let chunks = min(workers, count)
    if chunks <= 1 { body(0, 0..<count); return }
    CPUParallel.run(chunks) { c in
        body(c, c * count / chunks ..< (c + 1) * count / chunks)
    }
}

/// C = beta · C for K = 0 or alpha = 0 (beta = 0 writes zeros without reading C).
private func scaleC(M: Int, N: Int, beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<M {
        let row = C + i * ldc
        if beta == 0 {
            row.update(repeating: 0, count: N)
        } else if beta != 1 {
            for j in 0..<N { row[j] *= beta }
        }
    }
}

// MARK: packing

/// B panels `panels` of the block op(B)[k0..<k0+kc, j0..<j0+cols] into dst, panel p (kc,NR)
/// at p·kc·NR, zero past `cols`. Untransposed B is copied a group of panels at a time along
/// its rows, so that reads are runs of 1 KiB rather than NR floats from each of kc rows.
/// `avx2`: a transposed B is packed by the C AVX2 8×8 transposes (with the C kernels), else in
/// Swift (with the Swift kernel, so that GemmDispatchTests' per-kernel runs test both).
func packBPanels(transB: Bool, B: UnsafePointer<Float>, ldb: Int, k0: Int, kc: Int, j0: Int, cols: Int,
                 panels: Range<Int>, nr: Int, dst: UnsafeMutablePointer<Float>, avx2: Bool) {
    let group = 8
    let fullPanels = cols / nr
    var p = panels.lowerBound
    if !transB {
        // NR is 8, 16 or 32 floats: copied as NR/8 vectors of 8.
        typealias V8 = SIMD8<Float>
        let rowBytes = ldb * 4, panelBytes = kc * nr * 4, nrBytes = nr * 4
        while p < panels.upperBound && p < fullPanels {
            let count = min(group, panels.upperBound - p, fullPanels - p)
            let src = UnsafeRawPointer(B + k0 * ldb + j0 + p * nr), out = UnsafeMutableRawPointer(dst + p * kc * nr)
            for k in 0..<kc {
                for g in 0..<count {
                    let from = k * rowBytes + g * nrBytes, to = g * panelBytes + k * nrBytes
                    var o = 0
                    while o < nrBytes {
                        out.storeBytes(of: src.loadUnaligned(fromByteOffset: from + o, as: V8.self),
                                       toByteOffset: to + o, as: V8.self)
                        o += 32
                    }
                }
            }
            p += count
        }
    } else if nr % 8 == 0 {
        // op(B)[k, j] = B[j, k]: 8 rows of B at a time, 8 values of each, transposed in
        // registers into 8 runs of 8 along the panel's rows.
        while p < panels.upperBound && p < fullPanels {
            let jp = j0 + p * nr, out = dst + p * kc * nr
            var j = 0
            while j < nr {
                let rows = B + (jp + j) * ldb + k0
                if avx2 {
                    itune_pack_f32_rows8_avx2(rows, ldb, kc, out + j, nr)
                    j += 8
                    continue
                }
                var k = 0
                while k + 8 <= kc {
                    transpose8x8(rows + k, ldb, out + k * nr + j, nr)
                    k += 8
                }
                while k < kc {
                    for t in 0..<8 { out[k * nr + j + t] = rows[t * ldb + k] }
                    k += 1
                }
                j += 8
            }
            p += 1
        }
    }
    while p < panels.upperBound {
        let jp = j0 + p * nr, width = min(nr, cols - p * nr), out = dst + p * kc * nr
        if transB {
            // op(B)[k, j] = B[j, k]: each row of B is read contiguously and scattered down one
            // column of the panel (the panel stays in L1 meanwhile).
            for j in 0..<width {
                let src = B + (jp + j) * ldb + k0
                for k in 0..<kc { out[k * nr + j] = src[k] }
            }
        } else {
            for k in 0..<kc {
                let src = B + (k0 + k) * ldb + jp
                for j in 0..<width { out[k * nr + j] = src[j] }
            }
        }
        if width < nr {
            for k in 0..<kc { for j in width..<nr { out[k * nr + j] = 0 } }
        }
        p += 1
    }
}

/// One A block: dst holds ceil(rows/MR) micro-panels, each (kc, MR) with the MR rows of a
/// column side by side; rows past `rows` are zero. `avx2`: an untransposed A is packed by the C
/// AVX2 transposes (with the C kernels), else in Swift (with the Swift kernel, so that
/// GemmDispatchTests' per-kernel runs test both). One value at a time, the 12-row panels of the
/// AVX-512 kernel took 6–14% of a product's time on an Ice Lake (perf, one thread, the step's
/// shapes).
func packABlock(transA: Bool, A: UnsafePointer<Float>, lda: Int, i0: Int, rows: Int, k0: Int, kc: Int,
                mr: Int, dst: UnsafeMutablePointer<Float>, avx2: Bool) {
    if transA {
        packTransposedABlock(A: A, lda: lda, i0: i0, rows: rows, k0: k0, kc: kc, mr: mr, dst: dst)
        return
    }
    var q = 0
    while q * mr < rows {
        let out = dst + q * kc * mr
        let r0 = i0 + q * mr, height = min(mr, rows - q * mr)
        if avx2 {
            itune_pack_f32_rows_avx2(A + r0 * lda + k0, lda, height, kc, out, mr)
            if height < mr { for k in 0..<kc { for r in height..<mr { out[k * mr + r] = 0 } } }
        } else if height == 6 && mr == 6 {
            let s0 = A + r0 * lda + k0, s1 = s0 + lda, s2 = s1 + lda, s3 = s2 + lda, s4 = s3 + lda, s5 = s4 + lda
            for k in 0..<kc {
                let col = out + k * mr
                col[0] = s0[k]; col[1] = s1[k]; col[2] = s2[k]
                col[3] = s3[k]; col[4] = s4[k]; col[5] = s5[k]
            }
        } else {
            for r in 0..<height {
                let src = A + (r0 + r) * lda + k0
                for k in 0..<kc { out[k * mr + r] = src[k] }
            }
            for k in 0..<kc { for r in height..<mr { out[k * mr + r] = 0 } }
        }
        q += 1
    }
}

/// packABlock for op(A) = Aᵀ, A stored (K, M): the MR values of one k are contiguous in A's row
/// k. The block is copied eight rows of A at a time across all of its micro-panels, so that each
/// line of A is read once while it is in L1 (eight rows: one per way of an 8-way L1 where the
/// rows alias; 4, 16 and 32 measured slower at the LM head's shape, 2.3× faster than before). (Panel by panel, each panel read MR values from
/// each of kc rows; where A's rows lie a multiple of 4 KiB apart — the LM head's weight gradient,
/// rows of 49152 floats — every row falls in the same L1 and L2 sets, a line was evicted before
/// the next panel used its other values, and the product ran at a third of its speed.)
func packTransposedABlock(A: UnsafePointer<Float>, lda: Int, i0: Int, rows: Int, k0: Int, kc: Int,
                          mr: Int, dst: UnsafeMutablePointer<Float>) {
    let panels = (rows + mr - 1) / mr, step = 8
    var k = 0
    while k < kc {
        let kn = min(step, kc - k)
        for q in 0..<panels {
            let r0 = i0 + q * mr, height = min(mr, rows - q * mr)
            let src = A + (k0 + k) * lda + r0, out = dst + q * kc * mr + k * mr
            if height == 6 && mr == 6 {
                for t in 0..<kn {
                    let s = UnsafeRawPointer(src + t * lda), o = UnsafeMutableRawPointer(out + t * 6)
                    o.storeBytes(of: s.loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
                    o.storeBytes(of: s.loadUnaligned(fromByteOffset: 16, as: SIMD2<Float>.self), toByteOffset: 16,
                                 as: SIMD2<Float>.self)
                }
            } else if height == 12 && mr == 12 {
                for t in 0..<kn {
                    let s = UnsafeRawPointer(src + t * lda), o = UnsafeMutableRawPointer(out + t * 12)
                    o.storeBytes(of: s.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                    o.storeBytes(of: s.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self), toByteOffset: 32,
                                 as: SIMD4<Float>.self)
                }
            } else {
                for t in 0..<kn {
                    let s = src + t * lda, o = out + t * mr
                    for r in 0..<height { o[r] = s[r] }
                    for r in height..<mr { o[r] = 0 }
                }
            }
        }
        k += kn
    }
}

// MARK: compute

/// C block (rows, cols) = alpha · packed A block · B panels `panels` + beta · C.
/// The B micro-panel is the outer loop so that it stays in L1 across the A micro-panels.
@inline(__always)
private func macroKernel(kc: Int, packedA: UnsafeMutablePointer<Float>, rows: Int,
                         packedB: UnsafePointer<Float>, bPanelStride: Int, panels: Range<Int>, cols: Int,
                         C: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float,
                         tile: UnsafeMutablePointer<Float>, config cfg: GemmConfig, extra: GemmExtraPanels? = nil) {
    let mr = cfg.mr, nr = cfg.nr
    @inline(__always) func kernel(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                  _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ alpha: Float, _ beta: Float) {
        if let ukr = cfg.kernel {
            ukr(kc, a, b, c, ldc, alpha, beta)
        } else {
            microKernel(kc: kc, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
        }
    }
    // The tile at A micro-panel q, B panel p: with extra panels, their product is added before
    // C is stored (or, without a two-pair kernel, by a second call that accumulates).
    @inline(__always) func tileProduct(_ q: Int, _ p: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                       _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ alpha: Float, _ beta: Float) {
        guard let e = extra else { kernel(kc, a, b, c, ldc, alpha, beta); return }
        let a2 = e.a + q * e.r * mr, b2 = e.b + p * e.r * nr
        if let ukr2 = cfg.kernel2 {
            ukr2(kc, a, b, e.r, a2, b2, c, ldc, alpha, beta)
        } else {
            kernel(kc, a, b, c, ldc, alpha, beta)
            kernel(e.r, a2, b2, c, ldc, alpha, 1)
        }
    }
    for p in panels {
        let bp = packedB + p * bPanelStride
        let j0 = p * nr, width = min(nr, cols - j0)
        var i0 = 0
        while i0 < rows {
            let ap = UnsafePointer(packedA + i0 * kc)
            let height = min(mr, rows - i0)
            let c = C + i0 * ldc + j0
            if height == mr && width == nr {
                tileProduct(i0 / mr, p, ap, bp, c, ldc, alpha, beta)
            } else {
                // Edge tile: compute the whole tile into scratch, then write the part that exists.
                tileProduct(i0 / mr, p, ap, bp, tile, nr, 1, 0)
                for r in 0..<height {
                    let src = tile + r * nr, dst = c + r * ldc
                    if beta == 0 {
                        for j in 0..<width { dst[j] = alpha * src[j] }
                    } else {
                        for j in 0..<width { dst[j] = alpha * src[j] + beta * dst[j] }
                    }
                }
            }
            i0 += mr
        }
    }
}

/// The pure-Swift micro-kernel, 6 × 2 vectors of the build's width (GemmKernelKind.swift):
/// c (MR,NR) = alpha · a (MR,kc) · b (kc,NR) + beta · c, from a packed A micro-panel (kc,MR)
/// and a packed B micro-panel (kc,NR). The 12 accumulators stay in registers through the
/// loop.
@inline(__always)
private func microKernel(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                         c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
    typealias V = GemmVector
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
    var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
    let braw = UnsafeRawPointer(b)
    let vb = MemoryLayout<V>.size
    var ap = a
    for k in 0..<kc {
        let b0 = braw.load(fromByteOffset: 2 * k * vb, as: V.self)
        let b1 = braw.load(fromByteOffset: 2 * k * vb + vb, as: V.self)
        let a0 = V(repeating: ap[0]), a1 = V(repeating: ap[1]), a2 = V(repeating: ap[2])
        c00 = gemmMultiplyAdd(c00, a0, b0); c01 = gemmMultiplyAdd(c01, a0, b1)
        c10 = gemmMultiplyAdd(c10, a1, b0); c11 = gemmMultiplyAdd(c11, a1, b1)
        c20 = gemmMultiplyAdd(c20, a2, b0); c21 = gemmMultiplyAdd(c21, a2, b1)
        let a3 = V(repeating: ap[3]), a4 = V(repeating: ap[4]), a5 = V(repeating: ap[5])
        c30 = gemmMultiplyAdd(c30, a3, b0); c31 = gemmMultiplyAdd(c31, a3, b1)
        c40 = gemmMultiplyAdd(c40, a4, b0); c41 = gemmMultiplyAdd(c41, a4, b1)
        c50 = gemmMultiplyAdd(c50, a5, b0); c51 = gemmMultiplyAdd(c51, a5, b1)
        ap += 6
    }
    let craw = UnsafeMutableRawPointer(c)
    let rowBytes = ldc * 4
    let va = V(repeating: alpha), vbeta = V(repeating: beta)
    @inline(__always) func store(_ x: V, _ offset: Int) {
        if beta == 0 {
            craw.storeBytes(of: va * x, toByteOffset: offset, as: V.self)
        } else {
            let old = UnsafeRawPointer(craw).loadUnaligned(fromByteOffset: offset, as: V.self)
            craw.storeBytes(of: gemmMultiplyAdd(vbeta * old, va, x), toByteOffset: offset, as: V.self)
        }
    }
    store(c00, 0); store(c01, vb)
    store(c10, rowBytes); store(c11, rowBytes + vb)
    store(c20, 2 * rowBytes); store(c21, 2 * rowBytes + vb)
    store(c30, 3 * rowBytes); store(c31, 3 * rowBytes + vb)
    store(c40, 4 * rowBytes); store(c41, 4 * rowBytes + vb)
    store(c50, 5 * rowBytes); store(c51, 5 * rowBytes + vb)
}

/// dst[t * ldd + r] = src[r * lds + t] for an 8 × 8 block, in registers.
@inline(__always)
private func transpose8x8(_ src: UnsafePointer<Float>, _ lds: Int, _ dst: UnsafeMutablePointer<Float>, _ ldd: Int) {
    typealias V = SIMD8<Float>
    let s = UnsafeRawPointer(src), rb = lds * 4
    let r0 = s.loadUnaligned(as: V.self), r1 = s.loadUnaligned(fromByteOffset: rb, as: V.self)
    let r2 = s.loadUnaligned(fromByteOffset: 2 * rb, as: V.self), r3 = s.loadUnaligned(fromByteOffset: 3 * rb, as: V.self)
    let r4 = s.loadUnaligned(fromByteOffset: 4 * rb, as: V.self), r5 = s.loadUnaligned(fromByteOffset: 5 * rb, as: V.self)
    let r6 = s.loadUnaligned(fromByteOffset: 6 * rb, as: V.self), r7 = s.loadUnaligned(fromByteOffset: 7 * rb, as: V.self)
    let d = UnsafeMutableRawPointer(dst), db = ldd * 4
    for t in 0..<8 {
        let v = V(r0[t], r1[t], r2[t], r3[t], r4[t], r5[t], r6[t], r7[t])
        d.storeBytes(of: v, toByteOffset: t * db, as: V.self)
    }
}
