// The CPU GEMM's micro-kernels and the CPU feature probe, in C so that one generic binary can
// carry AVX2+FMA and AVX-512 code next to its baseline code and pick one when it starts:
// Swift has neither per-function target attributes nor inline assembly (cpuid, xgetbv), C has
// both. Everything else of the GEMM (blocking, packing, the split between threads) stays in
// Swift (Sources/ITuneTensor/CPU/Gemm.swift, GemmDispatch.swift). The thread pool the CPU path
// runs on (pool.c) is here too: it needs C's atomics and a pause instruction to spin on.
#ifndef ITUNE_CGEMMKERNELS_H
#define ITUNE_CGEMMKERNELS_H

#include <stddef.h>

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Feature bits of itune_cpu_features(). The x86 bits are set only when the OS also saves the
/// registers (XCR0), i.e. when the instructions can actually run.
#define ITUNE_CPU_X86_AVX2 0x1u
#define ITUNE_CPU_X86_FMA 0x2u
#define ITUNE_CPU_X86_AVX512F 0x4u
#define ITUNE_CPU_X86_AVX512VL 0x8u
#define ITUNE_CPU_X86_F16C 0x10u
#define ITUNE_CPU_ARM_ASIMD 0x100u
#define ITUNE_CPU_ARM_FP16 0x200u
#define ITUNE_CPU_ARM_SVE 0x400u
#define ITUNE_CPU_ARM_BF16 0x800u

/// The running CPU's features: cpuid + xgetbv on x86-64, getauxval(AT_HWCAP) on Linux arm64,
/// sysctl on Apple arm64.
unsigned itune_cpu_features(void);

/// Data cache sizes in bytes of the running CPU (0 where unknown): level 1 (data), 2 and 3,
/// from /sys/devices/system/cpu/cpu0/cache on Linux, sysconf, or sysctl on Apple systems.
void itune_cpu_cache_sizes(long *l1d, long *l2, long *l3);

/// Micro-kernels: c (MR,NR) = alpha · a · b + beta · c, from a packed A micro-panel (kc,MR)
/// (the MR values of one k side by side) and a packed B micro-panel (kc,NR); c is row-major
/// with row stride ldc. beta == 0: c is not read. Call only where the features allow
/// (itune_cpu_features); elsewhere they are absent (return without writing) or never built.
void itune_sgemm_ukr_avx2_6x16(long kc, const float *a, const float *b, float *c, long ldc,
                               float alpha, float beta);
void itune_sgemm_ukr_avx512_12x32(long kc, const float *a, const float *b, float *c, long ldc,
                                  float alpha, float beta);
/// The kernels over two pairs of panels, for a product with extra columns of A and rows of
/// B kept apart (LoRA's low-rank term as K + r): c = alpha · (a · b + a2 · b2) + beta · c, a2
/// (kc2,MR) and b2 (kc2,NR) packed as a and b; one load and store of c.
void itune_sgemm_ukr2_avx2_6x16(long kc, const float *a, const float *b, long kc2, const float *a2,
                                const float *b2, float *c, long ldc, float alpha, float beta);
void itune_sgemm_ukr2_avx512_12x32(long kc, const float *a, const float *b, long kc2, const float *a2,
                                   const float *b2, float *c, long ldc, float alpha, float beta);
/// The arm64 kernel (neon.c): 12 × 8, 24 NEON accumulators, and its two-pair form. Built from
/// portable C on other CPUs (same results, for tests of the driver's 12 × 8 tile; never
/// chosen there): itune_neon_kernel_is_native() says which.
void itune_sgemm_ukr_neon_12x8(long kc, const float *a, const float *b, float *c, long ldc, float alpha, float beta);
void itune_sgemm_ukr2_neon_12x8(long kc, const float *a, const float *b, long kc2, const float *a2,
                                const float *b2, float *c, long ldc, float alpha, float beta);
int itune_neon_kernel_is_native(void);

/// The CPU path's thread pool (pool.c): fn(ctx, i) for every i in 0..<count, on the calling
/// thread and threads − 1 workers that spin for spin_ns after each call before they park.
/// Items are handed out one at a time to whichever thread is free. Returns 1 when the items
/// have all run, 0 when it ran none because the pool is in use (a call from inside an item, or
/// from another thread) or has no workers (threads < 2): the caller then runs them itself.
typedef void (*itune_pool_fn)(void *ctx, long index);
int itune_pool_run(long count, itune_pool_fn fn, void *ctx, int threads, long spin_ns);

/// FMA throughput probes for MachinePeak: `chains` independent multiply-add chains (12 for
/// AVX2, 24 for AVX-512 and NEON) of `iterations` steps on vector registers. Returns a sum of
/// the chains so that the work is not optimised away.
float itune_fma_burst_avx2(long iterations, float seed);
float itune_fma_burst_avx512(long iterations, float seed);
float itune_fma_burst_neon(long iterations, float seed);

