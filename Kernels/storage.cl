// Reading the storage formats of frozen weights, shared by every family (compiled after
// reduce.cl, before the family's file). format 1 = bf16 (the high half of an f32's bits,
// widened by a shift), 2 = IEEE half (vload_half: core OpenCL C, no cl_khr_fp16 needed, the
// values are never computed on as half). Both are exact in f32.
inline float load_w16(__global const ushort* p, size_t i, int format) {
  return format == 1 ? as_float((uint)p[i] << 16) : vload_half(i, (__global const half*)p);
}

// Eight consecutive values from p + i (any alignment of one element).
inline float8 load_w16x8(__global const ushort* p, size_t i, int format) {
  return format == 1 ? as_float8(convert_uint8(vload8(0, p + i)) << 16)
                     : vload_half8(0, (__global const half*)(p + i));
}

// A blockwise-quantised B (GEMM_BQ = 1 nf4, 2 int8; Sources/ITuneTensor/Quant/BlockQuantized.swift):
// the codes of a frozen (rows, cols) weight in blocks of 64 consecutive values of its row-major
// flat index, each block scaled by its absmax. nf4 packs two 4-bit indices into the 16-value
// NormalFloat4 code book a byte, the first in the high nibble; int8 is round(127 · x / absmax).
// Without double quantisation (GEMM_BQ_DQ 0) `scales` holds the absmax of each block; with it
// (GEMM_BQ_DQ 1) `scale_codes` holds each absmax as an int8 code of (absmax − scale_offset) in
// second-level blocks of 256, and `scales` the f32 absmax of each of those.
//
// The GEMM sources declare a second entry point for this (`gemm_tiled_quant` beside
// `gemm_tiled`, …) with the same body and three trailing parameters, scales, scale_codes and
// scale_offset, which LOAD_B names: B's index is always the flat index into the weight (a
// linear layer's x·Wᵀ reads B (N,K) with ldb = K, its input gradient g·W reads B (K,N) with
// ldb = N: both are row × cols + col of W), so the block of an element is its index / 64.
#if !defined(GEMM_BQ)
#define GEMM_BQ 0
#endif
#if !defined(GEMM_BQ_DQ)
#define GEMM_BQ_DQ 0
#endif
#if GEMM_BQ
// QLoRA's NormalFloat4 code book (as nf4CodeBook in BlockQuantized.swift).
__constant float nf4_code_book[16] = {
  -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
  -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
  0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
  0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// The absmax of block b, restored as the host restores it (c / 127 · second-level absmax + mean).
inline float bq_absmax(size_t b, __global const float* scales, __global const char* scale_codes, float scale_offset) {
#if GEMM_BQ_DQ
  return (float)scale_codes[b] / 127.0f * scales[b / 256] + scale_offset;
#else
  return scales[b];
#endif
}

inline float load_bq(__global const uchar* codes, size_t i, __global const float* scales,
                     __global const char* scale_codes, float scale_offset) {
  const float absmax = bq_absmax(i / 64, scales, scale_codes, scale_offset);
#if GEMM_BQ == 1
  const uchar byte = codes[i >> 1];
  return nf4_code_book[(i & 1) ? (byte & 15) : (byte >> 4)] * absmax;
#else
  return (float)((char)codes[i]) * (absmax / 127.0f);
#endif
}

inline float8 load_bq8(__global const uchar* codes, size_t i, __global const float* scales,
                       __global const char* scale_codes, float scale_offset) {
  float v[8];
  for (int j = 0; j < 8; j++) v[j] = load_bq(codes, i + j, scales, scale_codes, scale_offset);
  return vload8(0, v);
}

#endif

// The B operand of the GEMM kernels (gemm.cl, gemm_blocked.cl, gemm_skinny.cl): f32 when
// GEMM_B16 and GEMM_BQ are 0; else stored in 16 bits (GEMM_B16 = the format above) or blockwise
// quantised (GEMM_BQ) and converted as it is loaded, the product accumulating in f32. The host
// sets the format per launch (another storage format is another program), so one kernel source
// serves every storage format.
#if !defined(GEMM_B16)
#define GEMM_B16 0
#endif
#if GEMM_BQ
typedef uchar gemm_b_t;
#define LOAD_B(p, i) load_bq((p), (size_t)(i), scales, scale_codes, scale_offset)
#define LOAD_B8(p, i) load_bq8((p), (size_t)(i), scales, scale_codes, scale_offset)
#elif GEMM_B16
typedef ushort gemm_b_t;
#define LOAD_B(p, i) load_w16((p), (size_t)(i), GEMM_B16)
#define LOAD_B8(p, i) load_w16x8((p), (size_t)(i), GEMM_B16)
#else
typedef float gemm_b_t;
#define LOAD_B(p, i) ((p)[i])
#define LOAD_B8(p, i) vload8(0, (p) + (i))
#endif
