// Optimizer kernels: the AdamW update and the pieces of gradient clipping by global norm.

// torch.optim.AdamW's single-tensor step, in its order: decoupled decay, moments, then the
// bias-corrected step. bc1 = 1 − β1^t, bc2_sqrt = sqrt(1 − β2^t), computed on the host.
__kernel void adamw_update(__global float* p, __global const float* g, __global float* m, __global float* v, int n,
                           float lr, float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2_sqrt) {
  int i = get_global_id(0);
  if (i >= n) return;
  float gi = g[i];
  float pi = p[i] * (1.0f - lr * weight_decay);
  float mi = m[i] + (gi - m[i]) * (1.0f - beta1);
  float vi = v[i] * beta2 + (1.0f - beta2) * gi * gi;
  float denom = sqrt(vi) / bc2_sqrt + eps;
  p[i] = pi - (lr / bc1) * (mi / denom);
  m[i] = mi;
  v[i] = vi;
}

// out[out_offset + group] = Σ x[i]² (square = 1) or Σ x[i] over the group's chunk of `chunk`
// elements, summed in a fixed tree order: the same bits on every run.
__kernel void sum_squares_partial(__global float* out, int out_offset, __global const float* x, int n, int chunk,
                                  int square, __local float* s) {
  int g = get_group_id(0), l = get_local_id(0), ls = get_local_size(0);
  int begin = g * chunk, end = min(n, begin + chunk);
  float acc = 0.0f;
  for (int i = begin + l; i < end; i += ls) acc += square ? x[i] * x[i] : x[i];
  s[l] = acc;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int k = ls / 2; k > 0; k >>= 1) {
    if (l < k) s[l] += s[l + k];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (l == 0) out[out_offset + g] = s[0];
}

// x *= factor, in place.
__kernel void scale_in_place(__global float* x, int n, float factor) {
  int i = get_global_id(0);
  if (i < n) x[i] *= factor;
}
