// Row math for the CPU path (see include/CGemmKernels.h): the AVX2 + FMA versions of
// FastMath.swift's exp and the row loops around it. Each function carries its own target
// attribute, so this file builds for the baseline ISA and the callers check the CPU first
// (FastMath.swift). In a portable build Swift's 8-wide vectors become SSE pairs without FMA;
// these run at the CPU's own width wherever it has AVX2.
#include "CGemmKernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <math.h>
#include <stddef.h>

#include "avx2_helpers.h"

/// exp(x) for 8 lanes: x clamped to [lo, hi]; n = round(x log2 e) by adding 1.5·2^23; r = x − n ln2
/// in two parts; exp(r) = 1 + r·q(r) with q of degree 4 fitted for relative error (minimax-like,
/// scripts/fit_exp_polynomial.py: 9.2·10⁻⁸ in exact arithmetic, 1.6·10⁻⁷ in f32; exp(0) = 1
/// exactly); 2^n built in the exponent bits. Lanes at or below lo (−inf included) give exactly 0,
/// NaN gives NaN: max and min return their second operand when one is NaN, so NaN flows through
/// to p, and the final mask keeps unordered lanes. 16 vector instructions (the degree-6 Taylor
/// form before it took 22; Zen 1 splits each into two halves, where exp bound softmax's speed).
// The steps of exp up to its last multiply, at either width W (256, 512): leaves LO (the clamp's
// low end), POLY (exp(r)) and SCALE (2^n) for the caller's last step, which differs by width only
// in how it masks. One body for both widths, so that the constants live in one place.
#define ITUNE_EXP_STEPS(W, X, LO, POLY, SCALE)                                                     \
    const __m##W LO = _mm##W##_set1_ps(-87.33654f), hi_ = _mm##W##_set1_ps(88.37626f);              \
    const __m##W magic_ = _mm##W##_set1_ps(12582912.0f);                                            \
    __m##W xc_ = _mm##W##_min_ps(hi_, _mm##W##_max_ps(LO, X));                                      \
    __m##W t_ = _mm##W##_fmadd_ps(xc_, _mm##W##_set1_ps(1.44269504f), magic_);                      \
    __m##W n_ = _mm##W##_sub_ps(t_, magic_);                                                        \
    __m##W r_ = _mm##W##_fnmadd_ps(n_, _mm##W##_set1_ps(0.69314575f), xc_);                         \
    r_ = _mm##W##_fnmadd_ps(n_, _mm##W##_set1_ps(1.4286068e-6f), r_);                               \
    __m##W POLY = _mm##W##_set1_ps(0.008290229f);                                                   \
    POLY = _mm##W##_fmadd_ps(POLY, r_, _mm##W##_set1_ps(0.04189839f));                              \
    POLY = _mm##W##_fmadd_ps(POLY, r_, _mm##W##_set1_ps(0.1666764f));                               \
    POLY = _mm##W##_fmadd_ps(POLY, r_, _mm##W##_set1_ps(0.49999145f));                              \
    POLY = _mm##W##_fmadd_ps(POLY, r_, _mm##W##_set1_ps(0.9999997f));                               \
    POLY = _mm##W##_fmadd_ps(POLY, r_, _mm##W##_set1_ps(1.0f));                                     \
    /* (n + 127) << 23 = (bits(t) − (bits(magic) − 127)) << 23: t's low mantissa bits hold n. */    \
    __m##W##i ni_ = _mm##W##_sub_epi32(_mm##W##_castps_si##W(t_), _mm##W##_set1_epi32(0x4B400000 - 127)); \
    __m##W SCALE = _mm##W##_castsi##W##_ps(_mm##W##_slli_epi32(ni_, 23));

AVX2 static inline __m256 itune_exp8(__m256 x) {
    ITUNE_EXP_STEPS(256, x, lo, p, scale)
    return _mm256_and_ps(_mm256_mul_ps(p, scale), _mm256_cmp_ps(x, lo, _CMP_NLE_UQ));
}

