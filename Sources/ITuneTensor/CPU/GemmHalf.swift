import CGemmKernels
import Foundation

// GEMM with a B operand kept in a storage format other than f32: a frozen weight as bf16 or
// f16 (here), or blockwise quantised (Quant/GemmQuant.swift). Accumulation is f32 throughout.
//
//   few rows, 16-bit B stored (N,K)     GemvHalf.swift: each weight row read once, converted in
//                                       registers, for all M ≤ 8 rows (decoding)
//   more rows (M > GemmBlocking.fewRows) Gemm.swift's packed path, B converted while it is packed:
//                                       the packing reads the stored values and writes the f32
//                                       panel directly (one pass over B)
//   the rest (9…32 rows, or quantised  a block of op(B) (≤ 2 MiB of f32) converted into a reused
//   with few rows)                      workspace, then the unpacked few-row paths on it
//
// The whole f32 matrix never exists: the extra memory is one packed panel block (or one block).

/// Rows and columns of one converted block of op(B) on the few-row route.
enum GemmHalfBlocking {
    /// Depth of a block: deep enough that C is read and written few times.
    static let kb = 2048
    /// f32 values of one converted block (2 MiB: inside L3, beside cpuSgemm's own packing).
    static let blockFloats = 1 << 19
}

/// How the converting GEMM reads a B kept in a storage format: runs of B's stored rows (B's own
/// layout: (N,K) for a transposed operand) as f32. Both are called from several threads at once.
struct StoredRowReader {
    /// dst[0..<count] = stored row `row`, columns col0..<col0+count, as f32.
    let read: (_ row: Int, _ col0: Int, _ count: Int, _ dst: UnsafeMutablePointer<Float>) -> Void
    /// Where the format has a faster way: 8 stored rows row..<row+8, columns col0..<col0+count,
    /// transposed: dst[c · ldd + r] (8 columns of a packed panel).
    var readTransposed8: ((_ row: Int, _ col0: Int, _ count: Int, _ dst: UnsafeMutablePointer<Float>, _ ldd: Int) -> Void)?
}

/// Row-major C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C, where B holds 16-bit
/// values of `format` (`.bf16` or `.f16`) with row stride ldb: B is (K,N), or (N,K) when
/// `transB` (a linear layer's weight). beta = 0 means C is not read.
func cpuSgemmW16(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                 A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<UInt16>, format: DType, ldb: Int,
                 beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
    if transB && M <= Gemv16.maxRows && K > 0 && alpha != 0 {
        cpuGemv16(transA: transA, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, format: format, ldb: ldb,
                  beta: beta, C: C, ldc: ldc)
        return
    }
    cpuSgemmConvertingB(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda,
                        beta: beta, C: C, ldc: ldc, reader: w16RowReader(B, format: format, ldb: ldb))
}

/// The reader of a 16-bit matrix with row stride ldb.
func w16RowReader(_ B: UnsafePointer<UInt16>, format: DType, ldb: Int) -> StoredRowReader {
    var reader = StoredRowReader(read: { row, col0, count, dst in
        convertW16(B + row * ldb + col0, count: count, format: format, into: dst)
    })
    if W16Conversion.native(format) {
        let code = Int32(W16Conversion.code(format))
        reader.readTransposed8 = { row, col0, count, dst, ldd in
            itune_pack_w16_rows8_avx2(code, B + row * ldb + col0, ldb, count, dst, ldd)
        }
    }
    return reader
}

