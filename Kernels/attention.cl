// Fused scaled-dot-product attention with grouped-query heads (flash-attention style).
//
// q, o, dout, dq are (B,Tq,NH,D); k, v, dk, dv are (B,Tk,NKV,D); logsumexp and delta are
// (B,NH,Tq). Tq ≤ Tk: the queries are the last Tq positions of the Tk keys (offset = Tk − Tq),
// so that decoding with a KV cache runs the same kernel; training has Tq = Tk.
// Masks, all as key ranges (nothing is read per (query, key) pair):
//   causal     query t sees keys ≤ t + offset;
//   segments   packed rows (Tq = Tk): seg_start[b, p] is the first position of the example that
//              holds position p and seg_end[b, p] one past its last, so a query sees only keys
//              of its own example, earlier and (without causal) later ones. Starts and ends are
//              nondecreasing in p, which bounds each block.
//   bias       (has_bias) an additive term of each score, read as
//              bias[b·bias_sb + t·bias_st + j·bias_sj + h·bias_sh] for query t, key j, head h: T5's
//              relative-position bias and its padding masks (a zero stride broadcasts). It is a
//              (B|1, Tq|1, Tk, NH|1) tensor; the backward writes dbias (B,Tq,Tk,NH) = dscore.
//              Without causal and segments, Tq may exceed Tk (cross-attention).
// Query head h reads kv head h / (NH/NKV). No T×T matrix is ever written to global
// memory: the forward keeps a running max and sum per query row (online softmax) over blocks
// of keys, and the backward recomputes the probabilities from q, k and the saved logsumexp.
//
// Compile-time constants (CLBlast-style specialisation, set by Ops/Attention.swift):
//   HEAD_DIM  D, the size of one head vector; sizes the private accumulators. A shape, always
//             set by the host, so it has no default.
//   BLOCK_Q   the work-group size: rows (queries, or keys in the dK/dV kernel) per group,
//             one per work-item. Tunable.
//   BLOCK_K   rows of the other side staged in local memory at a time, shared by the group.
//             Tunable; the host lowers it for big heads so that two blocks fit local memory.
#ifndef HEAD_DIM
#error "HEAD_DIM (the head size) is set by the host"
#endif
#ifndef BLOCK_Q
#define BLOCK_Q 32
#endif
#ifndef BLOCK_K
#define BLOCK_K 32
#endif

// The keys (x: lo, y: hi, visible lo ..< hi) that the query at key position p of batch row b sees.
int2 key_range(int p, int b, int Tk, int causal, int segments, __global const int* seg_start,
               __global const int* seg_end) {
  int2 r = (int2)(0, causal ? p + 1 : Tk);
  if (segments) {
    size_t i = (size_t)b * Tk + p;
    r.x = seg_start[i];
    r.y = min(r.y, seg_end[i]);
  }
  return r;
}

// The queries (x: lo, y: hi) that see key s of batch row b.
int2 query_range(int s, int b, int Tq, int Tk, int causal, int segments, __global const int* seg_start,
                 __global const int* seg_end) {
  int offset = Tk - Tq;
  int2 r = (int2)(causal ? max(0, s - offset) : 0, Tq);
  if (segments) {
    size_t i = (size_t)b * Tk + s;
    r.x = max(r.x, seg_start[i] - offset);
    r.y = seg_end[i] - offset;
  }
  return r;
}

// The additive bias of (query t, key j, head h) of batch row b; 0 without one.
float score_bias(__global const float* bias, int has_bias, int b, int t, int j, int h, int sb, int st, int sj, int sh) {
  return has_bias ? bias[(size_t)b * sb + (size_t)t * st + (size_t)j * sj + (size_t)h * sh] : 0.0f;
}

// Copies rows row0 ..< row0+n of head `head` of x (B,T,H,D) into dst (n, D), all work-items
// of the group together (consecutive items read consecutive floats).
void stage_rows(__local float* dst, __global const float* x, int b, int T, int H, int head, int row0, int n) {
  for (int i = get_local_id(0); i < n * HEAD_DIM; i += BLOCK_Q) {
    int r = i / HEAD_DIM, d = i - r * HEAD_DIM;
    dst[i] = x[(((size_t)b * T + row0 + r) * H + head) * HEAD_DIM + d];
  }
}

