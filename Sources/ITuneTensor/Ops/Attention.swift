import Foundation

// Fused scaled-dot-product attention with grouped-query heads. Kernels: Kernels/attention.cl.
//
// Neither backend materialises the (Tq, Tk) score matrix: the forward keeps one running max and
// sum per query row and saves logsumexp (B,NH,Tq); the backward recomputes each probability as
// exp(q·k·scale − logsumexp). Memory is O(B·T·H·D) at any sequence length.

/// Packed rows: which positions of a row belong to the same example, so that attention stays
/// inside each example when several short ones share one row of the batch.
public struct AttentionSegments {
    /// (B, T) i32: the first position of the example that holds each position.
    public let starts: Tensor
    /// (B, T) i32: one past the last position of that example.
    public let ends: Tensor
    public let batch: Int
    public let length: Int

    /// `lengths[b]` lists the lengths of the examples packed into row b, in order; positions
    /// after the last example (padding) form one more segment of their own.
    public init(lengths: [[Int]], rowLength T: Int, on device: Device = .cpu) throws {
        var starts = [Int32](), ends = [Int32]()
        starts.reserveCapacity(lengths.count * T)
        ends.reserveCapacity(lengths.count * T)
        for (b, row) in lengths.enumerated() {
            guard !row.contains(where: { $0 < 0 }), row.reduce(0, +) <= T else {
                throw TensorError.invalidArgument(op: "AttentionSegments",
                                                  "row \(b): lengths \(row) must be ≥ 0 and sum to at most the row length \(T)")
            }
            var p = 0
            for n in row + [T - row.reduce(0, +)] where n > 0 {
                starts += [Int32](repeating: Int32(p), count: n)
                ends += [Int32](repeating: Int32(p + n), count: n)
                p += n
            }
        }
        self.starts = try Tensor(indices: starts, shape: [lengths.count, T], on: device)
        self.ends = try Tensor(indices: ends, shape: [lengths.count, T], on: device)
        batch = lengths.count
        length = T
    }
}

extension Tensor {
    /// softmax(q·kᵀ·scale + mask)·v per head, the attention of every decoder here.
    ///
    /// q is (B,Tq,NH,D); k and v are (B,Tk,NKV,D) with NH a multiple of NKV (grouped-query
    /// attention: query head h reads kv head h / (NH/NKV)); the result is (B,Tq,NH,D). With
    /// Tq < Tk the queries are the last Tq positions (decoding with a KV cache). `causal` lets
    /// query t see keys ≤ t + Tk − Tq; `segments` ((B, Tk)) keeps packed examples apart: a
    /// query sees only its own example's keys, earlier ones and, without `causal`, later ones
    /// (with Tq < Tk, under no gradient: the segments of all Tk positions, queries the last Tq).
    /// `scale` defaults to 1/√D.
    ///
    /// `bias`, when given, is added to every score before the softmax: a (B|1, Tq|1, Tk, NH|1)
    /// tensor, a dimension of 1 broadcast (T5's relative-position bias is (1,Tq,Tk,NH), its
    /// padding masks (B,1,Tk,1) of 0 and a large negative number). Its gradient is taken when
    /// it requires one, for the shapes (B,Tq,Tk,NH) and (1,Tq,Tk,NH). Without `causal` and
    /// `segments`, Tq may exceed Tk (cross-attention).
    ///
    /// `keyLength`, under no gradient: k and v hold room for more positions per batch row than
    /// there are keys (a KV cache's buffers, (B, capacity, NKV, D)), and the first `keyLength`
    /// of each row are the keys (Tk = keyLength): a batch's cached keys are read in place.
    public static func scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, causal: Bool = true,
                                                 scale: Float? = nil, segments: AttentionSegments? = nil,
                                                 bias: Tensor? = nil, keyLength: Int? = nil) throws -> Tensor {
        let dims = try AttentionDims(q: q, k: k, v: v, segments: segments, causal: causal, keyLength: keyLength)
        let biasLayout = try bias.map { try AttentionBiasLayout($0, dims) }
        let scale = scale ?? 1 / Float(dims.D).squareRoot()
        let out = try Tensor.empty(q.shape, on: q.device)
        // (B,NH,Tq): log Σ_j exp(score) of each query row, kept on purpose for the backward.
        let lse = try Tensor.empty([dims.B, dims.NH, dims.Tq], on: q.device)
        let segmentTensors = segments.map { [$0.starts, $0.ends] } ?? []
        switch try execution("attention", [q, k, v] + segmentTensors + (bias.map { [$0] } ?? [])) {
        case .cpu:
            attentionForwardCPU(dims, q.floats, k.floats, v.floats, out.floats, lse.floats, scale,
                                AttentionMask(causal: causal, segments, bias: bias, biasLayout))
        case let .opencl(cl):
            // Without segments (bias) the kernels read neither buffer (nor it); any buffer stands in.
            let (starts, ends) = (segments?.starts ?? lse, segments?.ends ?? lse)
            let b = biasLayout ?? AttentionBiasLayout.none
            try cl.attentionForward(try dims.grid(cl, rows: dims.Tq, heads: dims.NH), o: out, logsumexp: lse, q: q, k: k,
                                    v: v, segStart: starts, segEnd: ends, bias: bias ?? lse, Tq: dims.Tq, Tk: dims.Tk,
                                    kvRows: dims.kvRows, NH: dims.NH, NKV: dims.NKV, scale: scale, causal: causal, segments: segments != nil,
                                    hasBias: bias != nil, biasSb: b.sb, biasSt: b.st, biasSj: b.sj, biasSh: b.sh)
        }
        let inputs = [q, k, v] + (bias.map { [$0] } ?? [])
        GradientTape.record("attention", inputs: inputs, output: out) { dout in
            let wantBias = bias?.requiresGrad ?? false
            let (dq, dk, dv, dbias) = try attentionBackward(dims, q: q, k: k, v: v, out: out, lse: lse, dout: dout,
                                                            scale: scale, causal: causal, segments: segments,
                                                            bias: bias, biasLayout: biasLayout, wantBias: wantBias)
            var grads = [q.requiresGrad ? dq : nil, k.requiresGrad ? dk : nil, v.requiresGrad ? dv : nil]
            if let bias {
                // dbias is (B,Tq,Tk,NH); a bias shared by the batch rows gets their sum.
                grads.append(try dbias.map { g in
                    bias.shape[0] == dims.B ? g
                        : try g.reshaped([dims.B, dims.Tq * dims.Tk * dims.NH])
                            .sumToShape([dims.Tq * dims.Tk * dims.NH]).reshaped(bias.shape)
                })
            }
            return grads
        }
        return out
    }
}