/// A mask of the first `count` (0...8) lanes.
AVX2 static inline __m256i itune_lane_mask(long count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// y = exp(x − shift) over n values, y NULL: nothing stored; returns the sum of the exps. The
/// softmax's exp (stored) and its sum alone (the cross-entropy's logsumexp) are this one loop.
AVX2 static inline __attribute__((always_inline)) float
itune_exp_shifted8(const float *x, float *y, long n, float shift) {
    const __m256 s = _mm256_set1_ps(shift);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 e0 = itune_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        __m256 e1 = itune_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), s));
        if (y) {
            _mm256_storeu_ps(y + i, e0);
            _mm256_storeu_ps(y + i + 8, e1);
        }
        a0 = _mm256_add_ps(a0, e0);
        a1 = _mm256_add_ps(a1, e1);
    }
    for (; i < n; i += 8) {
        __m256i m = itune_lane_mask(n - i);
        // Lanes past n read as −inf: exp gives 0 there and nothing is stored.
        __m256 v = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(x + i, m), _mm256_castsi256_ps(m));
        __m256 e = itune_exp8(_mm256_sub_ps(v, s));
        if (y) _mm256_maskstore_ps(y + i, m, e);
        a0 = _mm256_add_ps(a0, e);
    }
    return itune_hsum8(_mm256_add_ps(a0, a1));
}

AVX2 float itune_exp_shifted_avx2(const float *x, float *y, long n, float shift) {
    return itune_exp_shifted8(x, y, n, shift);
}

AVX2 float itune_sum_exp_shifted_avx2(const float *x, long n, float shift) {
    return itune_exp_shifted8(x, NULL, n, shift);
}

AVX2 float itune_max_avx2(const float *x, long n) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m0 = ninf, m1 = ninf, bad = _mm256_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        m0 = _mm256_max_ps(m0, v0);
        m1 = _mm256_max_ps(m1, v1);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(v0, v1, _CMP_UNORD_Q));
    }
    for (; i < n; i += 8) {
        __m256i m = itune_lane_mask(n - i);
        __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, m), _mm256_castsi256_ps(m));
        m0 = _mm256_max_ps(m0, v);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    if (_mm256_movemask_ps(bad) != 0) return NAN;
    m0 = _mm256_max_ps(m0, m1);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

AVX2 void itune_scale_avx2(float *x, long n, float s) {
    const __m256 vs = _mm256_set1_ps(s);
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    for (; i < n; i++) x[i] *= s;
}

AVX2 void itune_softmax_backward_row_avx2(const float *y, const float *dy, float *dx, long n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(dy + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(y + i + 8), _mm256_loadu_ps(dy + i + 8), a1);
    }
    float dot = itune_hsum8(_mm256_add_ps(a0, a1));
    for (; i < n; i++) dot += y[i] * dy[i];
    const __m256 vd = _mm256_set1_ps(dot);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), _mm256_sub_ps(_mm256_loadu_ps(dy + i), vd)));
    for (; i < n; i++) dx[i] = y[i] * (dy[i] - dot);
}

// MARK: AVX-512: the softmax row functions at 16 lanes, where the GEMM runs its AVX-512 kernel.
// The same exp, lane for lane (same operations in the same order: the same values as itune_exp8);
// the tails are masked loads and stores. One Ice Lake core, a softmax row (max, exp, scale) of
// T 128 / 256: 1.30–1.37× the AVX2 functions (alternated three times).

#define AVX512R __attribute__((target("avx512f")))

AVX512R static inline __m512 itune_exp16(__m512 x) {
    ITUNE_EXP_STEPS(512, x, lo, p, scale)
    // 0 at or below lo; NaN lanes (unordered) kept.
    return _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLE_UQ), p, scale);
}

/// A mask of the first min(count, 16) lanes.
static inline __mmask16 itune_mask16(long count) {
    return count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1u);
}