/// Few-row GEMM pieces with AVX2+FMA (GemmFewRows.swift): out[0..<count] = dot(x, row r of B)
/// for count <= 4 rows ldb apart, over K; and acc[0..<n] += x0·b0 + x1·b1 + x2·b2 + x3·b3.
void itune_dot_rows4_avx2(const float *x, const float *b, long ldb, long count, long K, float *out);
/// AVX-512F: out[i·ldo + j] = dot(row i of a, row j of b) over K, for i < ma ≤ 4 rows of a
/// (lda apart) and j < nb ≤ 4 rows of b (ldb apart): 16 accumulators, each load of a row feeding
/// four products (GemmFewRows.swift's dot products at 16 lanes).
void itune_dot_tile4x4_avx512(const float *a, long lda, long ma, const float *b, long ldb, long nb, long K, float *out,
                              long ldo);
/// AVX-512F: c (ma ≤ 8, nb ≤ 32) = alpha · op(a) · b (K, nb) + beta · c (beta 0: c not read), op(a)
/// (ma, K) read as a[k·sk + i·si] (either layout); c row-major (ldc), b row-major (ldb). The
/// tile's 16 accumulators stay in registers over all of K: per k, two loads of b's row and eight
/// broadcasts for 16 multiply-adds (GemmFewRows.swift's row sums at 16 lanes).
void itune_axpy_tile8x32_avx512(const float *a, long sk, long si, long ma, const float *b, long ldb, long nb, long K,
                                float alpha, float beta, float *c, long ldc);
void itune_axpy4_avx2(float *acc, long n, const float *b0, const float *b1, const float *b2,
                      const float *b3, float x0, float x1, float x2, float x3);

/// 16-bit weight formats of the functions below.
#define ITUNE_W16_BF16 0
#define ITUNE_W16_F16 1

/// The few-row product with a 16-bit B stored (N,K) (a linear layer's weight, bf16 or f16 as
/// the checkpoint keeps it), AVX2 + FMA (and F16C for f16): for i < m (1...8), j < n,
///   c[i*ldc + j] = alpha * sum_k a[i*lda + k] * B(j, k) + beta * c[i*ldc + j]
/// with B(j, k) = b[j*ldb + k] widened to f32 in registers. Each row of B is read once for all m
/// rows of A; beta == 0: c is not read. Splitting n over threads is the caller's (GemvHalf.swift).
void itune_gemv16_avx2(int format, long m, long n, long k, float alpha, const float *a, long lda,
                       const unsigned short *b, long ldb, float beta, float *c, long ldc);
/// itune_gemv16_avx2 at 16 lanes in zmm registers (the CPU has AVX-512F): the same sums over K
/// in blocks of 16 instead of 8.
void itune_gemv16_avx512(int format, long m, long n, long k, float alpha, const float *a, long lda,
                         const unsigned short *b, long ldb, float beta, float *c, long ldc);

/// dst[0..<n] = the 16-bit values at src as f32 (exact), AVX2 (bf16) or F16C (f16).
void itune_w16_to_f32_avx2(int format, const unsigned short *src, long n, float *dst);

/// Packs 8 rows of a 16-bit B into 8 columns of a GEMM panel, converting and transposing in
/// registers: dst[k*ldd + r] = f32(src[r*lds + k]) for r < 8, k < kc.
void itune_pack_w16_rows8_avx2(int format, const unsigned short *src, long lds, long kc, float *dst, long ldd);

/// The same for an f32 B (AVX2): dst[k*ldd + r] = src[r*lds + k] for r < 8, k < kc.
void itune_pack_f32_rows8_avx2(const float *src, long lds, long kc, float *dst, long ldd);

/// Any number of rows (AVX2): dst[k*ldd + r] = src[r*lds + k] for r < rows, k < kc, by 8 × 8 and
/// 4 × 8 transposes in registers (the rest of the rows one value at a time). Packs a GEMM's A
/// block, whose micro-panels keep the MR rows of one k side by side (ldd = MR).
void itune_pack_f32_rows_avx2(const float *src, long lds, long rows, long kc, float *dst, long ldd);

// Row math of the CPU path's softmax, attention, cross-entropy and SwiGLU (rowmath.c), AVX2 + FMA,
// called only where itune_cpu_features() reports both. exp is FastMath.swift's algorithm (range
// reduction by 2^n, Cody–Waite ln 2, exp(r) = 1 + r·q(r) with q of degree 4; relative error
// < 3e-7 on [-87.3, 88.3], 0 below, saturating above). The _avx512 versions (AVX-512F) compute
// the same exp at 16 lanes, for the CPUs whose GEMM runs its AVX-512 kernel.