/// Where the bias of (b, query t, key j, head h) lives: b·sb + t·st + j·sj + h·sh, a stride of 0
/// broadcasting that dimension.
struct AttentionBiasLayout {
    let sb, st, sj, sh: Int
    static let none = AttentionBiasLayout(sb: 0, st: 0, sj: 0, sh: 0)

    init(sb: Int, st: Int, sj: Int, sh: Int) { (self.sb, self.st, self.sj, self.sh) = (sb, st, sj, sh) }

    init(_ bias: Tensor, _ d: AttentionDims) throws {
        let s = bias.shape
        guard s.count == 4, s[0] == 1 || s[0] == d.B, s[1] == 1 || s[1] == d.Tq, s[2] == d.Tk, s[3] == 1 || s[3] == d.NH else {
            throw TensorError.shapeMismatch(op: "attention", "bias \(s) must be (B|1, Tq|1, Tk, NH|1) = (\(d.B)|1, \(d.Tq)|1, \(d.Tk), \(d.NH)|1)")
        }
        if bias.requiresGrad && (s[1] != d.Tq || s[3] != d.NH) {
            throw TensorError.invalidArgument(op: "attention", "a bias that needs a gradient must be (B|1, Tq, Tk, NH); got \(s)")
        }
        sh = s[3] == 1 ? 0 : 1
        sj = s[3]
        st = s[1] == 1 ? 0 : s[2] * s[3]
        sb = s[0] == 1 ? 0 : s[1] * s[2] * s[3]
    }
}

struct AttentionDims {
    let B, Tq, Tk, NH, NKV, D: Int
    /// Positions per batch row of k and v as stored: Tk, or a KV cache's capacity.
    let kvRows: Int

    init(q: Tensor, k: Tensor, v: Tensor, segments: AttentionSegments?, causal: Bool = true, keyLength: Int? = nil) throws {
        func fail(_ why: String) -> TensorError { .shapeMismatch(op: "attention", why) }
        guard q.rank == 4, k.rank == 4, v.rank == 4 else {
            throw fail("q, k, v must be (B,T,heads,D); got \(q.shape), \(k.shape), \(v.shape)")
        }
        guard k.shape == v.shape else { throw fail("k \(k.shape) and v \(v.shape) differ") }
        (B, Tq, NH, D) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        (kvRows, NKV) = (k.shape[1], k.shape[2])
        Tk = keyLength ?? kvRows
        guard Tk >= 0, Tk <= kvRows, Tk == kvRows || !GradientTape.isRecording else {
            throw fail("keyLength \(keyLength ?? kvRows) must be within k's \(kvRows) positions, and is for the forward only (under noGrad)")
        }
        guard k.shape[0] == B, k.shape[3] == D else { throw fail("q \(q.shape) and k \(k.shape) disagree on batch or head_dim") }
        guard NKV > 0, NH % NKV == 0 else { throw fail("\(NH) query heads are not a multiple of \(NKV) kv heads") }
        // Queries are the last Tq of the keys' positions, unless nothing ties them to positions.
        let positional = causal || segments != nil
        guard !positional || Tq <= Tk, Tk > 0 || Tq == 0 else { throw fail("\(Tq) queries need at least as many keys, got \(Tk)") }
        if let segments {
            // Tq < Tk (a batch of rows decoded with a KV cache, each left-padded to the longest
            // prompt: the padding is a segment of its own) is for the forward only.
            guard Tq == Tk || !GradientTape.isRecording, segments.batch == B, segments.length == Tk else {
                throw fail("segments (\(segments.batch), \(segments.length)) need shape (\(B), \(Tk)) and, when a gradient is recorded, Tq = Tk (got \(Tq))")
            }
        }
    }

