// Few-row products with a blockwise-quantised weight (see include/CGemmKernels.h): what decoding
// a token from an nf4 or int8 base runs. y (m, n) = x (m, K) · Wᵀ for rows n0..<n1 of W, W the
// (N, K) weight in blocks of 64 consecutive values of its row-major flat index, K a multiple of
// 64 (so every block lies in one row). Each block's codes are turned into f32 in registers and
// used for all m rows of x before the next block is read: the weight is streamed once, at one
// byte (int8) or half a byte (nf4) a value, which is what bounds decoding on a CPU.
#include "CGemmKernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "avx2_helpers.h"

/// The absmax of block b: the f32 constant, or under double quantisation its 8-bit code
/// restored as BlockQuantized.swift restores it (c / 127 · second[b / 256] + offset).
static inline float itune_block_scale(const float *absmax, const int8_t *scale_codes, const float *second, float offset,
                                      long b) {
    if (absmax) return absmax[b];
    return (float)scale_codes[b] / 127.0f * second[b / 256] + offset;
}

/// Eight NormalFloat4 values from 8 indices (0...15) in the low nibbles of 8 i32 lanes.
AVX2 static inline __m256 itune_nf4_lookup8(__m256i idx, __m256 book_lo, __m256 book_hi) {
    __m256 lo = _mm256_permutevar8x32_ps(book_lo, idx), hi = _mm256_permutevar8x32_ps(book_hi, idx);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

AVX2 void itune_gemv_quant_avx2(int format, const float *x, long ldx, long m, const uint8_t *codes, const float *absmax,
                                const int8_t *scale_codes, const float *second, float offset, const float *book, long K,
                                long n0, long n1, float *y, long ldy) {
    if (m < 1 || m > 4) return;
    const __m256 book_lo = _mm256_loadu_ps(book), book_hi = _mm256_loadu_ps(book + 8);
    const long blocks = K / 64;
    for (long n = n0; n < n1; n++) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (long b = 0; b < blocks; b++) {
            const long flat = n * K + b * 64;
            __m256 w[8];
            if (format == 1) {  // nf4: 32 bytes, the first value of each in the high nibble
                __m256i bytes = _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(codes + flat / 2)));
                bytes = _mm256_inserti128_si256(bytes, _mm_loadu_si128((const __m128i *)(codes + flat / 2 + 16)), 1);
                const __m256i mask = _mm256_set1_epi8(15);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask), lo = _mm256_and_si256(bytes, mask);
                // In value order: hi0 lo0 hi1 lo1 … (per 128-bit lane: values 0-15 | 16-31 of each half)
                __m256i a = _mm256_unpacklo_epi8(hi, lo), c = _mm256_unpackhi_epi8(hi, lo);
                // a: values 0-15 (lane 0) and 32-47 (lane 1); c: 16-31 and 48-63.
                __m128i v[4] = {_mm256_castsi256_si128(a), _mm256_castsi256_si128(c), _mm256_extracti128_si256(a, 1),
                                _mm256_extracti128_si256(c, 1)};
                for (int q = 0; q < 4; q++) {
                    w[2 * q] = itune_nf4_lookup8(_mm256_cvtepu8_epi32(v[q]), book_lo, book_hi);
                    w[2 * q + 1] = itune_nf4_lookup8(_mm256_cvtepu8_epi32(_mm_srli_si128(v[q], 8)), book_lo, book_hi);
                }
            } else {  // int8: 64 bytes, each code / 127 of the absmax
                for (int q = 0; q < 8; q++) {
                    __m128i c8 = _mm_loadl_epi64((const __m128i *)(codes + flat + 8 * q));
                    w[q] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c8));
                }
            }
            float s = itune_block_scale(absmax, scale_codes, second, offset, flat / 64);
            if (format != 1) s /= 127.0f;  // as the host dequantises: code · (absmax / 127)
            const __m256 scale = _mm256_set1_ps(s);
            for (long r = 0; r < m; r++) {
                // Four independent partial sums: one chain of eight FMAs would wait on their latency.
                const float *xr = x + r * ldx + b * 64;
                __m256 p0 = _mm256_mul_ps(w[0], _mm256_loadu_ps(xr)), p1 = _mm256_mul_ps(w[1], _mm256_loadu_ps(xr + 8));
                __m256 p2 = _mm256_mul_ps(w[2], _mm256_loadu_ps(xr + 16)), p3 = _mm256_mul_ps(w[3], _mm256_loadu_ps(xr + 24));
                p0 = _mm256_fmadd_ps(w[4], _mm256_loadu_ps(xr + 32), p0);
                p1 = _mm256_fmadd_ps(w[5], _mm256_loadu_ps(xr + 40), p1);
                p2 = _mm256_fmadd_ps(w[6], _mm256_loadu_ps(xr + 48), p2);
                p3 = _mm256_fmadd_ps(w[7], _mm256_loadu_ps(xr + 56), p3);
                acc[r] = _mm256_fmadd_ps(_mm256_add_ps(_mm256_add_ps(p0, p1), _mm256_add_ps(p2, p3)), scale, acc[r]);
            }
        }
        for (long r = 0; r < m; r++) y[r * ldy + n] = itune_hsum8(acc[r]);
    }
}

#else  // not x86-64: never called (itune_cpu_features has no x86 bits)

void itune_gemv_quant_avx2(int format, const float *x, long ldx, long m, const uint8_t *codes, const float *absmax,
                           const int8_t *scale_codes, const float *second, float offset, const float *book, long K,
                           long n0, long n1, float *y, long ldy) {
    (void)format; (void)x; (void)ldx; (void)m; (void)codes; (void)absmax; (void)scale_codes; (void)second; (void)offset;
    (void)book; (void)K; (void)n0; (void)n1; (void)y; (void)ldy;
}
#endif
