// AVX2 helpers shared by kernels.c and rowmath.c (private to the target: not in include/).
// Include after <immintrin.h>, on x86-64 only.
#ifndef ITUNE_AVX2_HELPERS_H
#define ITUNE_AVX2_HELPERS_H

/// The target attribute of every AVX2 + FMA function (the callers check the CPU first).
#define AVX2 __attribute__((target("avx2,fma")))

/// The sum of the 8 lanes.
AVX2 static inline float itune_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

#endif