/// itune_exp_shifted8 at 16 lanes.
AVX512R static inline __attribute__((always_inline)) float
itune_exp_shifted16(const float *x, float *y, long n, float shift) {
    const __m512 s = _mm512_set1_ps(shift), ninf = _mm512_set1_ps(-INFINITY);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 e0 = itune_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
        __m512 e1 = itune_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), s));
        if (y) {
            _mm512_storeu_ps(y + i, e0);
            _mm512_storeu_ps(y + i + 16, e1);
        }
        a0 = _mm512_add_ps(a0, e0);
        a1 = _mm512_add_ps(a1, e1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = itune_mask16(n - i);
        // Lanes past n read as −inf: exp gives 0 there and nothing is stored.
        __m512 e = itune_exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, m, x + i), s));
        if (y) _mm512_mask_storeu_ps(y + i, m, e);
        a0 = _mm512_add_ps(a0, e);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

AVX512R float itune_exp_shifted_avx512(const float *x, float *y, long n, float shift) {
    return itune_exp_shifted16(x, y, n, shift);
}

AVX512R float itune_sum_exp_shifted_avx512(const float *x, long n, float shift) {
    return itune_exp_shifted16(x, NULL, n, shift);
}

AVX512R float itune_max_avx512(const float *x, long n) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 m0 = ninf, m1 = ninf;
    __mmask16 bad = 0;
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        m0 = _mm512_max_ps(m0, v0);
        m1 = _mm512_max_ps(m1, v1);
        bad |= _mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q);
    }
    for (; i < n; i += 16) {
        __m512 v = _mm512_mask_loadu_ps(ninf, itune_mask16(n - i), x + i);
        m0 = _mm512_max_ps(m0, v);
        bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    if (bad) return NAN;
    return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

AVX512R void itune_scale_avx512(float *x, long n, float s) {
    const __m512 vs = _mm512_set1_ps(s);
    long i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), vs));
    if (i < n) {
        __mmask16 m = itune_mask16(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs));
    }
}

/// sigmoid(v) = 1 / (1 + exp(−v)) for 8 lanes (exp saturates, so large |v| give 0 or 1).
AVX2 static inline __m256 itune_sigmoid8(__m256 v) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, itune_exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
}

AVX2 void itune_swiglu_forward_avx2(const float *g, const float *u, float *out, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(g + i);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(v, itune_sigmoid8(v)), _mm256_loadu_ps(u + i)));
    }
    if (i < n) {
        __m256i m = itune_lane_mask(n - i);
        __m256 v = _mm256_maskload_ps(g + i, m);
        _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(_mm256_mul_ps(v, itune_sigmoid8(v)), _mm256_maskload_ps(u + i, m)));
    }
}

AVX2 static inline void itune_swiglu_backward8(__m256 v, __m256 uv, __m256 d, float *dg, float *du, long i, __m256i m,
                                               int masked) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 s = itune_sigmoid8(v);
    __m256 dus = _mm256_mul_ps(_mm256_mul_ps(d, v), s);
    __m256 dgs = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d, uv), s), _mm256_fmadd_ps(v, _mm256_sub_ps(one, s), one));
    if (masked) {
        if (du) _mm256_maskstore_ps(du + i, m, dus);
        if (dg) _mm256_maskstore_ps(dg + i, m, dgs);
    } else {
        if (du) _mm256_storeu_ps(du + i, dus);
        if (dg) _mm256_storeu_ps(dg + i, dgs);
    }
}

AVX2 void itune_swiglu_backward_avx2(const float *g, const float *u, const float *dy, float *dg, float *du, long n) {
    long i = 0;
    __m256i all = _mm256_set1_epi32(-1);
    for (; i + 8 <= n; i += 8)
        itune_swiglu_backward8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i), _mm256_loadu_ps(dy + i), dg, du, i, all, 0);
    if (i < n) {
        __m256i m = itune_lane_mask(n - i);
        itune_swiglu_backward8(_mm256_maskload_ps(g + i, m), _mm256_maskload_ps(u + i, m), _mm256_maskload_ps(dy + i, m),
                               dg, du, i, m, 1);
    }
}

