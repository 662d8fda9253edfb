// The arm64 GEMM micro-kernel: a 12 × 8 tile of C in 24 NEON accumulators (12 rows × 2 vectors
// of 4 floats). Each k-step loads the packed A column (12 floats, 3 vectors) and B row (8
// floats, 2 vectors) and multiplies B's vectors by each of A's lanes (FMLA by element): 24 FMAs
// for 5 loads, 29 of the 32 vector registers. The same shape as BLIS's armv8a 8 × 12 kernel,
// turned so that B's panel is 8 wide (the packers copy B 8 floats at a time). Packing, blocking
// and edge tiles are the Swift driver's (Gemm.swift), as for the x86 kernels.
//
// Elsewhere (x86-64) the same function is compiled from portable C with one fused multiply-add
// per element in the same order, so that the driver's 12 × 8 tile and the two-pair form can be
// tested on any machine (GemmDispatchTests); it is never chosen there (the CPU has no ASIMD
// bit). The NEON form itself is checked under qemu-aarch64 by `make arm64-c-check`
// (scripts/check_neon_kernel.c).

#include "CGemmKernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

/// acc (12 rows × 2 vectors) += the packed panels' product a (kc,12) · b (kc,8).
static inline __attribute__((always_inline)) void
itune_neon_accumulate(float32x4_t acc[12][2], long kc, const float *a, const float *b) {
    for (long k = 0; k < kc; k++) {
        const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
        const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4), a2 = vld1q_f32(a + 8);
#define ITUNE_NEON_ROW(r, av, lane)                                  \
        acc[r][0] = vfmaq_laneq_f32(acc[r][0], b0, av, lane);        \
        acc[r][1] = vfmaq_laneq_f32(acc[r][1], b1, av, lane);
        ITUNE_NEON_ROW(0, a0, 0) ITUNE_NEON_ROW(1, a0, 1) ITUNE_NEON_ROW(2, a0, 2) ITUNE_NEON_ROW(3, a0, 3)
        ITUNE_NEON_ROW(4, a1, 0) ITUNE_NEON_ROW(5, a1, 1) ITUNE_NEON_ROW(6, a1, 2) ITUNE_NEON_ROW(7, a1, 3)
        ITUNE_NEON_ROW(8, a2, 0) ITUNE_NEON_ROW(9, a2, 1) ITUNE_NEON_ROW(10, a2, 2) ITUNE_NEON_ROW(11, a2, 3)
#undef ITUNE_NEON_ROW
        a += 12;
        b += 8;
    }
}

static inline __attribute__((always_inline)) void itune_neon_begin(float32x4_t acc[12][2]) {
    for (int r = 0; r < 12; r++) {
        acc[r][0] = vdupq_n_f32(0);
        acc[r][1] = vdupq_n_f32(0);
    }
}

/// c = alpha · acc + beta · c (beta 0: c is not read).
static inline __attribute__((always_inline)) void
itune_neon_store(float32x4_t acc[12][2], float *c, long ldc, float alpha, float beta) {
    for (int r = 0; r < 12; r++) {
        float *row = c + r * ldc;
        if (beta == 0) {
            vst1q_f32(row, vmulq_n_f32(acc[r][0], alpha));
            vst1q_f32(row + 4, vmulq_n_f32(acc[r][1], alpha));
        } else {
            vst1q_f32(row, vfmaq_n_f32(vmulq_n_f32(vld1q_f32(row), beta), acc[r][0], alpha));
            vst1q_f32(row + 4, vfmaq_n_f32(vmulq_n_f32(vld1q_f32(row + 4), beta), acc[r][1], alpha));
        }
    }
}

void itune_sgemm_ukr_neon_12x8(long kc, const float *a, const float *b, float *c, long ldc, float alpha, float beta) {
    float32x4_t acc[12][2];
    itune_neon_begin(acc);
    itune_neon_accumulate(acc, kc, a, b);
    itune_neon_store(acc, c, ldc, alpha, beta);
}

void itune_sgemm_ukr2_neon_12x8(long kc, const float *a, const float *b, long kc2, const float *a2,
                                const float *b2, float *c, long ldc, float alpha, float beta) {
    float32x4_t acc[12][2];
    itune_neon_begin(acc);
    itune_neon_accumulate(acc, kc, a, b);
    itune_neon_accumulate(acc, kc2, a2, b2);
    itune_neon_store(acc, c, ldc, alpha, beta);
}

float itune_fma_burst_neon(long iterations, float seed) {
    const float32x4_t x = vdupq_n_f32(0.999999f), y = vdupq_n_f32(1e-7f);
    float32x4_t s[24];
    for (int i = 0; i < 24; i++) s[i] = vdupq_n_f32(seed + (float)i);
    for (long i = 0; i < iterations; i++) {
#pragma clang loop unroll(full)
        for (int j = 0; j < 24; j++) s[j] = vfmaq_f32(y, s[j], x);
    }
    float32x4_t t = s[0];
    for (int j = 1; j < 24; j++) t = vaddq_f32(t, s[j]);
    return vaddvq_f32(t);
}

int itune_neon_kernel_is_native(void) { return 1; }

#else  // not arm64: the same arithmetic in portable C (tests only; never chosen)

#include <math.h>

static void itune_portable_accumulate(float acc[12][8], long kc, const float *a, const float *b) {
    for (long k = 0; k < kc; k++) {
        for (int r = 0; r < 12; r++) {
            for (int j = 0; j < 8; j++) acc[r][j] = fmaf(b[j], a[r], acc[r][j]);
        }
        a += 12;
        b += 8;
    }
}

static void itune_portable_store(float acc[12][8], float *c, long ldc, float alpha, float beta) {
    for (int r = 0; r < 12; r++) {
        float *row = c + r * ldc;
        for (int j = 0; j < 8; j++) row[j] = beta == 0 ? acc[r][j] * alpha : fmaf(acc[r][j], alpha, row[j] * beta);
    }
}

void itune_sgemm_ukr_neon_12x8(long kc, const float *a, const float *b, float *c, long ldc, float alpha, float beta) {
    float acc[12][8] = {{0}};
    itune_portable_accumulate(acc, kc, a, b);
    itune_portable_store(acc, c, ldc, alpha, beta);
}

void itune_sgemm_ukr2_neon_12x8(long kc, const float *a, const float *b, long kc2, const float *a2,
                                const float *b2, float *c, long ldc, float alpha, float beta) {
    float acc[12][8] = {{0}};
    itune_portable_accumulate(acc, kc, a, b);
    itune_portable_accumulate(acc, kc2, a2, b2);
    itune_portable_store(acc, c, ldc, alpha, beta);
}

float itune_fma_burst_neon(long iterations, float seed) { (void)iterations; return seed; }

int itune_neon_kernel_is_native(void) { return 0; }

#endif
