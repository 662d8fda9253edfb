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
    /// query t see keys ≤ t + Tk − Tq; `segments` (Tq = Tk) keeps packed examples apart.
    /// `scale` defaults to 1/√D.
    public static func scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, causal: Bool = true,
                                                 scale: Float? = nil, segments: AttentionSegments? = nil) throws -> Tensor {
        let dims = try AttentionDims(q: q, k: k, v: v, segments: segments)
        let scale = scale ?? 1 / Float(dims.D).squareRoot()
        let out = try Tensor.empty(q.shape, on: q.device)
        // (B,NH,Tq): log Σ_j exp(score) of each query row, kept on purpose for the backward.
        let lse = try Tensor.empty([dims.B, dims.NH, dims.Tq], on: q.device)
        let segmentTensors = segments.map { [$0.starts, $0.ends] } ?? []
        switch try execution("attention", [q, k, v] + segmentTensors) {
        case .cpu:
            attentionForwardCPU(dims, q.floats, k.floats, v.floats, out.floats, lse.floats, scale, causal,
                                segments?.starts.ints)
        case let .opencl(cl):
            let cfg = dims.kernelConfig(cl)
            let seg = segments?.starts ?? lse
            try cl.launch("attention", "attention_forward",
                          global: [dims.Tq, dims.NH, dims.B], local: [cfg.blockQ, 1, 1], defines: cfg.defines,
                          [.tensor(out), .tensor(lse), .tensor(q), .tensor(k), .tensor(v), .tensor(seg),
                           .int(dims.Tq), .int(dims.Tk), .int(dims.NH), .int(dims.NKV), .float(scale),
                           .int(causal ? 1 : 0), .int(segments == nil ? 0 : 1)])
        }
        GradientTape.record("attention", inputs: [q, k, v], output: out) { dout in
            let (dq, dk, dv) = try attentionBackward(dims, q: q, k: k, v: v, out: out, lse: lse, dout: dout,
                                                     scale: scale, causal: causal, segments: segments)
            return [q.requiresGrad ? dq : nil, k.requiresGrad ? dk : nil, v.requiresGrad ? dv : nil]
        }
        return out
    }
}

struct AttentionDims {
    let B, Tq, Tk, NH, NKV, D: Int

    init(q: Tensor, k: Tensor, v: Tensor, segments: AttentionSegments?) throws {
        func fail(_ why: String) -> TensorError { .shapeMismatch(op: "attention", why) }
        guard q.rank == 4, k.rank == 4, v.rank == 4 else {
            throw fail("q, k, v must be (B,T,heads,D); got \(q.shape), \(k.shape), \(v.shape)")
        }
        guard k.shape == v.shape else { throw fail("k \(k.shape) and v \(v.shape) differ") }
        (B, Tq, NH, D) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        (Tk, NKV) = (k.shape[1], k.shape[2])
        guard k.shape[0] == B, k.shape[3] == D else { throw fail("q \(q.shape) and k \(k.shape) disagree on batch or head_dim") }
        guard NKV > 0, NH % NKV == 0 else { throw fail("\(NH) query heads are not a multiple of \(NKV) kv heads") }
        guard Tq <= Tk, Tk > 0 || Tq == 0 else { throw fail("\(Tq) queries need at least as many keys, got \(Tk)") }
        if let segments {
            guard Tq == Tk, segments.batch == B, segments.length == Tk else {
                throw fail("segments (\(segments.batch), \(segments.length)) need Tq = Tk and shape (\(B), \(Tk))")
            }
        }
    }

    /// Compile-time sizes of the kernels: the head size fixes the private accumulators; key
    /// blocks shrink for big heads so that two staged blocks fit 32 KiB of local memory.
    func kernelConfig(_ cl: OpenCLBackend) -> (blockQ: Int, defines: [String: Int]) {
        let blockQ = min(32, cl.reductionGroupSize(cap: 32))
        let blockK = max(4, min(32, 4096 / max(D, 1)))
        return (blockQ, ["HEAD_DIM": D, "BLOCK_Q": blockQ, "BLOCK_K": blockK])
    }
}

