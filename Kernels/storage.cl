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

// The B operand of the GEMM kernels (gemm.cl, gemm_blocked.cl, gemm_skinny.cl): f32 when
// GEMM_B16 is 0, else stored in 16 bits (GEMM_B16 = the format above) and converted as it is
// loaded, the product accumulating in f32. The host sets GEMM_B16 per launch (a 16-bit B is
// a different program), so one kernel source serves every storage format.
#if !defined(GEMM_B16)
#define GEMM_B16 0
#endif
#if GEMM_B16
typedef ushort gemm_b_t;
#define LOAD_B(p, i) load_w16((p), (size_t)(i), GEMM_B16)
#define LOAD_B8(p, i) load_w16x8((p), (size_t)(i), GEMM_B16)
#else
typedef float gemm_b_t;
#define LOAD_B(p, i) ((p)[i])
#define LOAD_B8(p, i) vload8(0, (p) + (i))
#endif