    /// The grid of the block kernels, one work-group of BLOCK_Q rows (queries, or keys for
    /// dK/dV) per (row block, head, batch row), and their compile-time sizes: the head size fixes
    /// the private accumulators; the tuned BLOCK_K shrinks for big heads so that two staged
    /// blocks fit 32 KiB of local memory (and the device's local memory, where it has less);
    /// the tuned BLOCK_Q is lowered until a group fits the device and each of the three block
    /// kernels built with it (their CL_KERNEL_WORK_GROUP_SIZE: the private accumulators are
    /// what puts it below the device's maximum on real GPUs).
    func grid(_ cl: OpenCLBackend, rows: Int, heads: Int) throws -> KernelGrid {
        let fitsLocal = (cl.info.localMemory - 256) / (4 * (2 * D + 2))
        let blockK = max(4, min(try cl.tuned("BLOCK_K", family: "attention"), 4096 / max(D, 1), fitsLocal))
        let start = cl.reductionGroupSize(cap: try cl.tuned("BLOCK_Q", family: "attention"))
        var blockQ = start
        for kernel in ["attention_forward", "attention_backward_dq", "attention_backward_dkv"] {
            blockQ = min(blockQ, try cl.fittedSize("attention", kernel, start: start, items: { $0 }, constants: {
                ["HEAD_DIM": D, "BLOCK_Q": $0, "BLOCK_K": blockK]
            }))
        }
        return KernelGrid(global: [rows, heads, B], local: [blockQ, 1, 1],
                          constants: ["HEAD_DIM": D, "BLOCK_Q": blockQ, "BLOCK_K": blockK])
    }
}

/// Returns (dq, dk, dv) of the attention for dout (B,Tq,NH,D), and with `wantBias` dbias
/// (B,Tq,Tk,NH): the gradient of each score, zero where a query does not see a key.
private func attentionBackward(_ dims: AttentionDims, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
                               dout: Tensor, scale: Float, causal: Bool, segments: AttentionSegments?,
                               bias: Tensor?, biasLayout: AttentionBiasLayout?,
                               wantBias: Bool) throws -> (Tensor, Tensor, Tensor, Tensor?) {
    let dbias = wantBias ? try Tensor.zeros([dims.B, dims.Tq, dims.Tk, dims.NH], on: q.device) : nil
    let dq = try Tensor.empty(q.shape, on: q.device)
    let dk = try Tensor.empty(k.shape, on: k.device)
    let dv = try Tensor.empty(v.shape, on: v.device)
    // (B,NH,Tq): Σ_d dout·out of each query row, the row term of the softmax backward.
    let delta = try Tensor.empty([dims.B, dims.NH, dims.Tq], on: q.device)
    // Under grouped-query attention each query head's share of dK and dV (B,Tk,NH,D) is made on
    // its own (a work-group, or a CPU worker, per query head: B·NH units rather than B·NKV), and
    // the shares of each KV head's group are added up after, in the order of the group's heads:
    // the same sums on every device and any number of threads.
    let group = dims.NH / dims.NKV
    let shares = group == 1 ? (dk, dv) : (try Tensor.empty([dims.B, dims.Tk, dims.NH, dims.D], on: k.device),
                                          try Tensor.empty([dims.B, dims.Tk, dims.NH, dims.D], on: k.device))
    switch try execution("attention", q, k, v, out, dout) {
    case .cpu:
        attentionBackwardCPU(dims, q.floats, k.floats, v.floats, out.floats, lse.floats, dout.floats,
                             delta.floats, dq.floats, shares.0.floats, shares.1.floats, dbias?.floats, scale,
                             AttentionMask(causal: causal, segments, bias: bias, biasLayout))
        if group > 1 { attentionGroupSumCPU(dims, dk: dk.floats, dv: dv.floats, pk: shares.0.floats, pv: shares.1.floats) }
    case let .opencl(cl):
        let rows = dims.B * dims.Tq * dims.NH
        let (starts, ends) = (segments?.starts ?? lse, segments?.ends ?? lse)
        let queryGrid = try dims.grid(cl, rows: dims.Tq, heads: dims.NH)
        var deltaGrid = KernelGrid.items(rows, groupSize: try cl.elementwiseGroupSize())
        deltaGrid.constants = queryGrid.constants
        try cl.attentionBackwardDelta(deltaGrid, delta: delta, dout: dout, o: out, Tq: dims.Tq, NH: dims.NH, rows: rows)
        let b = biasLayout ?? AttentionBiasLayout.none
        try cl.attentionBackwardDq(queryGrid, dq: dq, dbias: dbias ?? lse, q: q, k: k, v: v, dout: dout, logsumexp: lse,
                                   delta: delta, segStart: starts, segEnd: ends, bias: bias ?? lse, Tq: dims.Tq,
                                   Tk: dims.Tk, NH: dims.NH, NKV: dims.NKV, scale: scale, causal: causal,
                                   segments: segments != nil, hasBias: bias != nil, biasSb: b.sb, biasSt: b.st,
                                   biasSj: b.sj, biasSh: b.sh, writeDbias: dbias != nil)
        let keyGrid = try dims.grid(cl, rows: dims.Tk, heads: dims.NH)
        try cl.attentionBackwardDkv(keyGrid, dk: shares.0, dv: shares.1, q: q, k: k, v: v,
                                    dout: dout, logsumexp: lse, delta: delta, segStart: starts, segEnd: ends,
                                    bias: bias ?? lse, Tq: dims.Tq, Tk: dims.Tk, NH: dims.NH, NKV: dims.NKV,
                                    scale: scale, causal: causal, segments: segments != nil, hasBias: bias != nil,
                                    biasSb: b.sb, biasSt: b.st, biasSj: b.sj, biasSh: b.sh)
        if group > 1 {
            let n = dk.count
            var sumGrid = KernelGrid.items(n, groupSize: try cl.elementwiseGroupSize())
            sumGrid.constants = keyGrid.constants
            try cl.attentionDkvGroupSum(sumGrid, dk: dk, dv: dv, pk: shares.0, pv: shares.1, group: group, n: n)
        }
    }
    return (dq, dk, dv, dbias)
}