// o = softmax(q·kᵀ·scale + mask)·v, and logsumexp[b,h,t] = log Σ_j exp(q_t·k_j·scale).
// Work-group per (block of BLOCK_Q queries, h, b); each work-item owns one query row.
// logsumexp is written on purpose for the backward: with it the probabilities of a row are
// recomputed as exp(score − logsumexp) in one pass, without the max and sum again.
__kernel void attention_forward(__global float* o, __global float* logsumexp,
                                __global const float* q, __global const float* k, __global const float* v,
                                __global const int* seg_start, __global const int* seg_end,
                                __global const float* bias, int Tq, int Tk, int kv_rows, int NH, int NKV, float scale,
                                int causal, int segments, int has_bias, int bias_sb, int bias_st, int bias_sj,
                                int bias_sh) {
  __local float ks[BLOCK_K * HEAD_DIM];
  __local float vs[BLOCK_K * HEAD_DIM];
  int lid = get_local_id(0), qblock = get_group_id(0), h = get_group_id(1), b = get_group_id(2);
  int kvh = h / (NH / NKV);
  int offset = Tk - Tq;
  int t = qblock * BLOCK_Q + lid;
  bool active = t < Tq;
  size_t row = (((size_t)b * Tq + t) * NH + h) * HEAD_DIM;

  float qr[HEAD_DIM], acc[HEAD_DIM];
  for (int d = 0; d < HEAD_DIM; d++) {
    qr[d] = active ? q[row + d] : 0.0f;
    acc[d] = 0.0f;
  }
  // This row's visible keys are lo ..< hi; the group's first query bounds where any row's keys
  // start, its last where they end.
  int tFirst = qblock * BLOCK_Q, tLast = min(Tq, tFirst + BLOCK_Q) - 1;
  int2 mine = key_range((active ? t : tLast) + offset, b, Tk, causal, segments, seg_start, seg_end);
  int lo = mine.x, hi = mine.y;
  int keyBegin = key_range(tFirst + offset, b, Tk, causal, segments, seg_start, seg_end).x;
  int keyEnd = key_range(tLast + offset, b, Tk, causal, segments, seg_start, seg_end).y;
  float m = -INFINITY, l = 0.0f;
  for (int k0 = keyBegin; k0 < keyEnd; k0 += BLOCK_K) {
    int nk = min(BLOCK_K, keyEnd - k0);
    barrier(CLK_LOCAL_MEM_FENCE);  // everyone is done with the previous block
    stage_rows(ks, k, b, kv_rows, NKV, kvh, k0, nk);
    stage_rows(vs, v, b, kv_rows, NKV, kvh, k0, nk);
    barrier(CLK_LOCAL_MEM_FENCE);
    int jBegin = max(0, lo - k0);
    int jEnd = active ? min(nk, hi - k0) : 0;
    if (jEnd <= jBegin) continue;
    // Scores of the block first, so that the accumulator is rescaled once per block rather
    // than once per key.
    float s[BLOCK_K];
    float mNew = m;
    for (int j = jBegin; j < jEnd; j++) {
      float dot = 0.0f;
      for (int d = 0; d < HEAD_DIM; d++) dot += qr[d] * ks[j * HEAD_DIM + d];
      s[j] = dot * scale + score_bias(bias, has_bias, b, t, k0 + j, h, bias_sb, bias_st, bias_sj, bias_sh);
      mNew = fmax(mNew, s[j]);
    }
    float correction = exp(m - mNew);  // 0 for the first block (m = −inf), where l and acc are 0
    l *= correction;
    for (int d = 0; d < HEAD_DIM; d++) acc[d] *= correction;
    for (int j = jBegin; j < jEnd; j++) {
      float p = exp(s[j] - mNew);
      l += p;
      for (int d = 0; d < HEAD_DIM; d++) acc[d] += p * vs[j * HEAD_DIM + d];
    }
    m = mNew;
  }
  if (!active) return;
  float inv = 1.0f / l;
  for (int d = 0; d < HEAD_DIM; d++) o[row + d] = acc[d] * inv;
  logsumexp[((size_t)b * NH + h) * Tq + t] = m + log(l);
}

// delta[b,h,t] = Σ_d dout[b,t,h,d]·o[b,t,h,d] (= Σ_j p_j·dp_j, the softmax backward's row term).
// One work-item per (b,t,h) row.
__kernel void attention_backward_delta(__global float* delta, __global const float* dout, __global const float* o,
                                       int Tq, int NH, int rows) {
  int r = get_global_id(0);
  if (r >= rows) return;
  int h = r % NH, bt = r / NH, t = bt % Tq, b = bt / Tq;
  size_t row = (size_t)r * HEAD_DIM;
  float s = 0.0f;
  for (int d = 0; d < HEAD_DIM; d++) s += dout[row + d] * o[row + d];
  delta[((size_t)b * NH + h) * Tq + t] = s;
}

