// Cross-entropy over vocab logits with an ignore index. logits and dlogits are (N, V);
// targets (N) i32; lse and loss_rows (N). One work-group per row for the forward (the group
// reduces max and sum in local memory); the backward is elementwise over (V, N).

// lse[n] = log Σ_c exp(logits[n,c]); loss_rows[n] = lse[n] − logits[n, target] (0 when ignored).
__kernel void cross_entropy_forward(__global float* loss_rows, __global float* lse, __global const float* logits,
                                    __global const int* targets, int V, int ignore_index, __local float* scratch) {
  size_t row = get_group_id(0);
  int l = get_local_id(0), ls = get_local_size(0);
  __global const float* x = logits + row * V;
  float m = -INFINITY;
  for (int c = l; c < V; c += ls) m = fmax(m, x[c]);
  m = group_reduce_max(scratch, m);
  float s = 0.0f;
  for (int c = l; c < V; c += ls) s += exp(x[c] - m);
  s = group_reduce_sum(scratch, s);
  if (l == 0) {
    float z = m + log(s);
    int t = targets[row];
    lse[row] = z;
    loss_rows[row] = t == ignore_index ? 0.0f : z - x[t];
  }
}

// dlogits[n,c] = (softmax(logits[n])[c] − [c == target]) · dy / count, 0 on ignored rows.
// dy is the loss's incoming gradient, read on the device (no host round trip).
__kernel void cross_entropy_backward(__global float* dlogits, __global const float* logits, __global const float* lse,
                                     __global const int* targets, __global const float* dy, int N, int V,
                                     int ignore_index, float inv_count) {
  int c = get_global_id(0), n = get_global_id(1);
  if (c >= V || n >= N) return;
  size_t i = (size_t)n * V + c;
  int t = targets[n];
  if (t == ignore_index) { dlogits[i] = 0.0f; return; }
  float p = exp(logits[i] - lse[n]);
  dlogits[i] = (p - (c == t ? 1.0f : 0.0f)) * dy[0] * inv_count;
}
