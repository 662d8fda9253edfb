// AdamW's update over a tensor for the CPU path (Sources/ITuneTensor/Ops/Optim.swift), in
// vectors of the widest width the CPU runs. The loop is memory-bound (four reads and three
// writes an element), but Swift's SIMD8<Float>.squareRoot() becomes eight scalar square roots,
// each with a check and a libm call for negative inputs, and on a 2-vCPU Ice Lake (2026-12-02)
// that held the loop at 1.18 ns an element against 0.62 for these (0.76 in 4-wide SSE2): a third
// of a second of every Qwen2.5-0.5B full step (686 -> 351 ms in its profile).
//
// Every version does the same operations in the same order as the scalar tail, and square root
// and division are correctly rounded at any width, so all give the same bits. Nothing is fused
// into multiply-adds (the file turns contraction off): the bits of the Swift loop this replaced,
// which OptimTests and scripts/check_neon_kernel.c write out as the scalar reference.
#include "CGemmKernels.h"

#include <string.h>

#pragma clang fp contract(off)

// One body for every width: VT is a clang extended vector of L floats. The scalars splat.
#define ITUNE_ADAMW_BODY(VT, L)                                                                     \
    long i = 0;                                                                                     \
    for (; i + (L) <= n; i += (L)) {                                                                \
        VT g0, m0, v0, p0;                                                                          \
        memcpy(&g0, g + i, sizeof(VT));                                                             \
        memcpy(&m0, m + i, sizeof(VT));                                                             \
        memcpy(&v0, v + i, sizeof(VT));                                                             \
        memcpy(&p0, p + i, sizeof(VT));                                                             \
        const VT gi = g0 * scale;                                                                   \
        const VT mi = m0 + (gi - m0) * one_minus_beta1;                                             \
        const VT vi = v0 * beta2 + one_minus_beta2 * gi * gi;                                       \
        const VT denom = __builtin_elementwise_sqrt(vi) / bc2_sqrt + eps;                          \
        const VT pi = p0 * decay - step_size * (mi / denom);                                        \
        memcpy(p + i, &pi, sizeof(VT));                                                             \
        memcpy(m + i, &mi, sizeof(VT));                                                             \
        memcpy(v + i, &vi, sizeof(VT));                                                             \
    }                                                                                               \
    for (; i < n; i++) {                                                                            \
        const float gi = g[i] * scale;                                                              \
        const float mi = m[i] + (gi - m[i]) * one_minus_beta1;                                      \
        const float vi = v[i] * beta2 + one_minus_beta2 * gi * gi;                                  \
        const float denom = __builtin_elementwise_sqrt(vi) / bc2_sqrt + eps;                       \
        p[i] = p[i] * decay - step_size * (mi / denom);                                             \
        m[i] = mi;                                                                                  \
        v[i] = vi;                                                                                  \
    }

typedef float itune_f32x4 __attribute__((ext_vector_type(4)));

void itune_adamw_f32(float *p, const float *g, float *m, float *v, long n, float scale, float one_minus_beta1,
                     float beta2, float one_minus_beta2, float bc2_sqrt, float eps, float decay, float step_size) {
    ITUNE_ADAMW_BODY(itune_f32x4, 4)
}

#if defined(__x86_64__) || defined(_M_X64)
typedef float itune_f32x8 __attribute__((ext_vector_type(8)));
typedef float itune_f32x16 __attribute__((ext_vector_type(16)));

__attribute__((target("avx2"))) void itune_adamw_avx2(float *p, const float *g, float *m, float *v, long n, float scale,
                                                      float one_minus_beta1, float beta2, float one_minus_beta2,
                                                      float bc2_sqrt, float eps, float decay, float step_size) {
    ITUNE_ADAMW_BODY(itune_f32x8, 8)
}

__attribute__((target("avx512f"))) void itune_adamw_avx512(float *p, const float *g, float *m, float *v, long n,
                                                           float scale, float one_minus_beta1, float beta2,
                                                           float one_minus_beta2, float bc2_sqrt, float eps,
                                                           float decay, float step_size) {
    ITUNE_ADAMW_BODY(itune_f32x16, 16)
}
#else  // not x86-64: never called (itune_cpu_features has no x86 bits)
void itune_adamw_avx2(float *p, const float *g, float *m, float *v, long n, float scale, float one_minus_beta1,
                      float beta2, float one_minus_beta2, float bc2_sqrt, float eps, float decay, float step_size) {
    itune_adamw_f32(p, g, m, v, n, scale, one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, eps, decay, step_size);
}
void itune_adamw_avx512(float *p, const float *g, float *m, float *v, long n, float scale, float one_minus_beta1,
                        float beta2, float one_minus_beta2, float bc2_sqrt, float eps, float decay, float step_size) {
    itune_adamw_f32(p, g, m, v, n, scale, one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, eps, decay, step_size);
}
#endif
