// Optimizer kernels: the AdamW update and the pieces of gradient clipping by global norm.

// torch.optim.AdamW's single-tensor step, in its order: decoupled decay, moments, then the
// bias-corrected step. The step's clipping scale, its skip flag and the bias corrections
// bc1 = 1 − β1^t, bc2_sqrt = sqrt(1 − β2^t) come from `control` (see optimizer_step_prepare),
// so that the host needs no number from the device to start the update.
// p, g, m, v are (n); control is (8 + …): [t, halted, scale, skip, bc1, bc2_sqrt, …].
__kernel void adamw_update(__global float* p, __global const float* g, __global float* m, __global float* v, int n,
                           float lr, float beta1, float beta2, float eps, float weight_decay,
                           __global const float* control) {
  int i = get_global_id(0);
  // A skipped step (non-finite loss or norm) leaves p, m and v as they were.
  if (i >= n || control[3] != 0.0f) return;
  float scale = control[2], bc1 = control[4], bc2_sqrt = control[5];
  float gi = g[i] * scale;
  float pi = p[i] * (1.0f - lr * weight_decay);
  float mi = m[i] + (gi - m[i]) * (1.0f - beta1);
  float vi = v[i] * beta2 + (1.0f - beta2) * gi * gi;
  float denom = sqrt(vi) / bc2_sqrt + eps;
  p[i] = pi - (lr / bc1) * (mi / denom);
  m[i] = mi;
  v[i] = vi;
}

// The device's half of an optimizer step: clipping by global norm, the divergence check and
// AdamW's bias corrections, decided where the gradients are, so that nothing is read back.
// sums is (n_sums + n_losses): each gradient's Σg², then the step's micro-batch losses, each
// already weighted by its share of the step's scored tokens. control is
// (8 + 3·records): [t, halted, scale, skip, bc1, bc2_sqrt, 0, 0] then per record
// [loss, norm, skipped]. One work-item: a few hundred additions, in a fixed order.
//   norm = √Σ sums[0..n_sums), loss = Σ the losses; scale = min(1, max_norm / (norm + 1e-6))
//   (torch.nn.utils.clip_grad_norm_); a non-finite norm or loss skips the update, and with
//   `halt` sets `halted`, which skips every later update until the host has seen it;
//   t counts the updates applied; the bias corrections are 1 − β^t = −expm1(t·log β), exact to
//   a few ulps where 1 − pow(β, t) would cancel in float.
__kernel void optimizer_step_prepare(__global float* control, __global const float* sums, int n_sums, int n_losses,
                                     float max_norm, float beta1, float beta2, int halt, int record) {
  if (get_global_id(0) != 0) return;
  float total = 0.0f, loss = 0.0f;
  for (int i = 0; i < n_sums; i++) total += sums[i];
  for (int i = 0; i < n_losses; i++) loss += sums[n_sums + i];
  float norm = sqrt(total);
  int finite = isfinite(norm) && isfinite(loss);
  int skip = !finite || control[1] != 0.0f;
  if (!finite && halt) control[1] = 1.0f;
  float coef = max_norm / (norm + 1e-6f);
  float t = control[0] + (skip ? 0.0f : 1.0f);
  control[0] = t;
  control[2] = coef < 1.0f ? coef : 1.0f;
  control[3] = skip ? 1.0f : 0.0f;
  control[4] = t > 0.0f ? -expm1(t * log(beta1)) : 1.0f;
  control[5] = t > 0.0f ? sqrt(-expm1(t * log(beta2))) : 1.0f;
  if (record >= 0) {
    control[8 + 3 * record] = loss;
    control[9 + 3 * record] = norm;
    control[10 + 3 * record] = skip ? 1.0f : 0.0f;
  }
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