// dq_t = scale · Σ_j p_tj·(dout_t·v_j − delta_t)·k_j with p_tj = exp(q_t·k_j·scale + bias_tj − logsumexp_t).
// Same grid and masks as the forward: work-group per (query block, h, b), one query row per
// work-item. With write_dbias, dbias (B,Tq,Tk,NH, zeroed by the host) gets each visible dscore.
__kernel void attention_backward_dq(__global float* dq, __global float* dbias, __global const float* q,
                                    __global const float* k, __global const float* v, __global const float* dout,
                                    __global const float* logsumexp, __global const float* delta,
                                    __global const int* seg_start, __global const int* seg_end,
                                    __global const float* bias, int Tq, int Tk, int NH, int NKV, float scale,
                                    int causal, int segments, int has_bias, int bias_sb, int bias_st, int bias_sj,
                                    int bias_sh, int write_dbias) {
  __local float ks[BLOCK_K * HEAD_DIM];
  __local float vs[BLOCK_K * HEAD_DIM];
  int lid = get_local_id(0), qblock = get_group_id(0), h = get_group_id(1), b = get_group_id(2);
  int kvh = h / (NH / NKV);
  int offset = Tk - Tq;
  int t = qblock * BLOCK_Q + lid;
  bool active = t < Tq;
  size_t row = (((size_t)b * Tq + t) * NH + h) * HEAD_DIM;

  float qr[HEAD_DIM], dor[HEAD_DIM], acc[HEAD_DIM];
  for (int d = 0; d < HEAD_DIM; d++) {
    qr[d] = active ? q[row + d] : 0.0f;
    dor[d] = active ? dout[row + d] : 0.0f;
    acc[d] = 0.0f;
  }
  size_t stat = ((size_t)b * NH + h) * Tq + t;
  float lse = active ? logsumexp[stat] : 0.0f;
  float dlt = active ? delta[stat] : 0.0f;
  int tFirst = qblock * BLOCK_Q, tLast = min(Tq, tFirst + BLOCK_Q) - 1;
  int2 mine = key_range((active ? t : tLast) + offset, b, Tk, causal, segments, seg_start, seg_end);
  int lo = mine.x, hi = mine.y;
  int keyBegin = key_range(tFirst + offset, b, Tk, causal, segments, seg_start, seg_end).x;
  int keyEnd = key_range(tLast + offset, b, Tk, causal, segments, seg_start, seg_end).y;
  for (int k0 = keyBegin; k0 < keyEnd; k0 += BLOCK_K) {
    int nk = min(BLOCK_K, keyEnd - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    stage_rows(ks, k, b, Tk, NKV, kvh, k0, nk);
    stage_rows(vs, v, b, Tk, NKV, kvh, k0, nk);
    barrier(CLK_LOCAL_MEM_FENCE);
    int jBegin = max(0, lo - k0);
    int jEnd = active ? min(nk, hi - k0) : 0;
    for (int j = jBegin; j < jEnd; j++) {
      float sdot = 0.0f, pdot = 0.0f;
      for (int d = 0; d < HEAD_DIM; d++) {
        sdot += qr[d] * ks[j * HEAD_DIM + d];
        pdot += dor[d] * vs[j * HEAD_DIM + d];
      }
      float p = exp(sdot * scale + score_bias(bias, has_bias, b, t, k0 + j, h, bias_sb, bias_st, bias_sj, bias_sh) - lse);
      float ds = p * (pdot - dlt);
      if (write_dbias) dbias[(((size_t)b * Tq + t) * Tk + k0 + j) * NH + h] = ds;
      for (int d = 0; d < HEAD_DIM; d++) acc[d] += ds * ks[j * HEAD_DIM + d];
    }
  }
  if (!active) return;
  for (int d = 0; d < HEAD_DIM; d++) dq[row + d] = acc[d] * scale;
}

// dv_s = Σ_t p_ts·dout_t and dk_s = scale · Σ_t p_ts·(dout_t·v_s − delta_t)·q_t for one query
// head h, over the queries t that see key s. Work-group per (block of BLOCK_Q keys, query head,
// b), one key row per work-item; blocks of queries and their dout rows are staged in local
// memory. dk and dv are (B,Tk,NH,D): with as many KV heads as query heads that is the result;
// under grouped-query attention each query head's share, which attention_dkv_group_sum then adds
// up over the group (a work-group per query head rather than per KV head: 14 query heads over 2
// KV heads gave a GPU 7 times fewer work-groups than it had multiprocessors). Each row is summed
// by one work-item in a fixed order: deterministic, no atomics.
__kernel void attention_backward_dkv(__global float* dk, __global float* dv, __global const float* q,
                                     __global const float* k, __global const float* v, __global const float* dout,
                                     __global const float* logsumexp, __global const float* delta,
                                     __global const int* seg_start, __global const int* seg_end,
                                     __global const float* bias, int Tq, int Tk, int NH, int NKV, float scale,
                                     int causal, int segments, int has_bias, int bias_sb, int bias_st, int bias_sj,
                                     int bias_sh) {
  __local float qs[BLOCK_K * HEAD_DIM];
  __local float dos[BLOCK_K * HEAD_DIM];
  __local float lses[BLOCK_K];
  __local float deltas[BLOCK_K];
  int lid = get_local_id(0), kblock = get_group_id(0), h = get_group_id(1), b = get_group_id(2);
  int kvh = h / (NH / NKV);
  int offset = Tk - Tq;
  int s = kblock * BLOCK_Q + lid;
  bool active = s < Tk;
  size_t row = (((size_t)b * Tk + s) * NKV + kvh) * HEAD_DIM;
  size_t outRow = (((size_t)b * Tk + s) * NH + h) * HEAD_DIM;

  float kr[HEAD_DIM], vr[HEAD_DIM], dkacc[HEAD_DIM], dvacc[HEAD_DIM];
  for (int d = 0; d < HEAD_DIM; d++) {
    kr[d] = active ? k[row + d] : 0.0f;
    vr[d] = active ? v[row + d] : 0.0f;
    dkacc[d] = 0.0f;
    dvacc[d] = 0.0f;
  }
  // Queries tBegin ..< tEnd see this key; the group's first key bounds where they begin, its
  // last key where they end.
  int sFirst = kblock * BLOCK_Q, sLast = min(Tk, sFirst + BLOCK_Q) - 1;
  int2 mine = query_range(active ? s : sLast, b, Tq, Tk, causal, segments, seg_start, seg_end);
  int tBegin = mine.x, tEnd = mine.y;
  int queryStart = query_range(sFirst, b, Tq, Tk, causal, segments, seg_start, seg_end).x;
  int queryEnd = query_range(sLast, b, Tq, Tk, causal, segments, seg_start, seg_end).y;
  __global const float* lseh = logsumexp + ((size_t)b * NH + h) * Tq;
  __global const float* deltah = delta + ((size_t)b * NH + h) * Tq;
  for (int t0 = queryStart; t0 < queryEnd; t0 += BLOCK_K) {
    int nq = min(BLOCK_K, queryEnd - t0);
    barrier(CLK_LOCAL_MEM_FENCE);
    stage_rows(qs, q, b, Tq, NH, h, t0, nq);
    stage_rows(dos, dout, b, Tq, NH, h, t0, nq);
    for (int i = lid; i < nq; i += BLOCK_Q) {
      lses[i] = lseh[t0 + i];
      deltas[i] = deltah[t0 + i];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!active) continue;
    int iEnd = min(nq, tEnd - t0);
    for (int i = max(0, tBegin - t0); i < iEnd; i++) {
      float sdot = 0.0f, pdot = 0.0f;
      for (int d = 0; d < HEAD_DIM; d++) {
        sdot += qs[i * HEAD_DIM + d] * kr[d];
        pdot += dos[i * HEAD_DIM + d] * vr[d];
      }
      float p = exp(sdot * scale + score_bias(bias, has_bias, b, t0 + i, s, h, bias_sb, bias_st, bias_sj, bias_sh)
                    - lses[i]);
      float ds = p * (pdot - deltas[i]);
      for (int d = 0; d < HEAD_DIM; d++) {
        dvacc[d] += p * dos[i * HEAD_DIM + d];
        dkacc[d] += ds * qs[i * HEAD_DIM + d];
      }
    }
  }
  if (!active) return;
  for (int d = 0; d < HEAD_DIM; d++) {
    dk[outRow + d] = dkacc[d] * scale;
    dv[outRow + d] = dvacc[d];
  }
}

// dk, dv (B,Tk,NKV,D) = the sums over each KV head's group of query heads of attention_backward_dkv's
// shares pk, pv (B,Tk,NH,D), the group's heads in order; one work-item per output element, n of them.
__kernel void attention_dkv_group_sum(__global float* dk, __global float* dv, __global const float* pk,
                                      __global const float* pv, int group, int n) {
  int i = get_global_id(0);
  if (i >= n) return;
  size_t base = ((size_t)(i / HEAD_DIM) * group) * HEAD_DIM + i % HEAD_DIM;
  float sk = 0.0f, sv = 0.0f;
  for (int g = 0; g < group; g++) {
    sk += pk[base + (size_t)g * HEAD_DIM];
    sv += pv[base + (size_t)g * HEAD_DIM];
  }
  dk[i] = sk;
  dv[i] = sv;
}