// MARK: CPU path

/// Which keys each query sees: the causal bound and, for packed rows, its own example's
/// positions (both directions), as attention.cl's key_range.
struct AttentionMask {
    let causal: Bool
    /// (B, T) first and one-past-last position of each position's example, or nil.
    let starts, ends: UnsafeMutablePointer<Int32>?
    /// The additive score bias and where each (b, t, j, h) of it lives, or nil.
    let bias: UnsafeMutablePointer<Float>?
    let layout: AttentionBiasLayout

    init(causal: Bool, _ segments: AttentionSegments?, bias: Tensor? = nil, _ layout: AttentionBiasLayout? = nil) {
        self.causal = causal
        starts = segments?.starts.ints
        ends = segments?.ends.ints
        self.bias = bias?.floats
        self.layout = layout ?? .none
    }

    /// row[j] += bias of (b, t, key j0 + j, h) for j in a ..< e.
    @inline(__always)
    func addBias(_ row: UnsafeMutablePointer<Float>, b: Int, t: Int, h: Int, j0: Int, _ a: Int, _ e: Int) {
        guard let bias else { return }
        let base = b * layout.sb + t * layout.st + h * layout.sh + j0 * layout.sj
        for j in a..<max(a, e) { row[j] += bias[base + j * layout.sj] }
    }
}

extension AttentionDims {
    /// Visible keys lo ..< hi of query t in batch row b.
    @inline(__always)
    func keyRange(b: Int, t: Int, _ mask: AttentionMask) -> (Int, Int) {
        let p = t + Tk - Tq
        var (lo, hi) = (0, mask.causal ? p + 1 : Tk)
        if let starts = mask.starts, let ends = mask.ends {
            lo = Int(starts[b * Tk + p])
            hi = min(hi, Int(ends[b * Tk + p]))
        }
        return (lo, hi)
    }

    /// Keys kStart ..< kEnd that some query of the block t0 ..< t0 + rows sees (starts and ends
    /// are nondecreasing, so the first row bounds the start and the last the end).
    @inline(__always)
    func blockKeyRange(b: Int, t0: Int, rows: Int, _ mask: AttentionMask) -> (Int, Int) {
        (keyRange(b: b, t: t0, mask).0, keyRange(b: b, t: t0 + rows - 1, mask).1)
    }
}

/// row[j] = exp(row[j] − shift) for the visible keys a ..< e of a score row of `width`, 0 outside;
/// returns the sum.
@inline(__always)
private func maskedExp(_ row: UnsafeMutablePointer<Float>, _ width: Int, _ a: Int, _ e: Int, shift: Float) -> Float {
    if a > 0 { row.update(repeating: 0, count: a) }
    if e < width { (row + e).update(repeating: 0, count: width - e) }
    return expShifted(row + a, row + a, e - a, shift: shift)
}

