// Elementwise ops, broadcasting over the last dims, and deterministic reductions.
// Every kernel takes its element count and guards it: global sizes may be rounded up.

// out is (n), a is (n), b is (nb) with n % nb == 0: out = a + b[i % nb]
__kernel void add_bcast(__global float* out, __global const float* a, __global const float* b, int n, int nb) {
  int i = get_global_id(0);
  if (i < n) out[i] = a[i] + b[i % nb];
}

__kernel void mul_bcast(__global float* out, __global const float* a, __global const float* b, int n, int nb) {
  int i = get_global_id(0);
  if (i < n) out[i] = a[i] * b[i % nb];
}

__kernel void scale(__global float* out, __global const float* a, float s, int n) {
  int i = get_global_id(0);
  if (i < n) out[i] = a[i] * s;
}

// y += alpha * x (gradient accumulation)
__kernel void axpy(__global float* y, __global const float* x, float alpha, int n) {
  int i = get_global_id(0);
  if (i < n) y[i] += alpha * x[i];
}

__kernel void silu_forward(__global float* out, __global const float* x, int n) {
  int i = get_global_id(0);
  if (i < n) { float v = x[i]; out[i] = v / (1.0f + exp(-v)); }
}

// d/dx x*s(x) = s(x) * (1 + x * (1 - s(x)))
__kernel void silu_backward(__global float* dx, __global const float* x, __global const float* dy, int n) {
  int i = get_global_id(0);
  if (i < n) {
    float v = x[i], s = 1.0f / (1.0f + exp(-v));
    dx[i] = dy[i] * s * (1.0f + v * (1.0f - s));
  }
}

#define GELU_K 0.7978845608028654f   // sqrt(2/pi)
#define GELU_C 0.044715f

// GELU, tanh form (gelu_new / gelu_pytorch_tanh)
__kernel void gelu_forward(__global float* out, __global const float* x, int n) {
  int i = get_global_id(0);
  if (i < n) {
    float v = x[i];
    out[i] = 0.5f * v * (1.0f + tanh(GELU_K * (v + GELU_C * v * v * v)));
  }
}

__kernel void gelu_backward(__global float* dx, __global const float* x, __global const float* dy, int n) {
  int i = get_global_id(0);
  if (i < n) {
    float v = x[i];
    float t = tanh(GELU_K * (v + GELU_C * v * v * v));
    float dt = GELU_K * (1.0f + 3.0f * GELU_C * v * v) * (1.0f - t * t);
    dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * dt);
  }
}

// SwiGLU: out = silu(gate) * up; gate, up, out are (n)
__kernel void swiglu_forward(__global float* out, __global const float* gate, __global const float* up, int n) {
  int i = get_global_id(0);
  if (i < n) { float g = gate[i]; out[i] = g / (1.0f + exp(-g)) * up[i]; }
}

__kernel void swiglu_backward(__global float* dgate, __global float* dup, __global const float* gate,
                              __global const float* up, __global const float* dy, int n) {
  int i = get_global_id(0);
  if (i < n) {
    float g = gate[i], s = 1.0f / (1.0f + exp(-g)), d = dy[i];
    dup[i] = d * g * s;
    dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
  }
}

// Column sums: x is (rows, cols), out is (cols). With y != 0 it sums x*y (the gradient of a
// broadcast multiply). One work-item per column walks the rows in order: deterministic.
__kernel void column_sum(__global float* out, __global const float* x, __global const float* y,
                         int use_y, int rows, int cols) {
  int c = get_global_id(0);
  if (c >= cols) return;
  float acc = 0.0f;
  for (int r = 0; r < rows; r++) {
    float v = x[(size_t)r * cols + c];
    acc += use_y ? v * y[(size_t)r * cols + c] : v;
  }
  out[c] = acc;
}