/// y[i] = exp(x[i] - shift) for i < n (y may be x); returns the sum of the y[i].
float itune_exp_shifted_avx2(const float *x, float *y, long n, float shift);
/// The sum of exp(x[i] - shift) for i < n, nothing written.
float itune_sum_exp_shifted_avx2(const float *x, long n, float shift);
/// max of x[0..<n] (-inf for n == 0); NaN when any element is NaN.
float itune_max_avx2(const float *x, long n);
/// x[i] *= s for i < n.
void itune_scale_avx2(float *x, long n, float s);
float itune_exp_shifted_avx512(const float *x, float *y, long n, float shift);
float itune_sum_exp_shifted_avx512(const float *x, long n, float shift);
float itune_max_avx512(const float *x, long n);
void itune_scale_avx512(float *x, long n, float s);
/// Softmax backward of one row: dx[i] = y[i] * (dy[i] - sum_j y[j] dy[j]).
void itune_softmax_backward_row_avx2(const float *y, const float *dy, float *dx, long n);
/// SwiGLU: out[i] = silu(g[i]) * u[i], silu(v) = v / (1 + exp(-v)).
void itune_swiglu_forward_avx2(const float *g, const float *u, float *out, long n);
/// SwiGLU backward: s = sigmoid(g); du = dy * g * s (if du); dg = dy * u * s * (1 + g (1 - s)) (if dg).
void itune_swiglu_backward_avx2(const float *g, const float *u, const float *dy, float *dg, float *du, long n);
/// The softmax backward row and SwiGLU at 16 lanes (AVX-512F): the AVX2 functions' values, bit for bit.
void itune_softmax_backward_row_avx512(const float *y, const float *dy, float *dx, long n);
void itune_swiglu_forward_avx512(const float *g, const float *u, float *out, long n);
void itune_swiglu_backward_avx512(const float *g, const float *u, const float *dy, float *dg, float *du, long n);

// AdamW's update of n elements in place (optim.c), torch.optim.AdamW's order: g' = g * scale;
// m = m + (g' - m) * (1 - beta1); v = v * beta2 + (1 - beta2) * g' * g';
// p = p * decay - step_size * (m / (sqrt(v) / bc2_sqrt + eps)). Every version gives the same
// bits: _f32 in 4-wide vectors of the build's baseline (SSE2, NEON), _avx2 in 8 (called only
// where the CPU has AVX2), _avx512 in 16 (AVX-512F).
void itune_adamw_f32(float *p, const float *g, float *m, float *v, long n, float scale, float one_minus_beta1,
                     float beta2, float one_minus_beta2, float bc2_sqrt, float eps, float decay, float step_size);
void itune_adamw_avx2(float *p, const float *g, float *m, float *v, long n, float scale, float one_minus_beta1,
                      float beta2, float one_minus_beta2, float bc2_sqrt, float eps, float decay, float step_size);
void itune_adamw_avx512(float *p, const float *g, float *m, float *v, long n, float scale, float one_minus_beta1,
                        float beta2, float one_minus_beta2, float bc2_sqrt, float eps, float decay, float step_size);

// Few-row products with a blockwise-quantised weight (quantgemv.c), AVX2 + FMA: decoding from an
// nf4 or int8 base (Sources/ITuneTensor/Quant). W is (N, K), K a multiple of 64, in blocks of 64
// of its flat index; format 1 = nf4 (two codes a byte, the first in the high nibble, `book` the
// 16-value code book), 2 = int8 (code / 127 · absmax). The absmax of block b is absmax[b], or
// with absmax NULL scale_codes[b] / 127 · second[b / 256] + offset (double quantisation).
/// y[r*ldy + n] = Σ_k x[r*ldx + k] · W[n, k] for r < m (1...4), n0 ≤ n < n1. int8 with K ≤ 16384
/// and finite x multiplies the codes by x rounded to 16 bits per block of 64 (step: the block's
/// absmax / 32767), in integer multiply-adds; otherwise x is used as it is.
void itune_gemv_quant_avx2(int format, const float *x, long ldx, long m, const uint8_t *codes, const float *absmax,
                           const int8_t *scale_codes, const float *second, float offset, const float *book, long K,
                           long n0, long n1, float *y, long ldy);
/// The same with nf4's blocks at 16 lanes (AVX-512F; int8 runs the AVX2 function).
void itune_gemv_quant_avx512(int format, const float *x, long ldx, long m, const uint8_t *codes, const float *absmax,
                             const int8_t *scale_codes, const float *second, float offset, const float *book, long K,
                             long n0, long n1, float *y, long ldy);

/// dst[0..<count] = the dequantised values at flat indices start..<start+count of such a W (the
/// converting GEMM's reader, Quant/GemmQuant.swift): BlockQuantized.swift's dequantize with the
/// same operations, bit for bit (nf4: book[code] · absmax; int8: code · (absmax / 127)), 8 lanes
/// (AVX2) or 16 (AVX-512F) at a time.
void itune_dequant_avx2(int format, const uint8_t *codes, const float *absmax, const int8_t *scale_codes,
                        const float *second, float offset, const float *book, long start, long count, float *dst);
void itune_dequant_avx512(int format, const uint8_t *codes, const float *absmax, const int8_t *scale_codes,
                          const float *second, float offset, const float *book, long start, long count, float *dst);

#ifdef __cplusplus
}
#endif
#endif