/// row[a ..< e] = the softmax of row[a ..< e], 0 elsewhere in the row of `width`; returns its
/// logsumexp (the forward's lse).
@inline(__always)
private func softmaxRow(_ row: UnsafeMutablePointer<Float>, _ width: Int, _ a: Int, _ e: Int) -> Float {
    let m = maxOf(row + a, e - a)
    let l = maskedExp(row, width, a, e, shift: m)
    scaleRow(row + a, e - a, 1 / l)
    return m + logf(l)
}

/// Blocks of BLOCK queries of one (b, h): S = Q·Kᵀ over the keys the block can see (one GEMM),
/// the masked softmax of each row in place (lse saved), then O = P·V (one GEMM). The scores
/// live in a per-worker scratch of BLOCK × Tk floats, never the whole T × T.
private let attentionBlock = 64

/// The scores of one block of queries of (b, h): rows × width = Q[t0..<t0+rows]·K[kStart..<kStart+width]ᵀ·scale,
/// plus the mask's bias over each row's keys (forward and backward make them alike). `packedK`:
/// this (b, KV head)'s keys packed as Kᵀ (AttentionPacking.keys; kStart a multiple of NR).
@inline(__always)
private func blockScores(_ d: AttentionDims, _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                         b: Int, h: Int, t0: Int, rows: Int, kStart: Int, width: Int, scale: Float, _ mask: AttentionMask,
                         workers: Int, packedK: GemmPackedB?, config cfg: GemmConfig, into scores: UnsafeMutablePointer<Float>) {
    let (Tq, NH, NKV, D) = (d.Tq, d.NH, d.NKV, d.D)
    let kvh = h / (NH / NKV)
    cpuSgemm(transA: false, transB: true, M: rows, N: width, K: D, alpha: scale, A: q + ((b * Tq + t0) * NH + h) * D,
             lda: NH * D, B: k + ((b * d.kvRows + kStart) * NKV + kvh) * D, ldb: NKV * D, beta: 0, C: scores, ldc: width,
             workers: workers, config: cfg, packedB: packedK?.from(column: kStart, row: 0, nr: cfg.nr))
    for r in 0..<rows {
        let (lo, hi) = d.keyRange(b: b, t: t0 + r, mask)
        mask.addBias(scores + r * width, b: b, t: t0 + r, h: h, j0: kStart, lo - kStart, hi - kStart)
    }
}

/// Each (b, KV head)'s keys or values packed once for the GEMM's packed path (gemmPrepackB), so
/// that every block of queries and every query head of the group reads them in place: packed
/// per product, K and V took 22% of the forward's time at T 2048 (perf, Ice Lake; the GEMM
/// kernel 44%). `.keys`: op(B) = Xᵀ (D, Tk), panels of NR keys (S = Q·Kᵀ, dP = dO·Vᵀ), so a
/// block's keys must start at a multiple of NR; `.features`: op(B) = X (Tk, D), panels of NR
/// of the D features (O = P·V, dQ = dS·K), any first key.
private enum AttentionPacking {
    case keys, features

    /// Floats for all of them.
    private func floats(_ d: AttentionDims, config cfg: GemmConfig) -> Int {
        d.B * d.NKV * each(d, config: cfg)
    }

    private func each(_ d: AttentionDims, config cfg: GemmConfig) -> Int {
        self == .keys ? gemmPrepackedFloats(K: d.D, N: d.Tk, config: cfg) : gemmPrepackedFloats(K: d.Tk, N: d.D, config: cfg)
    }

    /// Whether the blocks' products that read this layout take the GEMM's packed path (a block of
    /// more than its few rows, over more than its few columns: the keys, or D).
    private func pays(_ d: AttentionDims) -> Bool {
        cpuSgemmTakesPackedPath(M: min(d.Tq, attentionBlock), N: self == .keys ? d.Tk : d.D)
    }

    /// Each (layout, x) of `parts` whose products take the packed path, packed into one pooled
    /// workspace (give it back when done); nil for the others.
    static func pack(_ d: AttentionDims, _ parts: [(AttentionPacking, UnsafeMutablePointer<Float>)],
                     config cfg: GemmConfig) -> (GemmWorkspace, [[GemmPackedB]?]) {
        let sizes = parts.map { $0.0.pays(d) ? $0.0.floats(d, config: cfg) : 0 }
        let ws = GemmWorkspace.take(sharedFloats: sizes.reduce(0, +), perWorkerFloats: 0, workers: 1)
        var offset = 0
        let packed = zip(parts, sizes).map { part, size -> [GemmPackedB]? in
            defer { offset += size }
            return size == 0 ? nil : part.0.pack(d, part.1, into: ws.shared + offset, config: cfg)
        }
        return (ws, packed)
    }

