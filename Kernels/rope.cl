// Rotary position embedding, rotate-half convention (transformers' Llama; not interleaved).
// x and out are (B,T,H,D); cos and sin are (P, D/2) tables; pos holds position ids, (B,T) when
// pos_batched is 1, else (T) shared by every batch row.
// For i < D/2, the pair (x1, x2) = (x[i], x[i + D/2]) turns by the angle of (position, i):
//   out[i] = x1·cos − x2·sin,  out[i + D/2] = x2·cos + x1·sin.
// sign = −1 turns the other way, which is the backward (the rotation's transpose).
// Position ids are validated on the host before launch, so no clamp here.

// Keeps a·b − c·d unfused, as on the CPU path, so both backends give the same bits.
#pragma OPENCL FP_CONTRACT OFF

// One work-item per pair. Global (B·T·H·D/2).
__kernel void rope_rotate(__global float* out, __global const float* x, __global const float* cos_table,
                          __global const float* sin_table, __global const int* pos, int T, int H, int D,
                          int pos_batched, float sign, int pairs) {
  int idx = get_global_id(0);
  if (idx >= pairs) return;
  int hd = D / 2;
  int i = idx % hd;
  int row = idx / hd;   // (b, t, h) flattened
  int bt = row / H;       // (b, t) flattened
  int p = pos[pos_batched ? bt : bt % T];
  float c = cos_table[(size_t)p * hd + i];
  float s = sign * sin_table[(size_t)p * hd + i];
  size_t base = (size_t)row * D;
  float x1 = x[base + i], x2 = x[base + i + hd];
  out[base + i] = x1 * c - x2 * s;
  out[base + i + hd] = x2 * c + x1 * s;
}