/// Returns (dq, dk, dv) of the attention for dout (B,Tq,NH,D).
private func attentionBackward(_ dims: AttentionDims, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
                               dout: Tensor, scale: Float, causal: Bool,
                               segments: AttentionSegments?) throws -> (Tensor, Tensor, Tensor) {
    let dq = try Tensor.empty(q.shape, on: q.device)
    let dk = try Tensor.empty(k.shape, on: k.device)
    let dv = try Tensor.empty(v.shape, on: v.device)
    // (B,NH,Tq): Σ_d dout·out of each query row, the row term of the softmax backward.
    let delta = try Tensor.empty([dims.B, dims.NH, dims.Tq], on: q.device)
    switch try execution("attention", q, k, v, out, dout) {
    case .cpu:
        attentionBackwardCPU(dims, q.floats, k.floats, v.floats, out.floats, lse.floats, dout.floats,
                             delta.floats, dq.floats, dk.floats, dv.floats, scale, causal,
                             segments?.starts.ints, segments?.ends.ints)
    case let .opencl(cl):
        let cfg = dims.kernelConfig(cl)
        let rows = dims.B * dims.Tq * dims.NH
        let flags: [KernelArg] = [.int(dims.Tq), .int(dims.Tk), .int(dims.NH), .int(dims.NKV), .float(scale),
                                  .int(causal ? 1 : 0), .int(segments == nil ? 0 : 1)]
        try cl.launch("attention", "attention_backward_delta", global: [rows], local: [64], defines: cfg.defines,
                      [.tensor(delta), .tensor(dout), .tensor(out), .int(dims.Tq), .int(dims.NH), .int(rows)])
        try cl.launch("attention", "attention_backward_dq",
                      global: [dims.Tq, dims.NH, dims.B], local: [cfg.blockQ, 1, 1], defines: cfg.defines,
                      [.tensor(dq), .tensor(q), .tensor(k), .tensor(v), .tensor(dout), .tensor(lse), .tensor(delta),
                       .tensor(segments?.starts ?? lse)] + flags)
        try cl.launch("attention", "attention_backward_dkv",
                      global: [dims.Tk, dims.NKV, dims.B], local: [cfg.blockQ, 1, 1], defines: cfg.defines,
                      [.tensor(dk), .tensor(dv), .tensor(q), .tensor(k), .tensor(v), .tensor(dout), .tensor(lse),
                       .tensor(delta), .tensor(segments?.ends ?? lse)] + flags)
    }
    return (dq, dk, dv)
}

// MARK: CPU path

@inline(__always)
private func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n {
        acc.addProduct(UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self),
                       UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self))
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y += a·x over n floats.
@inline(__always)
private func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    let va = SIMD8<Float>(repeating: a)
    while i + 8 <= n {
        var yv = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
        yv.addProduct(va, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self))
        UnsafeMutableRawPointer(y + i).storeBytes(of: yv, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] += a * x[i]; i += 1 }
}

extension AttentionDims {
    /// Visible keys lo ..< hi of query t in batch row b.
    @inline(__always)
    func keyRange(b: Int, t: Int, causal: Bool, starts: UnsafeMutablePointer<Int32>?) -> (Int, Int) {
        let offset = Tk - Tq
        let lo = starts.map { Int($0[b * Tk + t + offset]) } ?? 0
        return (lo, causal ? t + offset + 1 : Tk)
    }

    /// Queries lo ..< hi that see key s in batch row b.
    @inline(__always)
    func queryRange(b: Int, s: Int, causal: Bool, ends: UnsafeMutablePointer<Int32>?) -> (Int, Int) {
        let offset = Tk - Tq
        let hi = ends.map { Int($0[b * Tk + s]) - offset } ?? Tq
        return (causal ? max(0, s - offset) : 0, hi)
    }
}

/// One query row per unit of work, (b, h, t) order; scores of the row go to a scratch row.
private func attentionForwardCPU(_ d: AttentionDims, _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                 _ v: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>,
                                 _ lse: UnsafeMutablePointer<Float>, _ scale: Float, _ causal: Bool,
                                 _ starts: UnsafeMutablePointer<Int32>?) {
    let (Tq, Tk, NH, NKV, D) = (d.Tq, d.Tk, d.NH, d.NKV, d.D)
    let group = NH / NKV
    CPUParallel.forEach(d.B * NH * Tq, grain: max(1, 16384 / max(1, Tk * D))) { rows in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: max(Tk, 1))
        defer { scores.deallocate() }
        for r in rows {
            let t = r % Tq, h = (r / Tq) % NH, b = r / (Tq * NH)
            let kvh = h / group
            let qr = q + ((b * Tq + t) * NH + h) * D
            let orow = o + ((b * Tq + t) * NH + h) * D
            let (lo, hi) = d.keyRange(b: b, t: t, causal: causal, starts: starts)
            for j in lo..<hi { scores[j] = dot(qr, k + ((b * Tk + j) * NKV + kvh) * D, D) * scale }
            let m = maxOf(scores + lo, hi - lo)
            let l = expShifted(scores + lo, scores + lo, hi - lo, shift: m)
            for i in 0..<D { orow[i] = 0 }
            for j in lo..<hi { axpy(scores[j], v + ((b * Tk + j) * NKV + kvh) * D, orow, D) }
            let inv = 1 / l
            for i in 0..<D { orow[i] *= inv }
            lse[(b * NH + h) * Tq + t] = m + logf(l)
        }
    }
}