    /// The first key of a block that starts at `key`: a panel's first where the keys are packed
    /// (the ones before the rows' own are masked like any other: exp 0, so P·V, dV and dK get
    /// nothing from them).
    static func blockStart(_ key: Int, keysPacked: Bool, config cfg: GemmConfig) -> Int {
        keysPacked ? key / cfg.nr * cfg.nr : key
    }

    /// Packs x (k or v, (B, kvRows, NKV, D), the first Tk rows) into dst; element b·NKV + kvh of
    /// the result is that (b, KV head)'s panels.
    private func pack(_ d: AttentionDims, _ x: UnsafeMutablePointer<Float>, into dst: UnsafeMutablePointer<Float>,
                      config cfg: GemmConfig) -> [GemmPackedB] {
        let each = each(d, config: cfg), units = d.B * d.NKV, keys = self == .keys
        CPUParallel.forEach(units, grain: 1) { range in
            for u in range {
                let b = u / d.NKV, kvh = u % d.NKV
                _ = gemmPrepackB(transB: keys, B: x + (b * d.kvRows * d.NKV + kvh) * d.D, ldb: d.NKV * d.D,
                                 K: keys ? d.D : d.Tk, N: keys ? d.Tk : d.D, into: dst + u * each, config: cfg)
            }
        }
        return (0..<units).map { GemmPackedB(base: dst + $0 * each, panelStride: (keys ? d.D : d.Tk) * cfg.nr) }
    }
}

private func attentionForwardCPU(_ d: AttentionDims, _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                 _ v: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>,
                                 _ lse: UnsafeMutablePointer<Float>, _ scale: Float, _ mask: AttentionMask) {
    let (B, Tq, Tk, NH, NKV, D) = (d.B, d.Tq, d.Tk, d.NH, d.NKV, d.D)
    let group = NH / NKV
    if group > 1 && Tq < attentionGroupedQueries {
        attentionForwardGroupedCPU(d, q, k, v, o, lse, scale, mask)
        return
    }
    let blocks = (Tq + attentionBlock - 1) / attentionBlock
    let units = B * NH * blocks
    // Few units (one sequence, one head): let each GEMM use the cores instead.
    let inner = units >= CPUParallel.threadCount ? 1 : CPUParallel.threadCount
    // K (as Kᵀ for S) and V (for O = P·V) packed once where the blocks' products read them so.
    let cfg = GemmConfig.current
    let (ws, packed) = AttentionPacking.pack(d, [(.keys, k), (.features, v)], config: cfg)
    defer { GemmWorkspace.give(ws) }
    let (packedK, packedV) = (packed[0], packed[1])
    CPUParallel.forEach(units, grain: 1) { range in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: attentionBlock * max(Tk, 1))
        defer { scores.deallocate() }
        for unit in range {
            let blk = unit % blocks, h = (unit / blocks) % NH, b = unit / (blocks * NH)
            let kvh = h / group
            let t0 = blk * attentionBlock, rows = min(attentionBlock, Tq - t0)
            let (firstKey, kEnd) = d.blockKeyRange(b: b, t0: t0, rows: rows, mask)
            let kStart = AttentionPacking.blockStart(firstKey, keysPacked: packedK != nil, config: cfg)
            let width = kEnd - kStart
            let vBase = v + ((b * d.kvRows + kStart) * NKV + kvh) * D
            blockScores(d, q, k, b: b, h: h, t0: t0, rows: rows, kStart: kStart, width: width, scale: scale, mask,
                        workers: inner, packedK: packedK?[b * NKV + kvh], config: cfg, into: scores)
            for r in 0..<rows {
                let t = t0 + r
                let (lo, hi) = d.keyRange(b: b, t: t, mask)
                let row = scores + r * width
                lse[(b * NH + h) * Tq + t] = softmaxRow(row, width, lo - kStart, hi - kStart)
            }
            cpuSgemm(transA: false, transB: false, M: rows, N: D, K: width, alpha: 1, A: scores, lda: width,
                     B: vBase, ldb: NKV * D, beta: 0, C: o + ((b * Tq + t0) * NH + h) * D, ldc: NH * D, workers: inner,
                     config: cfg, packedB: packedV?[b * NKV + kvh].from(column: 0, row: kStart, nr: cfg.nr))
        }
    }
}

/// Below this many queries (decoding: one a step) the forward runs grouped (attentionForwardGroupedCPU).
let attentionGroupedQueries = 8