// Sum of x (n) into partial[group]: each group reduces a fixed contiguous chunk in a fixed
// tree order, so the result does not depend on scheduling.
__kernel void sum_partial(__global float* partial, __global const float* x, int n, int chunk,
                          __local float* scratch) {
  int g = get_group_id(0), l = get_local_id(0), ls = get_local_size(0);
  int begin = g * chunk, end = min(n, begin + chunk);
  float acc = 0.0f;
  for (int i = begin + l; i < end; i += ls) acc += x[i];
  scratch[l] = acc;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = ls / 2; s > 0; s >>= 1) {
    if (l < s) scratch[l] += scratch[l + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (l == 0) partial[g] = scratch[0];
}

// out[i] = value for all i (the gradient of a sum)
__kernel void fill(__global float* out, __global const float* value, float s, int n) {
  int i = get_global_id(0);
  if (i < n) out[i] = value[0] * s;
}

// Column slices: x is (N, C); part is (N, W) = x[:, offset:offset+W]. The backward writes a
// part's gradient into the same columns of a zero-filled (N, C) buffer.
__kernel void copy_columns(__global float* part, __global const float* x, int N, int C, int offset, int W) {
  int j = get_global_id(0), n = get_global_id(1);
  if (j < W && n < N) part[(size_t)n * W + j] = x[(size_t)n * C + offset + j];
}

__kernel void scatter_columns(__global float* dx, __global const float* dpart, int N, int C, int offset, int W) {
  int j = get_global_id(0), n = get_global_id(1);
  if (j < W && n < N) dx[(size_t)n * C + offset + j] = dpart[(size_t)n * W + j];
}

// Dropout with a counter-based mask: element i is kept when hash(seed, i) ≥ p·2³², so the
// CPU path and every device draw the same mask from the same seed, with no RNG state.
uint dropout_hash(uint seed_lo, uint seed_hi, uint i) {
  uint h = i * 0x9E3779B9u ^ seed_lo;
  h ^= h >> 16; h *= 0x85EBCA6Bu;
  h ^= h >> 13; h *= 0xC2B2AE35u;
  h ^= h >> 16;
  h ^= seed_hi; h *= 0x27D4EB2Fu;
  h ^= h >> 15;
  return h;
}

// out = x · mask / (1 − p); also the backward (dx = dy · mask / (1 − p)) with dy as x.
__kernel void dropout_apply(__global float* out, __global const float* x, int n, uint seed_lo, uint seed_hi,
                            uint threshold, float inv_keep) {
  int i = get_global_id(0);
  if (i >= n) return;
  out[i] = dropout_hash(seed_lo, seed_hi, (uint)i) >= threshold ? x[i] * inv_keep : 0.0f;
}

// GELU, exact form x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (BERT's "gelu"); d/dx = Φ(x) + x·φ(x).
__kernel void gelu_erf_forward(__global float* out, __global const float* x, int n) {
  int i = get_global_id(0);
  if (i < n) {
    float v = x[i];
    out[i] = 0.5f * v * erfc(-v * 0.7071067811865476f);  // erfc keeps the left tail accurate
  }
}

__kernel void gelu_erf_backward(__global float* dx, __global const float* x, __global const float* dy, int n) {
  int i = get_global_id(0);
  if (i < n) {
    float v = x[i];
    float cdf = 0.5f * erfc(-v * 0.7071067811865476f);
    float pdf = 0.3989422804014327f * exp(-0.5f * v * v);
    dx[i] = dy[i] * (cdf + v * pdf);
  }
}

// ReLU (T5's feed-forward): max(x, 0); d/dx = 1 where x > 0, else 0 (PyTorch's choice at 0).
__kernel void relu_forward(__global float* out, __global const float* x, int n) {
  int i = get_global_id(0);
  if (i >= n) return;
  out[i] = fmax(x[i], 0.0f);
}

__kernel void relu_backward(__global float* dx, __global const float* x, __global const float* dy, int n) {
  int i = get_global_id(0);
  if (i >= n) return;
  dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}