/// dq by query rows, then dk and dv by key rows (each summed by one worker over its group's
/// heads and queries in a fixed order), as the OpenCL kernels do.
private func attentionBackwardCPU(_ d: AttentionDims, _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                  _ v: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>,
                                  _ lse: UnsafeMutablePointer<Float>, _ dout: UnsafeMutablePointer<Float>,
                                  _ delta: UnsafeMutablePointer<Float>, _ dq: UnsafeMutablePointer<Float>,
                                  _ dk: UnsafeMutablePointer<Float>, _ dv: UnsafeMutablePointer<Float>,
                                  _ scale: Float, _ causal: Bool,
                                  _ starts: UnsafeMutablePointer<Int32>?, _ ends: UnsafeMutablePointer<Int32>?) {
    let (B, Tq, Tk, NH, NKV, D) = (d.B, d.Tq, d.Tk, d.NH, d.NKV, d.D)
    let group = NH / NKV
    let grain = max(1, 16384 / max(1, Tk * D))
    CPUParallel.forEach(B * NH * Tq, grain: grain) { rows in
        for r in rows {
            let t = r % Tq, h = (r / Tq) % NH, b = r / (Tq * NH)
            let off = ((b * Tq + t) * NH + h) * D
            delta[(b * NH + h) * Tq + t] = dot(dout + off, o + off, D)
        }
    }
    CPUParallel.forEach(B * NH * Tq, grain: grain) { rows in
        // p of the row's visible keys, exp'd in one vector pass.
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(Tk, 1))
        defer { p.deallocate() }
        for r in rows {
            let t = r % Tq, h = (r / Tq) % NH, b = r / (Tq * NH)
            let kvh = h / group
            let off = ((b * Tq + t) * NH + h) * D
            let stat = (b * NH + h) * Tq + t
            let (lse_t, delta_t) = (lse[stat], delta[stat])
            let dqr = dq + off
            for i in 0..<D { dqr[i] = 0 }
            let (lo, hi) = d.keyRange(b: b, t: t, causal: causal, starts: starts)
            for j in lo..<hi { p[j] = dot(q + off, k + ((b * Tk + j) * NKV + kvh) * D, D) * scale }
            _ = expShifted(p + lo, p + lo, hi - lo, shift: lse_t)
            for j in lo..<hi {
                let kr = k + ((b * Tk + j) * NKV + kvh) * D
                let ds = p[j] * (dot(dout + off, v + ((b * Tk + j) * NKV + kvh) * D, D) - delta_t)
                axpy(ds * scale, kr, dqr, D)
            }
        }
    }
    CPUParallel.forEach(B * NKV * Tk, grain: grain) { rows in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(Tq, 1))
        defer { p.deallocate() }
        for r in rows {
            let s = r % Tk, kvh = (r / Tk) % NKV, b = r / (Tk * NKV)
            let off = ((b * Tk + s) * NKV + kvh) * D
            let (kr, vr, dkr, dvr) = (k + off, v + off, dk + off, dv + off)
            for i in 0..<D { dkr[i] = 0; dvr[i] = 0 }
            let (lo, hi) = d.queryRange(b: b, s: s, causal: causal, ends: ends)
            for g in 0..<group {
                let h = kvh * group + g
                guard hi > lo else { continue }
                for t in lo..<hi { p[t] = dot(q + ((b * Tq + t) * NH + h) * D, kr, D) * scale - lse[(b * NH + h) * Tq + t] }
                _ = expShifted(p + lo, p + lo, hi - lo, shift: 0)
                for t in lo..<hi {
                    let qoff = ((b * Tq + t) * NH + h) * D
                    let ds = p[t] * (dot(dout + qoff, vr, D) - delta[(b * NH + h) * Tq + t])
                    axpy(p[t], dout + qoff, dvr, D)
                    axpy(ds * scale, q + qoff, dkr, D)
                }
            }
        }
    }
}