/// The forward for a few queries under grouped-query attention: per (b, KV head, query) the
/// group's query heads are the rows of one product with the keys they share, S = Q_g·Kᵀ then
/// O_g = P·V, so that a decoding step reads each KV head's cached keys and values once, not
/// once per query head (7 times for Qwen2.5-0.5B). Same masks, bias and lse as the blocked path.
private func attentionForwardGroupedCPU(_ d: AttentionDims, _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                        _ v: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>,
                                        _ lse: UnsafeMutablePointer<Float>, _ scale: Float, _ mask: AttentionMask) {
    let (B, Tq, Tk, NH, NKV, D) = (d.B, d.Tq, d.Tk, d.NH, d.NKV, d.D)
    let group = NH / NKV
    let units = B * NKV * Tq
    let inner = units >= CPUParallel.threadCount ? 1 : CPUParallel.threadCount
    CPUParallel.forEach(units, grain: 1) { range in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: group * max(Tk, 1))
        defer { scores.deallocate() }
        for unit in range {
            let t = unit % Tq, kvh = (unit / Tq) % NKV, b = unit / (Tq * NKV)
            let h0 = kvh * group
            let (lo, hi) = d.keyRange(b: b, t: t, mask)
            let width = max(0, hi - lo)
            let rows = (b * Tq + t) * NH + h0  // the group's first query (and output) row
            cpuSgemm(transA: false, transB: true, M: group, N: width, K: D, alpha: scale, A: q + rows * D, lda: D,
                     B: k + ((b * d.kvRows + lo) * NKV + kvh) * D, ldb: NKV * D, beta: 0, C: scores, ldc: width,
                     workers: inner)
            for r in 0..<group {
                let row = scores + r * width
                mask.addBias(row, b: b, t: t, h: h0 + r, j0: lo, 0, width)
                lse[(b * NH + h0 + r) * Tq + t] = softmaxRow(row, width, 0, width)
            }
            cpuSgemm(transA: false, transB: false, M: group, N: D, K: width, alpha: 1, A: scores, lda: width,
                     B: v + ((b * d.kvRows + lo) * NKV + kvh) * D, ldb: NKV * D, beta: 0, C: o + rows * D, ldc: D,
                     workers: inner)
        }
    }
}