/// The blocked driver shared by every stored format of B: `reader` reads B's stored rows
/// (B's own layout: (N,K) when `transB`). More than GemmBlocking.fewRows rows and columns go
/// through the packed path with B converted as it is packed; fewer, or `onePass: false` (tests
/// compare the two), convert a block of B at a time into a workspace for cpuSgemm.
func cpuSgemmConvertingB(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                         A: UnsafePointer<Float>, lda: Int, beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int,
                         reader: StoredRowReader, onePass: Bool = true) {
    if M <= 0 || N <= 0 { return }
    if K <= 0 || alpha == 0 {
        // Nothing of B is read: cpuSgemm scales C by beta.
        var dummy: Float = 0
        cpuSgemm(transA: transA, transB: false, M: M, N: N, K: 0, alpha: alpha, A: A, lda: lda, B: &dummy, ldb: 1,
                 beta: beta, C: C, ldc: ldc)
        return
    }
    // A few columns (N ≤ GemmBlocking.fewRows) take the block path below: B's block is small, and
    // cpuSgemm computes it as the transposed few-row product, as it does for an f32 B.
    if onePass && M > GemmBlocking.fewRows && N > GemmBlocking.fewRows {
        let workers = M * N * K < GemmBlocking.parallelThreshold ? 1 : CPUParallel.threadCount
        sgemmPacked(transA: transA, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, beta: beta, C: C, ldc: ldc,
                    workers: workers, config: GemmConfig.current, packB: storedBPacker(reader, transB: transB))
        return
    }
    let kb = min(K, GemmHalfBlocking.kb)
    let nbLimit = max(GemmBlocking.nr * 4, GemmHalfBlocking.blockFloats / kb / GemmBlocking.nr * GemmBlocking.nr)
    let nb = min(N, nbLimit)
    let ws = GemmWorkspace.take(sharedFloats: kb * nb, perWorkerFloats: 0, workers: 1)
    defer { GemmWorkspace.give(ws) }
    let block = ws.shared
    var j0 = 0
    while j0 < N {
        let cols = min(nb, N - j0)
        var k0 = 0
        while k0 < K {
            let depth = min(kb, K - k0)
            // The block op(B)[k0..<k0+depth, j0..<j0+cols] in B's own layout: (cols, depth) for
            // transB, (depth, cols) otherwise, so that both the reads and the writes run along rows.
            if transB {
                readRows(reader, row0: j0, rows: cols, col0: k0, cols: depth, into: block)
            } else {
                readRows(reader, row0: k0, rows: depth, col0: j0, cols: cols, into: block)
            }
            let a = transA ? A + k0 * lda : A + k0
            cpuSgemm(transA: transA, transB: transB, M: M, N: cols, K: depth, alpha: alpha, A: a, lda: lda,
                     B: block, ldb: transB ? depth : cols, beta: k0 == 0 ? beta : 1, C: C + j0, ldc: ldc)
            k0 += depth
        }
        j0 += cols
    }
}

/// dst (rows, cols), densely packed = stored rows row0..<row0+rows, columns col0..<col0+cols.
private func readRows(_ reader: StoredRowReader, row0: Int, rows: Int, col0: Int, cols: Int,
                      into dst: UnsafeMutablePointer<Float>) {
    let grain = max(1, 16_384 / max(cols, 1))
    CPUParallel.forEach(rows, grain: grain) { range in
        for r in range { reader.read(row0 + r, col0, cols, dst + r * cols) }
    }
}

/// The packer of a stored op(B) for sgemmPacked (packStoredBPanels), as f32BPacker for f32.
func storedBPacker(_ reader: StoredRowReader, transB: Bool) -> GemmBPacker {
    { k0, kc, j0, cols, panels, nr, dst in
        packStoredBPanels(reader, transB: transB, k0: k0, kc: kc, j0: j0, cols: cols, panels: panels, nr: nr, dst: dst)
    }
}

