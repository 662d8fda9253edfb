// Conversions between f32 and the 16-bit storage formats. format: 1 = bf16 (the high half of
// an f32's bits), 2 = IEEE half. Half goes through vload_half / vstore_half_rte, which are
// core OpenCL C and need no cl_khr_fp16 (the values are never computed on as half). x, out (n).

// The bf16 nearest to x, round to nearest even; NaN stays NaN (a quiet bit is set so that
// a NaN whose payload lives in the low half does not become infinity).
inline ushort float_to_bf16_rte(float x) {
  uint b = as_uint(x);
  if (isnan(x)) return (ushort)((b >> 16) | 0x40);
  return (ushort)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

// out = x stored in `format`. Global (n).
__kernel void convert_to_w16(__global ushort* out, __global const float* x, int n, int format) {
  int i = get_global_id(0);
  if (i >= n) return;
  if (format == 1) out[i] = float_to_bf16_rte(x[i]);
  else vstore_half_rte(x[i], i, (__global half*)out);
}

// out = x (stored in `format`) as f32, exactly. Global (n).
__kernel void convert_from_w16(__global float* out, __global const ushort* x, int n, int format) {
  int i = get_global_id(0);
  if (i >= n) return;
  out[i] = load_w16(x, i, format);
}

// out = x rounded to the nearest bf16 value, kept as f32 (the activations of a matmul under
// --precision bf16). Global (n).
__kernel void round_to_bf16(__global float* out, __global const float* x, int n) {
  int i = get_global_id(0);
  if (i >= n) return;
  out[i] = as_float((uint)float_to_bf16_rte(x[i]) << 16);
}
