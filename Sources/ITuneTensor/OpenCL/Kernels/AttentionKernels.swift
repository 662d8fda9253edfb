// The kernels of Kernels/attention.cl, one typed function each: parameters in the order and
// under the names of the `.cl` signature (KernelSignatureTests checks them against the source).
// Shapes: q, o, dout, dq (B,Tq,NH,D); k, v, dk, dv (B,Tk,NKV,D) (the forward's k and v
// (B,kvRows,NKV,D), their first Tk positions the keys: a KV cache's buffers); logsumexp, delta (B,NH,Tq);
// segStart, segEnd (B,Tk) i32; bias (B|1, Tq|1, Tk, NH|1) read through the strides biasSb, biasSt,
// biasSj, biasSh; dbias (B,Tq,Tk,NH). The grid carries HEAD_DIM, BLOCK_Q and BLOCK_K.

extension OpenCLBackend {
    /// o = softmax(q·kᵀ·scale + mask)·v and its logsumexp; a group of BLOCK_Q queries per
    /// (query block, head, batch row).
    func attentionForward(_ grid: KernelGrid, o: Tensor, logsumexp: Tensor, q: Tensor, k: Tensor, v: Tensor,
                          segStart: Tensor, segEnd: Tensor, bias: Tensor, Tq: Int, Tk: Int, kvRows: Int, NH: Int,
                          NKV: Int, scale: Float, causal: Bool, segments: Bool, hasBias: Bool, biasSb: Int, biasSt: Int,
                          biasSj: Int, biasSh: Int) throws {
        try launch("attention", "attention_forward", grid,
                   [.buffer(o), .buffer(logsumexp), .buffer(q), .buffer(k), .buffer(v), .buffer(segStart),
                    .buffer(segEnd), .buffer(bias), .int(Tq), .int(Tk), .int(kvRows), .int(NH), .int(NKV), .float(scale),
                    .bool(causal), .bool(segments), .bool(hasBias), .int(biasSb), .int(biasSt), .int(biasSj),
                    .int(biasSh)])
    }

    /// delta = Σ_d dout·o per (b, t, h) row; `rows` = B·Tq·NH work-items.
    func attentionBackwardDelta(_ grid: KernelGrid, delta: Tensor, dout: Tensor, o: Tensor, Tq: Int, NH: Int,
                                rows: Int) throws {
        try launch("attention", "attention_backward_delta", grid,
                   [.buffer(delta), .buffer(dout), .buffer(o), .int(Tq), .int(NH), .int(rows)])
    }

    /// dq of the attention; same grid as the forward.
    func attentionBackwardDq(_ grid: KernelGrid, dq: Tensor, dbias: Tensor, q: Tensor, k: Tensor, v: Tensor,
                             dout: Tensor, logsumexp: Tensor, delta: Tensor, segStart: Tensor, segEnd: Tensor,
                             bias: Tensor, Tq: Int, Tk: Int, NH: Int, NKV: Int, scale: Float, causal: Bool,
                             segments: Bool, hasBias: Bool, biasSb: Int, biasSt: Int, biasSj: Int, biasSh: Int,
                             writeDbias: Bool) throws {
        try launch("attention", "attention_backward_dq", grid,
                   [.buffer(dq), .buffer(dbias), .buffer(q), .buffer(k), .buffer(v), .buffer(dout), .buffer(logsumexp),
                    .buffer(delta), .buffer(segStart), .buffer(segEnd), .buffer(bias), .int(Tq), .int(Tk), .int(NH),
                    .int(NKV), .float(scale), .bool(causal), .bool(segments), .bool(hasBias), .int(biasSb),
                    .int(biasSt), .int(biasSj), .int(biasSh), .bool(writeDbias)])
    }

    /// dk and dv of the attention, one query head's share per work-group: a group of BLOCK_Q
    /// keys per (key block, query head, batch row); dk, dv (B,Tk,NH,D).
    func attentionBackwardDkv(_ grid: KernelGrid, dk: Tensor, dv: Tensor, q: Tensor, k: Tensor, v: Tensor,
                              dout: Tensor, logsumexp: Tensor, delta: Tensor, segStart: Tensor, segEnd: Tensor,
                              bias: Tensor, Tq: Int, Tk: Int, NH: Int, NKV: Int, scale: Float, causal: Bool,
                              segments: Bool, hasBias: Bool, biasSb: Int, biasSt: Int, biasSj: Int,
                              biasSh: Int) throws {
        try launch("attention", "attention_backward_dkv", grid,
                   [.buffer(dk), .buffer(dv), .buffer(q), .buffer(k), .buffer(v), .buffer(dout), .buffer(logsumexp),
                    .buffer(delta), .buffer(segStart), .buffer(segEnd), .buffer(bias), .int(Tq), .int(Tk), .int(NH),
                    .int(NKV), .float(scale), .bool(causal), .bool(segments), .bool(hasBias), .int(biasSb),
                    .int(biasSt), .int(biasSj), .int(biasSh)])
    }

    /// dk, dv (B,Tk,NKV,D) = the sums of the query heads' shares pk, pv (B,Tk,NH,D) over each
    /// KV head's group of `group` heads; `n` = B·Tk·NKV·D work-items.
    func attentionDkvGroupSum(_ grid: KernelGrid, dk: Tensor, dv: Tensor, pk: Tensor, pv: Tensor, group: Int,
                              n: Int) throws {
        try launch("attention", "attention_dkv_group_sum", grid,
                   [.buffer(dk), .buffer(dv), .buffer(pk), .buffer(pv), .int(group), .int(n)])
    }
}