/// Gemm.swift's B panels (panel p (kc,NR) at p·kc·NR, zero past `cols`) of the block
/// op(B)[k0..<k0+kc, j0..<j0+cols], converted from the stored format as they are written.
func packStoredBPanels(_ reader: StoredRowReader, transB: Bool, k0: Int, kc: Int, j0: Int, cols: Int,
                       panels: Range<Int>, nr: Int, dst: UnsafeMutablePointer<Float>) {
    var p = panels.lowerBound
    if !transB {
        // A row of a panel is a run of a stored row: a group of full panels is read as one run
        // of each stored row (up to 256 values, into an L1 buffer), then copied into its
        // panels. (Panel by panel, every row was a reader call for NR values — a quantised
        // format's part of a block — from kc rows a stored row apart: the input gradient
        // dY·W over a bf16 base ran 0.77× its f32 product at Qwen2.5-0.5B's 512×896×4864.)
        let group = max(1, 256 / nr), fullPanels = min(panels.upperBound, cols / nr)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: group * nr) { run in
            let r = run.baseAddress!
            while p < fullPanels {
                let count = min(group, fullPanels - p), jp = j0 + p * nr
                for k in 0..<kc {
                    reader.read(k0 + k, jp, count * nr, r)
                    for g in 0..<count {
                        (dst + (p + g) * kc * nr + k * nr).update(from: r + g * nr, count: nr)
                    }
                }
                p += count
            }
        }
    }
    while p < panels.upperBound {
        defer { p += 1 }
        let jp = j0 + p * nr, width = min(nr, cols - p * nr), out = dst + p * kc * nr
        if !transB {
            // A row of the panel is a run of a stored row.
            for k in 0..<kc {
                reader.read(k0 + k, jp, width, out + k * nr)
                if width < nr { (out + k * nr + width).update(repeating: 0, count: nr - width) }
            }
            continue
        }
        // op(B)[k, j] = B[j, k]: a column of the panel is a run of a stored row. Eight stored
        // rows at a time are converted and transposed in registers where the format can; the
        // rest is read a row at a time into an L1 buffer and scattered down its column.
        var j = 0
        if let transposed = reader.readTransposed8 {
            while j + 8 <= width {
                transposed(jp + j, k0, kc, out + j, nr)
                j += 8
            }
        }
        if j < width {
            withUnsafeTemporaryAllocation(of: Float.self, capacity: kc) { row in
                let r = row.baseAddress!
                for jj in j..<width {
                    reader.read(jp + jj, k0, kc, r)
                    for k in 0..<kc { out[k * nr + jj] = r[k] }
                }
            }
        }
        if width < nr {
            for k in 0..<kc { (out + k * nr + width).update(repeating: 0, count: nr - width) }
        }
    }
}

/// Which 16-bit conversions run as CGemmKernels' AVX2 (+ F16C) code on this CPU.
enum W16Conversion {
    /// bf16: AVX2 (with FMA, for the GEMV); f16: also F16C.
    static let bf16: Bool = GemmKernelKind.avx2.isSupported
    static let f16: Bool = GemmKernelKind.avx2.isSupported && GemmCPU.features & UInt32(ITUNE_CPU_X86_F16C) != 0

    static func native(_ format: DType) -> Bool { format == .bf16 ? bf16 : f16 }

    /// The C code of a format (ITUNE_W16_BF16 / ITUNE_W16_F16).
    static func code(_ format: DType) -> Int { format == .bf16 ? Int(ITUNE_W16_BF16) : Int(ITUNE_W16_F16) }
}

/// dst[0..<count] = the 16-bit values of `format` at src, as f32 (exact).
@inline(__always)
func convertW16(_ src: UnsafePointer<UInt16>, count: Int, format: DType, into dst: UnsafeMutablePointer<Float>) {
    if W16Conversion.native(format) {
        itune_w16_to_f32_avx2(Int32(W16Conversion.code(format)), src, count, dst)
        return
    }
    convertW16Portable(src, count: count, format: format, into: dst)
}

/// convertW16 in Swift alone (CPUs without AVX2 / F16C, arm64).
func convertW16Portable(_ src: UnsafePointer<UInt16>, count: Int, format: DType, into dst: UnsafeMutablePointer<Float>) {
    if format == .bf16 {
        // bf16 is the high half of an f32: widen and shift, eight at a time.
        var i = 0
        let raw = UnsafeRawPointer(src), out = UnsafeMutableRawPointer(dst)
        while i + 8 <= count {
            let h = raw.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self)
            let w = SIMD8<UInt32>(truncatingIfNeeded: h) &<< 16
            out.storeBytes(of: w, toByteOffset: 4 * i, as: SIMD8<UInt32>.self)
            i += 8
        }
        while i < count { dst[i] = bfloat16ToFloat(src[i]); i += 1 }
    } else {
        for i in 0..<count { dst[i] = halfToFloat(src[i]) }
    }
}
