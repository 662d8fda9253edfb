// Embedding lookup and its scatter-add backward. weight and dweight are (V,C); ids (n) are
// validated on the host; out and dy are (n,C).

// out[i, c] = weight[ids[i], c]. Global (C, n).
__kernel void embedding_forward(__global float* out, __global const float* weight, __global const int* ids,
                                int n, int C) {
  int c = get_global_id(0), i = get_global_id(1);
  if (c >= C || i >= n) return;
  out[(size_t)i * C + c] = weight[(size_t)ids[i] * C + c];
}

// The same from a 16-bit table (a frozen embedding kept as stored): format 1 = bf16,
// 2 = IEEE half (vload_half needs no cl_khr_fp16). Global (C, n).
__kernel void embedding_forward_w16(__global float* out, __global const ushort* weight, __global const int* ids,
                                    int n, int C, int format) {
  int c = get_global_id(0), i = get_global_id(1);
  if (c >= C || i >= n) return;
  size_t w = (size_t)ids[i] * C + c;
  out[(size_t)i * C + c] = load_w16(weight, w, format);
}

#if GEMM_BQ
// The same from a blockwise-quantised table (--quantize-embeddings; storage.cl's load_bq, the
// program built with GEMM_BQ and GEMM_BQ_DQ as the quantised GEMMs are). Global (C, n).
__kernel void embedding_forward_quant(__global float* out, __global const uchar* codes, __global const int* ids,
                                      int n, int C, __global const float* scales,
                                      __global const char* scale_codes, float scale_offset) {
  int c = get_global_id(0), i = get_global_id(1);
  if (c >= C || i >= n) return;
  out[(size_t)i * C + c] = load_bq(codes, (size_t)ids[i] * C + c, scales, scale_codes, scale_offset);
}
#endif

// The weight gradient without float atomics: the host groups the positions of each distinct
// id (CSR: unique_ids (U), offsets (U+1), positions (n), positions ascending within an id),
// and one work-item per (distinct id, channel) sums its gradient rows in that order, so the
// result is the same on every run. dweight is zero-filled (rows of ids that do not occur stay 0),
// or with accumulate holds a gradient the sums are added to (a tied head's). Global (C, U).
__kernel void embedding_backward(__global float* dweight, __global const float* dy,
                                 __global const int* unique_ids, __global const int* offsets,
                                 __global const int* positions, int U, int C, int accumulate) {
  int c = get_global_id(0), u = get_global_id(1);
  if (c >= C || u >= U) return;
  float acc = 0.0f;
  for (int k = offsets[u]; k < offsets[u + 1]; k++) acc += dy[(size_t)positions[k] * C + c];
  size_t at = (size_t)unique_ids[u] * C + c;
  dweight[at] = accumulate ? dweight[at] + acc : acc;
}