// MARK: AVX-512 softmax backward and SwiGLU: the same values as the AVX2 functions, bit for bit
// (the dot product's lanes are added in the AVX2 function's order; sigmoid is exp16, an add and
// a division, as exp8's).

AVX512R void itune_softmax_backward_row_avx512(const float *y, const float *dy, float *dx, long n) {
    // Lanes 0-7 of `a` are the AVX2 function's a0, lanes 8-15 its a1.
    __m512 a = _mm512_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(y + i), _mm512_loadu_ps(dy + i), a);
    float dot = itune_hsum8(_mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))));
    for (; i < n; i++) dot += y[i] * dy[i];
    const __m512 vd = _mm512_set1_ps(dot);
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dx + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), _mm512_sub_ps(_mm512_loadu_ps(dy + i), vd)));
    if (i < n) {
        __mmask16 m = itune_mask16(n - i);
        _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + i),
                                                       _mm512_sub_ps(_mm512_maskz_loadu_ps(m, dy + i), vd)));
    }
}

AVX512R static inline __m512 itune_sigmoid16(__m512 v) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, itune_exp16(_mm512_sub_ps(_mm512_setzero_ps(), v))));
}

AVX512R void itune_swiglu_forward_avx512(const float *g, const float *u, float *out, long n) {
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = itune_mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, g + i);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(v, itune_sigmoid16(v)), _mm512_maskz_loadu_ps(m, u + i)));
    }
}

AVX512R void itune_swiglu_backward_avx512(const float *g, const float *u, const float *dy, float *dg, float *du, long n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = itune_mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i), d = _mm512_maskz_loadu_ps(m, dy + i);
        __m512 s = itune_sigmoid16(v);
        if (du) _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(_mm512_mul_ps(d, v), s));
        if (dg)
            _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d, uv), s),
                                                           _mm512_fmadd_ps(v, _mm512_sub_ps(one, s), one)));
    }
}

#else  // not x86-64: never called (itune_cpu_features has no x86 bits)

float itune_exp_shifted_avx2(const float *x, float *y, long n, float shift) {
    (void)x; (void)y; (void)n; (void)shift; return 0;
}
float itune_sum_exp_shifted_avx2(const float *x, long n, float shift) { (void)x; (void)n; (void)shift; return 0; }
float itune_max_avx2(const float *x, long n) { (void)x; (void)n; return 0; }
float itune_exp_shifted_avx512(const float *x, float *y, long n, float shift) {
    (void)x; (void)y; (void)n; (void)shift;
    return 0;
}
float itune_sum_exp_shifted_avx512(const float *x, long n, float shift) { (void)x; (void)n; (void)shift; return 0; }
float itune_max_avx512(const float *x, long n) { (void)x; (void)n; return 0; }
void itune_scale_avx512(float *x, long n, float s) { (void)x; (void)n; (void)s; }
void itune_scale_avx2(float *x, long n, float s) { (void)x; (void)n; (void)s; }
void itune_softmax_backward_row_avx2(const float *y, const float *dy, float *dx, long n) {
    (void)y; (void)dy; (void)dx; (void)n;
}
void itune_swiglu_forward_avx2(const float *g, const float *u, float *out, long n) { (void)g; (void)u; (void)out; (void)n; }
void itune_swiglu_backward_avx2(const float *g, const float *u, const float *dy, float *dg, float *du, long n) {
    (void)g; (void)u; (void)dy; (void)dg; (void)du; (void)n;
}
void itune_softmax_backward_row_avx512(const float *y, const float *dy, float *dx, long n) {
    (void)y; (void)dy; (void)dx; (void)n;
}
void itune_swiglu_forward_avx512(const float *g, const float *u, float *out, long n) { (void)g; (void)u; (void)out; (void)n; }
void itune_swiglu_backward_avx512(const float *g, const float *u, const float *dy, float *dg, float *du, long n) {
    (void)g; (void)u; (void)dy; (void)dg; (void)du; (void)n;
}
#endif