/// Per (b, query head), B·NH units (per KV head there were B·NKV: 4 for Qwen2.5-0.5B at batch
/// 2, which left a many-core CPU idle): for each block of queries, P is rebuilt from
/// S = Q·Kᵀ and the saved lse, then dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP − delta),
/// dQ = dS·K·scale, dK += dSᵀ·Q·scale: five GEMMs and one elementwise pass. dk and dv are
/// (B,Tk,NH,D), each query head's share summed over its query blocks in order by the worker
/// that owns it; under grouped-query attention attentionGroupSumCPU adds up the group's shares.
private func attentionBackwardCPU(_ d: AttentionDims, _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                  _ v: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>,
                                  _ lse: UnsafeMutablePointer<Float>, _ dout: UnsafeMutablePointer<Float>,
                                  _ delta: UnsafeMutablePointer<Float>, _ dq: UnsafeMutablePointer<Float>,
                                  _ dk: UnsafeMutablePointer<Float>, _ dv: UnsafeMutablePointer<Float>,
                                  _ dbias: UnsafeMutablePointer<Float>?, _ scale: Float, _ mask: AttentionMask) {
    let (B, Tq, Tk, NH, NKV, D) = (d.B, d.Tq, d.Tk, d.NH, d.NKV, d.D)
    let group = NH / NKV
    CPUParallel.forEach(B * NH * Tq, grain: max(1, 16384 / max(1, D))) { rows in
        for r in rows {
            let t = r % Tq, h = (r / Tq) % NH, b = r / (Tq * NH)
            let off = ((b * Tq + t) * NH + h) * D
            delta[(b * NH + h) * Tq + t] = cpuDot(dout + off, o + off, D)
        }
    }
    let blocks = (Tq + attentionBlock - 1) / attentionBlock
    let units = B * NH
    let inner = units >= CPUParallel.threadCount ? 1 : CPUParallel.threadCount
    // K (as Kᵀ for S, and as K for dQ) and V (as Vᵀ for dP) packed once, as in the forward.
    let cfg = GemmConfig.current
    let (ws, packed) = AttentionPacking.pack(d, [(.keys, k), (.keys, v), (.features, k)], config: cfg)
    defer { GemmWorkspace.give(ws) }
    let (packedK, packedVt, packedKRows) = (packed[0], packed[1], packed[2])
    CPUParallel.forEach(units, grain: 1) { range in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: attentionBlock * max(Tk, 1))
        let dp = UnsafeMutablePointer<Float>.allocate(capacity: attentionBlock * max(Tk, 1))
        defer { p.deallocate(); dp.deallocate() }
        for unit in range {
            let h = unit % NH, b = unit / NH, kvh = h / group
            for s in 0..<Tk {
                let off = ((b * Tk + s) * NH + h) * D
                (dk + off).update(repeating: 0, count: D)
                (dv + off).update(repeating: 0, count: D)
            }
            for blk in 0..<blocks {
                let t0 = blk * attentionBlock, rows = min(attentionBlock, Tq - t0)
                let (firstKey, kEnd) = d.blockKeyRange(b: b, t0: t0, rows: rows, mask)
                let kStart = AttentionPacking.blockStart(firstKey, keysPacked: packedK != nil, config: cfg)
                let width = kEnd - kStart
                let qBlock = q + ((b * Tq + t0) * NH + h) * D, doBlock = dout + ((b * Tq + t0) * NH + h) * D
                let kBase = k + ((b * Tk + kStart) * NKV + kvh) * D, vBase = v + ((b * Tk + kStart) * NKV + kvh) * D
                let dkBase = dk + ((b * Tk + kStart) * NH + h) * D, dvBase = dv + ((b * Tk + kStart) * NH + h) * D
                // P = exp(Q·Kᵀ·scale − lse), 0 outside each row's keys.
                blockScores(d, q, k, b: b, h: h, t0: t0, rows: rows, kStart: kStart, width: width, scale: scale, mask,
                            workers: inner, packedK: packedK?[b * NKV + kvh], config: cfg, into: p)
                for r in 0..<rows {
                    let t = t0 + r
                    let (lo, hi) = d.keyRange(b: b, t: t, mask)
                    _ = maskedExp(p + r * width, width, lo - kStart, hi - kStart, shift: lse[(b * NH + h) * Tq + t])
                }
                // dV += Pᵀ·dO
                cpuSgemm(transA: true, transB: false, M: width, N: D, K: rows, alpha: 1, A: p, lda: width,
                         B: doBlock, ldb: NH * D, beta: 1, C: dvBase, ldc: NH * D, workers: inner)
                // dP = dO·Vᵀ, then dS = P∘(dP − delta) in place of dP.
                cpuSgemm(transA: false, transB: true, M: rows, N: width, K: D, alpha: 1, A: doBlock, lda: NH * D,
                         B: vBase, ldb: NKV * D, beta: 0, C: dp, ldc: width, workers: inner, config: cfg,
                         packedB: packedVt?[b * NKV + kvh].from(column: kStart, row: 0, nr: cfg.nr))
                for r in 0..<rows {
                    let dl = delta[(b * NH + h) * Tq + t0 + r]
                    let pr = p + r * width, dr = dp + r * width
                    for j in 0..<width { dr[j] = pr[j] * (dr[j] - dl) }
                    // dbias (B,Tq,Tk,NH) of this (b, t, h): each worker owns its own heads' entries.
                    if let dbias {
                        let base = ((b * Tq + t0 + r) * Tk + kStart) * NH + h
                        for j in 0..<width { dbias[base + j * NH] = dr[j] }
                    }
                }
                // dQ = dS·K·scale; dK += dSᵀ·Q·scale.
                cpuSgemm(transA: false, transB: false, M: rows, N: D, K: width, alpha: scale, A: dp, lda: width,
                         B: kBase, ldb: NKV * D, beta: 0, C: dq + ((b * Tq + t0) * NH + h) * D, ldc: NH * D, workers: inner,
                         config: cfg, packedB: packedKRows?[b * NKV + kvh].from(column: 0, row: kStart, nr: cfg.nr))
                cpuSgemm(transA: true, transB: false, M: width, N: D, K: rows, alpha: scale, A: dp, lda: width,
                         B: qBlock, ldb: NH * D, beta: 1, C: dkBase, ldc: NH * D, workers: inner)
            }
        }
    }
}

/// dk, dv (B,Tk,NKV,D) = the sums of each KV head's group of query-head shares pk, pv
/// (B,Tk,NH,D), the group's heads in order (as attention_dkv_group_sum on OpenCL).
private func attentionGroupSumCPU(_ d: AttentionDims, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                  pk: UnsafeMutablePointer<Float>, pv: UnsafeMutablePointer<Float>) {
    let (NH, NKV, D) = (d.NH, d.NKV, d.D)
    let group = NH / NKV
    CPUParallel.forEach(d.B * d.Tk, grain: max(1, 16384 / max(1, NH * D))) { rows in
        for row in rows {
            for kvh in 0..<NKV {
                let out = row * NKV * D + kvh * D, first = (row * NH + kvh * group) * D
                (dk + out).update(from: pk + first, count: D)
                (dv + out).update(from: pv + first, count: D)
                for g in 1..<group {
                    let (sk, sv) = (pk + first + g * D, pv + first + g * D)
                    for i in 0..<D { dk[out + i] += sk[i]; dv[out + i] += sv[i] }
                }
            }
        }
    }
}
