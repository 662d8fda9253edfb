// Fused causal scaled-dot-product attention with grouped-query heads (flash-attention style).
//
// q, o, dout, dq are (B,T,NH,D); k, v, dk, dv are (B,T,NKV,D); logsumexp and delta are
// (B,NH,T). Query head h reads kv head h / (NH/NKV). No T×T matrix is ever written to global
// memory: the forward keeps a running max and sum per query row (online softmax) over blocks
// of keys, and the backward recomputes the probabilities from q, k and the saved logsumexp.
//
// Compile-time constants (CLBlast-style specialisation, set by Ops/Attention.swift):
//   HEAD_DIM  D, the size of one head vector; sizes the private accumulators.
//   BLOCK_Q   the work-group size: rows (queries, or keys in the dK/dV kernel) per group,
//             one per work-item.
//   BLOCK_K   rows of the other side staged in local memory at a time, shared by the group.
#ifndef HEAD_DIM
#define HEAD_DIM 64
#endif
#ifndef BLOCK_Q
#define BLOCK_Q 32
#endif
#ifndef BLOCK_K
#define BLOCK_K 32
#endif

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
                                int T, int NH, int NKV, float scale, int causal) {
  __local float ks[BLOCK_K * HEAD_DIM];
  __local float vs[BLOCK_K * HEAD_DIM];
  int lid = get_local_id(0), qblock = get_group_id(0), h = get_group_id(1), b = get_group_id(2);
  int kvh = h / (NH / NKV);
  int t = qblock * BLOCK_Q + lid;
  bool active = t < T;
  size_t row = (((size_t)b * T + t) * NH + h) * HEAD_DIM;

  float qr[HEAD_DIM], acc[HEAD_DIM];
  for (int d = 0; d < HEAD_DIM; d++) {
    qr[d] = active ? q[row + d] : 0.0f;
    acc[d] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  // The group's last query bounds the keys any of its rows can see.
  int keyEnd = causal ? min(T, (qblock + 1) * BLOCK_Q) : T;
  for (int k0 = 0; k0 < keyEnd; k0 += BLOCK_K) {
    int nk = min(BLOCK_K, keyEnd - k0);
    barrier(CLK_LOCAL_MEM_FENCE);  // everyone is done with the previous block
    stage_rows(ks, k, b, T, NKV, kvh, k0, nk);
    stage_rows(vs, v, b, T, NKV, kvh, k0, nk);
    barrier(CLK_LOCAL_MEM_FENCE);
    int jEnd = active ? (causal ? min(nk, t - k0 + 1) : nk) : 0;
    if (jEnd <= 0) continue;
    // Scores of the block first, so that the accumulator is rescaled once per block rather
    // than once per key.
    float s[BLOCK_K];
    float mNew = m;
    for (int j = 0; j < jEnd; j++) {
      float dot = 0.0f;
      for (int d = 0; d < HEAD_DIM; d++) dot += qr[d] * ks[j * HEAD_DIM + d];
      s[j] = dot * scale;
      mNew = fmax(mNew, s[j]);
    }
    float correction = exp(m - mNew);  // 0 for the first block (m = −inf), where l and acc are 0
    l *= correction;
    for (int d = 0; d < HEAD_DIM; d++) acc[d] *= correction;
    for (int j = 0; j < jEnd; j++) {
      float p = exp(s[j] - mNew);
      l += p;
      for (int d = 0; d < HEAD_DIM; d++) acc[d] += p * vs[j * HEAD_DIM + d];
    }
    m = mNew;
  }
  if (!active) return;
  float inv = 1.0f / l;
  for (int d = 0; d < HEAD_DIM; d++) o[row + d] = acc[d] * inv;
  logsumexp[((size_t)b * NH + h) * T + t] = m + log(l);
}

// delta[b,h,t] = Σ_d dout[b,t,h,d]·o[b,t,h,d] (= Σ_j p_j·dp_j, the softmax backward's row term).
// One work-item per (b,t,h) row.
__kernel void attention_backward_delta(__global float* delta, __global const float* dout, __global const float* o,
                                       int T, int NH, int rows) {
  int r = get_global_id(0);
  if (r >= rows) return;
  int h = r % NH, bt = r / NH, t = bt % T, b = bt / T;
  size_t row = (size_t)r * HEAD_DIM;
  float s = 0.0f;
  for (int d = 0; d < HEAD_DIM; d++) s += dout[row + d] * o[row + d];
  delta[((size_t)b * NH + h) * T + t] = s;
}

// dq_t = scale · Σ_j p_tj·(dout_t·v_j − delta_t)·k_j with p_tj = exp(q_t·k_j·scale − logsumexp_t).
// Same grid as the forward: work-group per (query block, h, b), one query row per work-item.
__kernel void attention_backward_dq(__global float* dq, __global const float* q, __global const float* k,
                                    __global const float* v, __global const float* dout,
                                    __global const float* logsumexp, __global const float* delta,
                                    int T, int NH, int NKV, float scale, int causal) {
  __local float ks[BLOCK_K * HEAD_DIM];
  __local float vs[BLOCK_K * HEAD_DIM];
  int lid = get_local_id(0), qblock = get_group_id(0), h = get_group_id(1), b = get_group_id(2);
  int kvh = h / (NH / NKV);
  int t = qblock * BLOCK_Q + lid;
  bool active = t < T;
  size_t row = (((size_t)b * T + t) * NH + h) * HEAD_DIM;

  float qr[HEAD_DIM], dor[HEAD_DIM], acc[HEAD_DIM];
  for (int d = 0; d < HEAD_DIM; d++) {
    qr[d] = active ? q[row + d] : 0.0f;
    dor[d] = active ? dout[row + d] : 0.0f;
    acc[d] = 0.0f;
  }
  size_t stat = ((size_t)b * NH + h) * T + t;
  float lse = active ? logsumexp[stat] : 0.0f;
  float dlt = active ? delta[stat] : 0.0f;
  int keyEnd = causal ? min(T, (qblock + 1) * BLOCK_Q) : T;
  for (int k0 = 0; k0 < keyEnd; k0 += BLOCK_K) {
    int nk = min(BLOCK_K, keyEnd - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    stage_rows(ks, k, b, T, NKV, kvh, k0, nk);
    stage_rows(vs, v, b, T, NKV, kvh, k0, nk);
    barrier(CLK_LOCAL_MEM_FENCE);
    int jEnd = active ? (causal ? min(nk, t - k0 + 1) : nk) : 0;
    for (int j = 0; j < jEnd; j++) {
      float sdot = 0.0f, pdot = 0.0f;
      for (int d = 0; d < HEAD_DIM; d++) {
        sdot += qr[d] * ks[j * HEAD_DIM + d];
        pdot += dor[d] * vs[j * HEAD_DIM + d];
      }
      float p = exp(sdot * scale - lse);
      float ds = p * (pdot - dlt);
      for (int d = 0; d < HEAD_DIM; d++) acc[d] += ds * ks[j * HEAD_DIM + d];
    }
  }
  if (!active) return;
  for (int d = 0; d < HEAD_DIM; d++) dq[row + d] = acc[d] * scale;
}

// dv_s = Σ_{h in group} Σ_t p_ts·dout_t and dk_s = scale · Σ_{h in group} Σ_t p_ts·(dout_t·v_s − delta_t)·q_t,
// over t ≥ s when causal. Work-group per (block of BLOCK_Q keys, kv head, b), one key row per
// work-item; blocks of queries and their dout rows are staged in local memory. Each key row is
// summed by one work-item in a fixed order (group heads, then queries): deterministic, no atomics.
__kernel void attention_backward_dkv(__global float* dk, __global float* dv, __global const float* q,
                                     __global const float* k, __global const float* v, __global const float* dout,
                                     __global const float* logsumexp, __global const float* delta,
                                     int T, int NH, int NKV, float scale, int causal) {
  __local float qs[BLOCK_K * HEAD_DIM];
  __local float dos[BLOCK_K * HEAD_DIM];
  __local float lses[BLOCK_K];
  __local float deltas[BLOCK_K];
  int lid = get_local_id(0), kblock = get_group_id(0), kvh = get_group_id(1), b = get_group_id(2);
  int group = NH / NKV;
  int s = kblock * BLOCK_Q + lid;
  bool active = s < T;
  size_t row = (((size_t)b * T + s) * NKV + kvh) * HEAD_DIM;

  float kr[HEAD_DIM], vr[HEAD_DIM], dkacc[HEAD_DIM], dvacc[HEAD_DIM];
  for (int d = 0; d < HEAD_DIM; d++) {
    kr[d] = active ? k[row + d] : 0.0f;
    vr[d] = active ? v[row + d] : 0.0f;
    dkacc[d] = 0.0f;
    dvacc[d] = 0.0f;
  }
  // The group's first key bounds the queries that see any of its rows.
  int queryStart = causal ? kblock * BLOCK_Q : 0;
  for (int g = 0; g < group; g++) {
    int h = kvh * group + g;
    __global const float* lseh = logsumexp + ((size_t)b * NH + h) * T;
    __global const float* deltah = delta + ((size_t)b * NH + h) * T;
    for (int t0 = queryStart; t0 < T; t0 += BLOCK_K) {
      int nq = min(BLOCK_K, T - t0);
      barrier(CLK_LOCAL_MEM_FENCE);
      stage_rows(qs, q, b, T, NH, h, t0, nq);
      stage_rows(dos, dout, b, T, NH, h, t0, nq);
      for (int i = lid; i < nq; i += BLOCK_Q) {
        lses[i] = lseh[t0 + i];
        deltas[i] = deltah[t0 + i];
      }
      barrier(CLK_LOCAL_MEM_FENCE);
      if (!active) continue;
      for (int i = causal ? max(0, s - t0) : 0; i < nq; i++) {
        float sdot = 0.0f, pdot = 0.0f;
        for (int d = 0; d < HEAD_DIM; d++) {
          sdot += qs[i * HEAD_DIM + d] * kr[d];
          pdot += dos[i * HEAD_DIM + d] * vr[d];
        }
        float p = exp(sdot * scale - lses[i]);
        float ds = p * (pdot - deltas[i]);
        for (int d = 0; d < HEAD_DIM; d++) {
          dvacc[d] += p * dos[i * HEAD_DIM + d];
          dkacc[d] += ds * qs[i * HEAD_DIM + d];
        }
      }
    }
  }
  if (!active) return;
  for (int d = 0; d < HEAD_DIM; d++) {
    dk[row + d] = dkacc[d] * scale;
    dv[row + d] = dvacc[d];
  }
}
