// RMSNorm (Llama) and LayerNorm (GPT-2) over the last dim.
// x, y, dy, dx are (N,C); weight and bias are (C); mean and rstd are (N), written by the
// forward pass and kept for the backward.
// Row kernels run one work-group per row and reduce in local memory in a fixed tree order.
// The weight/bias gradients are column sums over N rows: each work-item sums a fixed block of
// rows in order (`*_part`), then `sum_parts` adds the blocks in order. No atomics, so the same
// inputs give the same bits on a device.

// Contraction into fma would make results depend on the compiler; the CPU path does not fuse.
#pragma OPENCL FP_CONTRACT OFF

// Two row sums in one tree (LayerNorm's backward needs Σg and Σg·x̂).
float2 group_sum2(__local float2* s, float2 v) {
  int l = get_local_id(0), ls = get_local_size(0);
  s[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int k = ls / 2; k > 0; k >>= 1) {
    if (l < k) s[l] += s[l + k];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float2 r = s[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

// y = x * rstd * weight, rstd = 1/sqrt(mean(x²) + eps)
__kernel void rmsnorm_forward(__global float* y, __global float* rstd, __global const float* x,
                              __global const float* weight, int C, float eps, __local float* scratch) {
  size_t row = get_group_id(0);
  int l = get_local_id(0), ls = get_local_size(0);
  __global const float* xr = x + row * C;
  float ss = 0.0f;
  for (int c = l; c < C; c += ls) ss += xr[c] * xr[c];
  ss = group_reduce_sum(scratch, ss);
  float r = 1.0f / sqrt(ss / (float)C + eps);
  for (int c = l; c < C; c += ls) y[row * C + c] = xr[c] * r * weight[c];
  if (l == 0) rstd[row] = r;
}

// dx = r·w·dy − x · r³/C · Σ(dy·w·x)
__kernel void rmsnorm_backward_dx(__global float* dx, __global const float* x, __global const float* weight,
                                  __global const float* rstd, __global const float* dy, int C,
                                  __local float* scratch) {
  size_t row = get_group_id(0);
  int l = get_local_id(0), ls = get_local_size(0);
  __global const float* xr = x + row * C;
  __global const float* dyr = dy + row * C;
  float r = rstd[row];
  float dot = 0.0f;
  for (int c = l; c < C; c += ls) dot += dyr[c] * weight[c] * xr[c];
  dot = group_reduce_sum(scratch, dot);
  float k = r * r * r * dot / (float)C;
  for (int c = l; c < C; c += ls) dx[row * C + c] = r * weight[c] * dyr[c] - xr[c] * k;
}

// part[p, c] = Σ_{rows of block p} dy·x·rstd. Global (C, parts).
__kernel void rmsnorm_dweight_part(__global float* part, __global const float* x, __global const float* rstd,
                                   __global const float* dy, int N, int C, int rows_per_part) {
  int c = get_global_id(0), p = get_global_id(1);
  if (c >= C) return;
  int end = min(N, (p + 1) * rows_per_part);
  float acc = 0.0f;
  for (int r = p * rows_per_part; r < end; r++) {
    size_t i = (size_t)r * C + c;
    acc += dy[i] * x[i] * rstd[r];
  }
  part[(size_t)p * C + c] = acc;
}

// mean = Σx/C, rstd = 1/sqrt(Σ(x−mean)²/C + eps) (the biased variance, as torch's layer_norm),
// y = (x − mean)·rstd·w + b. Two passes over the row: subtracting the mean first keeps the
// variance accurate when |mean| ≫ std.
__kernel void layernorm_forward(__global float* y, __global float* mean, __global float* rstd,
                                __global const float* x, __global const float* weight, __global const float* bias,
                                int C, float eps, __local float* scratch) {
  size_t row = get_group_id(0);
  int l = get_local_id(0), ls = get_local_size(0);
  __global const float* xr = x + row * C;
  float s = 0.0f;
  for (int c = l; c < C; c += ls) s += xr[c];
  float m = group_reduce_sum(scratch, s) / (float)C;
  float v = 0.0f;
  for (int c = l; c < C; c += ls) { float d = xr[c] - m; v += d * d; }
  v = group_reduce_sum(scratch, v) / (float)C;
  float r = 1.0f / sqrt(v + eps);
  for (int c = l; c < C; c += ls) y[row * C + c] = (xr[c] - m) * r * weight[c] + bias[c];
  if (l == 0) { mean[row] = m; rstd[row] = r; }
}

// With g = dy·w and x̂ = (x − mean)·rstd: dx = rstd · (g − mean(g) − x̂·mean(g·x̂)).
__kernel void layernorm_backward_dx(__global float* dx, __global const float* x, __global const float* weight,
                                    __global const float* mean, __global const float* rstd,
                                    __global const float* dy, int C, __local float2* scratch) {
  size_t row = get_group_id(0);
  int l = get_local_id(0), ls = get_local_size(0);
  __global const float* xr = x + row * C;
  __global const float* dyr = dy + row * C;
  float m = mean[row], r = rstd[row];
  float2 acc = (float2)(0.0f, 0.0f);
  for (int c = l; c < C; c += ls) {
    float g = dyr[c] * weight[c];
    acc.x += g;
    acc.y += g * ((xr[c] - m) * r);
  }
  acc = group_sum2(scratch, acc);
  float mg = acc.x / (float)C, mgx = acc.y / (float)C;
  for (int c = l; c < C; c += ls) {
    float xhat = (xr[c] - m) * r;
    dx[row * C + c] = r * (dyr[c] * weight[c] - mg - xhat * mgx);
  }
}

// part_w[p, c] = Σ dy·x̂ and part_b[p, c] = Σ dy over the rows of block p. Global (C, parts).
__kernel void layernorm_dparams_part(__global float* part_w, __global float* part_b, __global const float* x,
                                     __global const float* mean, __global const float* rstd,
                                     __global const float* dy, int N, int C, int rows_per_part) {
  int c = get_global_id(0), p = get_global_id(1);
  if (c >= C) return;
  int end = min(N, (p + 1) * rows_per_part);
  float aw = 0.0f, ab = 0.0f;
  for (int r = p * rows_per_part; r < end; r++) {
    size_t i = (size_t)r * C + c;
    aw += dy[i] * ((x[i] - mean[r]) * rstd[r]);
    ab += dy[i];
  }
  part_w[(size_t)p * C + c] = aw;
  part_b[(size_t)p * C + c] = ab;
}

// out[c] = Σ_p part[p, c], blocks in order. part is (parts, C).
__kernel void sum_parts(__global float* out, __global const float* part, int parts, int C) {
  int c = get_global_id(0);
  if (c >= C) return;
  float acc = 0.0f;
  for (int p = 0; p < parts; p++) acc += part[(size_t)p * C + c];
  out[c] = acc;
}

// Cosine similarity of rows: u, v are (N, C); out (N) = u·v / (|u|·|v|). One work-group per row.

// (u·v, |u|², |v|²) of one row, reduced by the group.
float3 cosine_sums(__global const float* ur, __global const float* vr, int C, __local float* s) {
  int l = get_local_id(0), ls = get_local_size(0);
  float uv = 0.0f, uu = 0.0f, vv = 0.0f;
  for (int c = l; c < C; c += ls) { uv += ur[c] * vr[c]; uu += ur[c] * ur[c]; vv += vr[c] * vr[c]; }
  return (float3)(group_reduce_sum(s, uv), group_reduce_sum(s, uu), group_reduce_sum(s, vv));
}

__kernel void cosine_rows_forward(__global float* out, __global const float* u, __global const float* v, int C,
                                  __local float* s) {
  size_t row = get_group_id(0);
  float3 t = cosine_sums(u + row * C, v + row * C, C, s);
  if (get_local_id(0) == 0) out[row] = t.x / fmax(sqrt(t.y * t.z), 1e-12f);
}

// du = dy·(v/(|u||v|) − cos·u/|u|²), dv likewise; one work-group per row.
__kernel void cosine_rows_backward(__global float* du, __global float* dv, __global const float* u,
                                   __global const float* v, __global const float* dy, int C, __local float* s) {
  size_t row = get_group_id(0);
  int l = get_local_id(0), ls = get_local_size(0);
  __global const float* ur = u + row * C;
  __global const float* vr = v + row * C;
  float3 t = cosine_sums(ur, vr, C, s);
  float nu = fmax(sqrt(t.y), 1e-12f), nv = fmax(sqrt(t.z), 1e-12f);
  float cosv = t.x / (nu * nv), g = dy[row];
  for (int c = l; c < C; c += ls) {
    du[row * C + c] = g * (vr[c] / (nu * nv) - cosv * ur[c] / (nu * nu));
    dv[row * C + c] = g * (ur[c] / (nu * nv) - cosv * vr[c] / (nv * nv));
  }
}
