// Softmax over the last dim. x, y, dy, dx are (N, C). One work-group per row; the group
// reduces max and sum in local memory (the max is subtracted for numerical stability).

__kernel void softmax_forward(__global float* y, __global const float* x, int C, __local float* scratch) {
  size_t row = get_group_id(0);
  int l = get_local_id(0), ls = get_local_size(0);
  __global const float* xr = x + row * C;
  __global float* yr = y + row * C;
  float m = -INFINITY;
  for (int c = l; c < C; c += ls) m = fmax(m, xr[c]);
  m = group_reduce_max(scratch, m);
  float s = 0.0f;
  for (int c = l; c < C; c += ls) s += exp(xr[c] - m);
  s = group_reduce_sum(scratch, s);
  float inv = 1.0f / s;
  for (int c = l; c < C; c += ls) yr[c] = exp(xr[c] - m) * inv;
}

// dx = y * (dy - sum(dy * y))
__kernel void softmax_backward(__global float* dx, __global const float* y, __global const float* dy, int C,
                               __local float* scratch) {
  size_t row = get_group_id(0);
  int l = get_local_id(0), ls = get_local_size(0);
  __global const float* yr = y + row * C;
  __global const float* dyr = dy + row * C;
  float d = 0.0f;
  for (int c = l; c < C; c += ls) d += yr[c] * dyr[c];
  d = group_reduce_sum(scratch, d);
  for (int c = l; c < C; c += ls) dx[row * C + c] = yr[c] * (dyr[c] - d);
}
